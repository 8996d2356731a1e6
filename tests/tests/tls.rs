//! HTTPS end to end: SNI picks each app's certificate over TLS 1.2 and 1.3 with `h2` and
//! `http/1.1` (curl, h2load, a rustls client); the gateway's memory holds no form of a
//! private key after 1000 handshakes while the keyholder's does; killing the keyholder
//! fails new handshakes only briefly and leaves an established HTTP/2 connection working;
//! per-app redirects, HSTS and certificate reload. A TLS handshake that stalls is closed
//! after `client_header_timeout`, and ten of them do not hold up a shutdown; an idle h2
//! connection is closed after `keepalive_timeout`.

use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead_tests::binaries::{GATEWAY, KEYHOLDER};
use bulkhead_tests::procfs;
use bulkhead_tests::procfs::memory_occurrences as occurrences;
use bulkhead_tests::tls::{KeyType, TlsWorld, make_cert};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

const APPS: [(&str, KeyType); 2] = [("alpha", KeyType::P256), ("bravo", KeyType::Rsa2048)];

#[test]
fn sni_selects_each_apps_certificate_over_tls12_and_tls13_with_h2_and_http11() {
    let world = TlsWorld::start(&APPS, &[]);
    for cert in &world.certs {
        for (version, flags) in
            [("TLSv1.2", &["--tlsv1.2", "--tls-max", "1.2"][..]), ("TLSv1.3", &["--tlsv1.3"][..])]
        {
            for (alpn, proto) in [("h2", "--http2"), ("http/1.1", "--http1.1")] {
                let args: Vec<&str> = flags.iter().copied().chain([proto]).collect();
                let (ok, body, log) = world.curl(&cert.host, "/index.html", &args);
                let what = format!("{} {version} {alpn}", cert.host);
                assert!(ok, "{what}: curl failed:\n{log}");
                assert_eq!(body, "hello over tls\n", "{what}");
                assert!(log.contains(&format!("subject: CN={}", cert.host)), "{what}: {log}");
                assert!(log.contains(&format!("SSL connection using {version}")), "{what}: {log}");
                assert!(log.contains(&format!("ALPN: server accepted {alpn}")), "{what}: {log}");
            }
        }
        let leaf = world.handshake(&cert.host).expect("rustls handshake");
        assert_eq!(leaf, cert.cert_der, "{}: SNI must select the app's own certificate", cert.host);
    }
    let (_, _, log) = world.curl("unknown.localhost", "/", &["--insecure"]);
    assert!(log.contains("subject: CN=alpha.localhost"), "the default certificate: {log}");
}

#[test]
fn h2load_completes_handshakes_for_both_apps() {
    let world = TlsWorld::start(&APPS, &[]);
    for cert in &world.certs {
        for extra in [&[][..], &["--h1"][..]] {
            let summary = h2load(&world, &cert.host, 100, 4, extra);
            assert!(summary.contains("100 succeeded"), "{}: {summary}", cert.host);
        }
    }
}

#[test]
fn gateway_memory_holds_no_private_key_after_1000_handshakes() {
    let world = TlsWorld::start(&APPS, &[]);
    for round in 0..20 {
        let host = &world.certs[round % 2].host;
        let summary = h2load(&world, host, 50, 50, &[]);
        assert!(summary.contains("50 succeeded"), "round {round}: {summary}");
    }
    let (gateway, keyholder) = (world.child(GATEWAY), world.child(KEYHOLDER));
    // Bursts of 50 handshakes waiting on the keyholder must not leave a thread (and a
    // malloc arena) each behind: one runtime thread per two CPUs, as many blocking ones.
    let runtime = bulkhead_tests::gateway_runtime_threads();
    let bound = if runtime == 1 { 1 } else { 1 + 2 * runtime };
    let threads = std::fs::read_dir(format!("/proc/{gateway}/task")).expect("tasks").count();
    println!("gateway threads after 1000 handshakes: {threads} (bound {bound})");
    assert!(threads <= bound, "the gateway has {threads} threads, more than {bound}");
    let mut found = Vec::new();
    for cert in &world.certs {
        for (form, bytes) in cert.forms.all() {
            found.push((cert.host.clone(), form, occurrences(gateway, &bytes)));
        }
    }
    println!("gateway memory scan: {found:?}");
    assert!(
        found.iter().all(|(_, _, n)| *n == 0),
        "private key material in the gateway: {found:?}"
    );
    for cert in &world.certs {
        let control = occurrences(keyholder, &cert.forms.pkcs8_der);
        println!(
            "positive control: {}'s PKCS#8 key found {control} time(s) in the keyholder",
            cert.host
        );
        assert!(control > 0, "the scan must find {}'s key in the keyholder", cert.host);
    }
}

