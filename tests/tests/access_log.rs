//! The access log end to end: lines for HTTP/1.1, h2c, TLS and a gateway-answered 421 in
//! both formats, parsed field by field; logrotate's rename then SIGUSR1; a stalled log
//! (a FIFO nobody reads) that never holds up a request; `log_format = "json"`.

use bulkhead_tests::net::poll_until;
use bulkhead_tests::tls::{KeyType, TlsWorld};
use bulkhead_tests::{AppPlan, Proto, Stack, StackOptions, php};
use nix::sys::signal::Signal;
use regex::Regex;
use std::path::Path;
use std::time::Duration;

const HOST: &str = "alpha.localhost";

fn stack(top: &[String]) -> Stack {
    let plan = AppPlan::new("alpha").file("hello.php", &php::hello("alpha")).file("s.txt", "s\n");
    let options = StackOptions { top: top.to_vec(), ..StackOptions::default() };
    Stack::start_with(&[plan], &options)
}

fn access_log_line(path: &Path, format: &str) -> String {
    format!("access_log = {{ path = {:?}, format = {format:?} }}", path.display().to_string())
}

/// The lines of `path` once it has at least `n` besides the harness's readiness probe (a
/// `GET /` answered 421).
fn lines(path: &Path, n: usize) -> Vec<String> {
    let got = poll_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(path).ok()?;
        let probe =
            |l: &&str| l.contains("\"GET / HTTP/1.1\" 421") || l.contains("\"request_uri\":\"/\",");
        let lines: Vec<String> = text.lines().filter(|l| !probe(l)).map(str::to_owned).collect();
        (lines.len() >= n).then_some(lines)
    });
    got.unwrap_or_else(|| {
        panic!("{} never had {n} lines: {:?}", path.display(), std::fs::read_to_string(path))
    })
}

/// nginx's `combined`, captured: addr, time, method, target, protocol, status, bytes,
/// referer, user agent.
fn combined(line: &str) -> Vec<String> {
    let re = Regex::new(
        r#"^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$"#,
    )
    .expect("a valid pattern");
    let caps = re.captures(line).unwrap_or_else(|| panic!("not a combined line: {line:?}"));
    (1..=9).map(|i| caps[i].to_owned()).collect()
}

#[test]
fn combined_lines_for_http1_h2c_and_a_421_carry_every_field() {
    let dir = bulkhead_tests::temp_dir();
    let path = dir.path().join("access.log");
    let stack = stack(&[access_log_line(&path, "combined")]);
    let h1 = stack.client(Proto::Http1);
    let ua = |c: &bulkhead_tests::Client, host: &str, path: &str, agent: &str| {
        c.send(c.request(reqwest::Method::GET, host, path).header("user-agent", agent))
            .expect("a reply")
    };
    let reply = ua(&h1, HOST, "/hello.php?n=7", "agent \"one\"");
    assert_eq!(reply.status, 200, "{reply:?}");
    let h2 = stack.client(Proto::H2c);
    assert_eq!(ua(&h2, HOST, "/s.txt", "agent-two").status, 200);
    let other = stack.client_with(Proto::Http1, &["nobody.localhost"]);
    assert_eq!(ua(&other, "nobody.localhost", "/x", "agent-three").status, 421);
    let found = lines(&path, 3);
    let f: Vec<Vec<String>> = found.iter().map(|l| combined(l)).collect();
    let body = php::hello_body("alpha", 7).len().to_string();
    assert_eq!(
        f[0][2..],
        ["GET", "/hello.php?n=7", "HTTP/1.1", "200", &body, "-", "agent \\x22one\\x22"]
    );
    assert_eq!(f[0][0], "127.0.0.1");
    assert_eq!(f[1][2..], ["GET", "/s.txt", "HTTP/2.0", "200", "2", "-", "agent-two"]);
    assert_eq!(f[2][2..5], ["GET", "/x", "HTTP/1.1"]);
    assert_eq!((f[2][5].as_str(), f[2][8].as_str()), ("421", "agent-three"));
    assert!(f[2][6].parse::<u64>().expect("a byte count") > 0, "the 421 has a body");
}