#[test]
fn killing_the_keyholder_fails_new_handshakes_briefly_and_spares_established_connections() {
    let world = TlsWorld::start(&APPS, &[]);
    let host = world.certs[0].host.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut sender = rt.block_on(h2_connect(&world, &host));
    assert_eq!(rt.block_on(get(&mut sender, &host)), 200);
    let keyholder = world.child(KEYHOLDER);
    let before = world.bulkhead.status()["keyholder"].clone();
    assert_eq!(before["pid"].as_u64(), Some(u64::from(keyholder)), "status: {before}");
    assert_eq!((before["ready"].as_bool(), before["restarts"].as_u64()), (Some(true), Some(0)));
    signal(keyholder, nix::sys::signal::Signal::SIGKILL);
    assert!(procfs::poll_gone(keyholder, Duration::from_secs(2)), "the keyholder did not die");
    let (recovered, failures) = until_a_handshake_works(&world, &host, Duration::from_secs(5));
    println!("new handshakes failed {failures} time(s); recovered {recovered:?} after the kill");
    assert!(recovered < Duration::from_secs(1), "recovery took {recovered:?}");
    let replacement = world.child(KEYHOLDER);
    assert_ne!(replacement, keyholder, "the broker started a new keyholder");
    let after = world.bulkhead.status()["keyholder"].clone();
    assert_eq!(after["pid"].as_u64(), Some(u64::from(replacement)), "status: {after}");
    assert_eq!((after["ready"].as_bool(), after["restarts"].as_u64()), (Some(true), Some(1)));
    assert_eq!(rt.block_on(get(&mut sender, &host)), 200, "the established connection broke");
}

#[test]
fn a_keyholder_that_stops_answering_is_replaced() {
    let world = TlsWorld::start(&APPS, &[]);
    let host = world.certs[0].host.clone();
    assert!(world.handshake(&host).is_ok(), "TLS works before the keyholder is stopped");
    let keyholder = world.child(KEYHOLDER);
    signal(keyholder, nix::sys::signal::Signal::SIGSTOP);
    // Alive but silent: the first handshake waits out the signing deadline and breaks
    // the channel; the gateway reports it and the broker replaces the keyholder.
    let (recovered, failures) = until_a_handshake_works(&world, &host, Duration::from_secs(10));
    println!("{failures} handshake(s) failed; recovered {recovered:?} after SIGSTOP");
    assert!(failures >= 1, "a handshake cannot succeed through a stopped keyholder");
    assert!(procfs::poll_gone(keyholder, Duration::from_secs(2)), "the stuck one was not killed");
    let status = world.bulkhead.status()["keyholder"].clone();
    assert_eq!(status["restarts"].as_u64(), Some(1), "status: {status}");
    assert_ne!(status["pid"].as_u64(), Some(u64::from(keyholder)), "status: {status}");
    assert!(world.bulkhead.log().contains("signing channel failed; replacing the keyholder"));
}

#[test]
fn plain_http_redirects_to_https_and_https_answers_carry_hsts() {
    let world = TlsWorld::start(&APPS, &["redirect_https = true", "hsts = \"max-age=600\""]);
    let host = &world.certs[0].host;
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H"])
        .arg(format!("Host: {host}"))
        .arg(format!("http://{}/a/b?c=d", world.http))
        .output()
        .expect("curl");
    let expected = format!("308 https://{host}:{}/a/b?c=d", world.https.port());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    let (ok, _, log) = world.curl(host, "/index.html", &["--http2"]);
    assert!(ok && log.contains("strict-transport-security: max-age=600"), "{log}");
}

#[test]
fn reload_serves_a_new_certificate_signed_by_a_new_key() {
    let world = TlsWorld::start(&APPS, &[]);
    let old = world.certs[0].clone();
    let fresh_dir = world.dir.path().join("fresh");
    std::fs::create_dir_all(&fresh_dir).expect("mkdir");
    let fresh = make_cert(&fresh_dir, "alpha", KeyType::P256);
    std::fs::copy(&fresh.cert, &old.cert).expect("replacing the certificate");
    std::fs::copy(&fresh.key, &old.key).expect("replacing the key");
    let out = Command::new(bulkhead_tests::binaries::broker())
        .args(["reload", "--config"])
        .arg(world.bulkhead.config_path())
        .output()
        .expect("bulkhead reload");
    assert!(out.status.success(), "reload: {}", String::from_utf8_lossy(&out.stderr));
    let served = bulkhead_tests::net::poll_until(Duration::from_secs(3), || {
        world
            .handshake_trusting(&[&fresh.cert_der], &old.host)
            .ok()
            .filter(|l| *l == fresh.cert_der)
    });
    let last = world.handshake_trusting(&[&fresh.cert_der], &old.host);
    assert!(
        served.is_some(),
        "the new certificate was not served ({last:?}):\n{}",
        world.bulkhead.log()
    );
    let other = world.handshake(&world.certs[1].host).expect("the other app still works");
    assert_eq!(other, world.certs[1].cert_der);
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let target = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid fits i32"));
    nix::sys::signal::kill(target, signal).unwrap_or_else(|e| panic!("{signal} to {pid}: {e}"));
}

/// Handshakes every 20 ms until one works: how long that took, and how many failed.
fn until_a_handshake_works(world: &TlsWorld, host: &str, limit: Duration) -> (Duration, u32) {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        match world.handshake(host) {
            Ok(_) => return (started.elapsed(), failures),
            Err(_) => failures += 1,
        }
        assert!(started.elapsed() < limit, "handshakes never recovered ({failures} failed)");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn h2load(world: &TlsWorld, host: &str, n: u32, c: u32, extra: &[&str]) -> String {
    let out = Command::new("h2load")
        .args(["-n", &n.to_string(), "-c", &c.to_string()])
        .arg(format!("--connect-to=127.0.0.1:{}", world.https.port()))
        .args(extra)
        .arg(format!("https://{host}:{}/index.html", world.https.port()))
        .output()
        .expect("running h2load (apt-get install nghttp2-client)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn h2_connect(
    world: &TlsWorld,
    host: &str,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let connector = tokio_rustls::TlsConnector::from(world.client_config(&[b"h2"]));
    let tcp = tokio::net::TcpStream::connect(world.https).await.expect("connect");
    let name = ServerName::try_from(host.to_owned()).expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    sender
}

async fn get(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    host: &str,
) -> u16 {
    let req = hyper::Request::get(format!("https://{host}/index.html"))
        .body(Empty::new())
        .expect("request");
    sender.ready().await.expect("connection ready");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

/// `min_version = "1.3"`: a TLS 1.2 client gets no certificate (so the keyholder is never
/// asked for a ServerKeyExchange signature), TLS 1.3 clients are served, and the
/// refusals never look like a broken keyholder.
#[test]
fn a_tls13_only_app_refuses_tls12_clients_and_the_keyholder_is_never_asked() {
    let world = TlsWorld::start(&APPS, &["tls: min_version = \"1.3\""]);
    let keyholder = world.child(KEYHOLDER);
    for (name, _) in APPS {
        let host = format!("{name}.localhost");
        for _ in 0..5 {
            let (ok, _, err) = world.curl(&host, "/", &["--tlsv1.2", "--tls-max", "1.2"]);
            assert!(!ok, "{host}: a TLS 1.2 handshake succeeded:\n{err}");
        }
        let (ok, body, err) = world.curl(&host, "/", &["--tlsv1.3"]);
        assert!(ok && body.contains("hello over tls"), "{host} over TLS 1.3:\n{err}");
    }
    let status = world.bulkhead.status()["keyholder"].clone();
    assert_eq!(status["pid"].as_u64(), Some(u64::from(keyholder)), "status: {status}");
    assert_eq!(status["restarts"].as_u64(), Some(0), "status: {status}");
    let log = world.bulkhead.log();
    assert!(!log.contains("keyholder channel failed"), "{log}");
}

/// A TCP connection to the HTTPS port that sends the start of a ClientHello and stalls.
fn stalled_handshake(world: &TlsWorld) -> std::net::TcpStream {
    use std::io::Write;
    let mut conn = std::net::TcpStream::connect(world.https).expect("connecting");
    // A TLS record header announcing a 512-byte handshake message, and 4 bytes of it.
    conn.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]).expect("sending");
    conn
}

#[test]
fn a_stalled_tls_handshake_is_closed_after_client_header_timeout() {
    use std::io::Read;
    let world = TlsWorld::start(&APPS, &["top: client_header_timeout = \"2s\""]);
    let mut conn = stalled_handshake(&world);
    let started = Instant::now();
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("setting a read timeout");
    let mut buf = [0; 64];
    let read = conn.read(&mut buf);
    let took = started.elapsed();
    println!("a stalled TLS handshake: {read:?} after {took:?}");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    let (ok, body, log) = world.curl(&world.certs[0].host, "/index.html", &[]);
    assert!(ok && body == "hello over tls\n", "{log}");
}

#[test]
fn sigterm_with_ten_stalled_tls_handshakes_exits_at_once() {
    let mut world = TlsWorld::start(&APPS, &["top: shutdown_timeout = \"30s\""]);
    let stalled: Vec<_> = (0..10).map(|_| stalled_handshake(&world)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    world.bulkhead.signal(nix::sys::signal::Signal::SIGTERM);
    let status = world.bulkhead.wait_exit(Duration::from_secs(40));
    let took = signalled.elapsed();
    println!(
        "SIGTERM with {} stalled TLS handshakes: exit {status:?} after {took:?}",
        stalled.len()
    );
    assert_eq!(status.expect("the broker did not exit").code(), Some(0));
    assert!(took < Duration::from_secs(10), "stalled handshakes held the shutdown for {took:?}");
}

#[test]
fn an_idle_h2_connection_over_tls_is_closed_after_keepalive_timeout() {
    let world = TlsWorld::start(&APPS, &["top: keepalive_timeout = \"2s\""]);
    let host = world.certs[0].host.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let took = rt.block_on(async {
        let mut sender = h2_connect(&world, &host).await;
        assert_eq!(get(&mut sender, &host).await, 200);
        let idle_since = Instant::now();
        while !sender.is_closed() && idle_since.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        idle_since.elapsed()
    });
    println!("an idle h2 connection over TLS: closed after {took:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
}