#[test]
fn json_lines_name_the_app_protocol_tls_version_and_request_time() {
    let dir = bulkhead_tests::temp_dir();
    let path = dir.path().join("access.json");
    let top = format!("top:{}", access_log_line(&path, "json"));
    let world = TlsWorld::start(&[("alpha", KeyType::P256)], &[&top]);
    let (ok, body, log) =
        world.curl(HOST, "/index.html?q=1", &["--http2", "-A", "curl-tls", "-e", "http://r/"]);
    assert!(ok && body == "hello over tls\n", "{log}");
    let (ok, _, log) = world.curl(HOST, "/index.html", &["--http1.1", "--tls-max", "1.2"]);
    assert!(ok, "{log}");
    let found = lines(&path, 2);
    let v: Vec<serde_json::Value> = found
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let e = &v[0];
    assert_eq!(e["app"], "alpha");
    assert_eq!(e["remote_addr"], "127.0.0.1");
    assert_eq!(
        (e["request_method"].as_str(), e["request_uri"].as_str()),
        (Some("GET"), Some("/index.html?q=1"))
    );
    assert_eq!(e["server_protocol"], "HTTP/2.0");
    assert_eq!(e["ssl_protocol"], "TLSv1.3");
    assert_eq!((e["status"].as_u64(), e["body_bytes_sent"].as_u64()), (Some(200), Some(15)));
    assert_eq!(
        (e["http_user_agent"].as_str(), e["http_referer"].as_str()),
        (Some("curl-tls"), Some("http://r/"))
    );
    assert_eq!(e["host"], HOST);
    assert!(e["request_time"].as_f64().is_some_and(|t| (0.0..10.0).contains(&t)), "{e}");
    assert!(e["time_iso8601"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    assert_eq!(
        (v[1]["server_protocol"].as_str(), v[1]["ssl_protocol"].as_str()),
        (Some("HTTP/1.1"), Some("TLSv1.2"))
    );
}

#[test]
fn a_renamed_log_is_reopened_on_sigusr1_and_gets_no_more_lines() {
    let dir = bulkhead_tests::temp_dir();
    let path = dir.path().join("access.log");
    let stack = stack(&[access_log_line(&path, "combined")]);
    let client = stack.client(Proto::Http1);
    assert_eq!(client.get(HOST, "/s.txt?before").status, 200);
    lines(&path, 1);
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).expect("renaming the log");
    stack.bulkhead.signal(Signal::SIGUSR1);
    // A line written between the signal and the reopen would still go to the old file.
    let reopened = poll_until(Duration::from_secs(10), || {
        stack.bulkhead.log().contains("access log reopened").then_some(())
    });
    assert!(reopened.is_some(), "{}", stack.bulkhead.log());
    assert_eq!(client.get(HOST, "/s.txt?after").status, 200);
    let new = lines(&path, 1);
    assert!(new.len() == 1 && new[0].contains("/s.txt?after"), "{new:?}");
    let old = std::fs::read_to_string(&rotated).expect("the rotated log");
    assert!(old.contains("/s.txt?before") && !old.contains("after"), "{old}");
}

#[test]
fn a_stalled_log_drops_and_counts_lines_and_never_holds_up_a_request() {
    let dir = bulkhead_tests::temp_dir();
    let fifo = dir.path().join("access.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("making a FIFO");
    // A reader that never reads: the broker's writes fill the FIFO, then block for good.
    let _held = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).expect("opening");
    let stack = stack(&[access_log_line(&fifo, "combined")]);
    let client = stack.client(Proto::H2c);
    let agent = "a".repeat(400);
    let mut failed = 0;
    for i in 0..10_000 {
        let req = client.request(reqwest::Method::GET, HOST, &format!("/s.txt?{i}"));
        match client.send(req.header("user-agent", &agent)) {
            Ok(reply) if reply.status == 200 => {}
            _ => failed += 1,
        }
    }
    assert_eq!(failed, 0, "every request is answered while the log is stalled");
    let dropped = poll_until(Duration::from_secs(5), || {
        let log = stack.bulkhead.log();
        let re = Regex::new(r"access log lines dropped.*? total=(\d+)").expect("a valid pattern");
        let totals = re.captures_iter(&log).map(|c| c[1].parse::<u64>().unwrap_or(0));
        totals.max().filter(|&t| t > 0)
    });
    let total =
        dropped.unwrap_or_else(|| panic!("no dropped count logged: {}", stack.bulkhead.log()));
    // 10,000 lines of ~480 bytes cannot fit the FIFO, the pipe and the queue (~1.2 MiB).
    assert!((5_000..=10_000).contains(&total), "dropped {total}");
}

#[test]
fn log_format_json_makes_every_broker_line_json_and_debug_spares_the_frame_dumps() {
    let top = [r#"log_format = "json""#.to_owned(), r#"log_level = "debug""#.to_owned()];
    let stack = stack(&top);
    for proto in [Proto::Http1, Proto::H2c] {
        assert_eq!(stack.client(proto).get(HOST, "/hello.php?n=1").status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = stack.bulkhead.log();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let target = v["target"].as_str().unwrap_or_else(|| panic!("no target: {line}"));
        lines += 1;
        if v["level"] == "DEBUG" {
            assert!(target.starts_with("bulkhead") || target.starts_with("privsep"), "{line}");
        }
        for noise in ["h2::", "hyper::proto", "send frame", "received frame"] {
            assert!(!line.contains(noise), "library noise at debug: {line}");
        }
    }
    assert!(lines > 3, "the broker logged its start and its children's lines: {log}");
}
