//! Managed php-fpm pools (`php = { … }`), attacked from PHP.
//!
//! Two apps each get a pool the broker starts and sandboxes. A probe in
//! alpha's document root tries, one request per attack, to read beta's files,
//! secret, sessions and process memory, Bulkhead's config and a TLS key, to
//! write outside its own writable dir, to connect to beta's FastCGI socket, the
//! control socket, loopback TCP and abstract sockets, to run programs (also
//! through the dynamic loader and LD_PRELOAD + mail()), to signal beta and the
//! broker, to reach beta's SysV IPC, and to exhaust `/tmp`, memory and
//! processes. Every attack must fail, in root and in rootless mode, while beta
//! serves a steady load without one failed request, and beta's secret is in no
//! pool's configuration, argv or environment. A killed pool master is replaced
//! and its app answers again within a second; a reload that changes `php`
//! replaces the pool without a failed request; an on-demand app's pool starts at
//! its first request and stops when idle; `bulkhead audit` checks every php-fpm
//! process; `programs = true` runs programs and still hides the other app.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_tests::bulkhead::Bulkhead;
use bulkhead_tests::http::{Client, Proto, query_encode as encode};
use bulkhead_tests::net::free_port;
use bulkhead_tests::procfs;

const PROBE: &str = include_str!("../php/pool_probe.php");
const UID_FIRST: u32 = 64_100;
/// At least this many attacks must be tried (the issue asks for 35).
const MIN_ATTACKS: usize = 35;

/// beta's page: starts a session, keeps SysV IPC objects and shows its secret works.
const BETA_INDEX: &str = r#"<?php
session_start();
$_SESSION['who'] = 'beta';
if (function_exists('shmop_open')) { @shmop_open(0xB0B, 'c', 0600, 64); @shmop_open(0xB0B + 1, 'c', 0600, 64); }
if (function_exists('msg_get_queue')) { @msg_get_queue(0xB0B, 0600); }
echo 'beta session=', session_id(), ' secret-length=', strlen($_SERVER['BETA_TOKEN'] ?? ''), "\n";
"#;

struct World {
    /// The config the broker started with.
    toml: String,
    dir: tempfile::TempDir,
    bulkhead: Bulkhead,
    client: Client,
}

fn mkdir(path: &Path, mode: u32, owner: Option<u32>) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if let Some(uid) = owner {
        nix::unistd::chown(path, Some(uid.into()), Some(uid.into())).expect("chown");
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn start(mode: &str, extra_alpha: &str) -> World {
    start_with(mode, extra_alpha, "")
}

/// `extra_alpha` goes inside alpha's `php = { … }`, `alpha_lines` into its `[[app]]`.
fn start_with(mode: &str, extra_alpha: &str, alpha_lines: &str) -> World {
    let dir = bulkhead_tests::temp_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root_mode = mode == "root";
    let owner = |n: u32| root_mode.then_some(UID_FIRST + n);
    let p = dir.path();
    for (app, n) in [("alpha", 1), ("beta", 2)] {
        mkdir(&p.join(app), 0o755, None);
        mkdir(&p.join(format!("{app}-data")), 0o700, owner(n));
    }
    write(&p.join("alpha/probe.php"), PROBE, 0o644);
    write(&p.join("alpha/hello.php"), "<?php echo 'alpha ok';", 0o644);
    write(&p.join("beta/index.php"), BETA_INDEX, 0o644);
    write(&p.join("beta-data/data.txt"), "beta private data", 0o600);
    if let Some(uid) = owner(2) {
        nix::unistd::chown(&p.join("beta-data/data.txt"), Some(uid.into()), None).expect("chown");
    }
    write(&p.join("beta-secret"), "beta-token-7f3a", 0o600);
    write(&p.join("tls.key"), "-----BEGIN PRIVATE KEY-----\nfake\n", 0o600);
    let port = free_port();
    let toml = format!(
        "listen = [\"127.0.0.1:{port}\"]\n\
         [sandbox]\nmode = \"{mode}\"\nuid_range = \"{UID_FIRST}-{}\"\n\
         [[app]]\nname = \"alpha\"\nhosts = [\"alpha.localhost\"]\nroot = {a:?}\nwritable = [{aw:?}]\n{alpha_lines}\
         php = {{ max_children = 4{extra_alpha} }}\n\
         [[app]]\nname = \"beta\"\nhosts = [\"beta.localhost\"]\nroot = {b:?}\nwritable = [{bw:?}]\n\
         php = {{ max_children = 4 }}\n\
         [app.secrets]\nBETA_TOKEN = {{ file = {s:?} }}\n",
        UID_FIRST + 10,
        a = p.join("alpha"),
        aw = p.join("alpha-data"),
        b = p.join("beta"),
        bw = p.join("beta-data"),
        s = p.join("beta-secret"),
    );
    let bulkhead = Bulkhead::start(&toml);
    let client = Client::new(bulkhead.addr(), Proto::Http1, &["alpha.localhost", "beta.localhost"]);
    World { toml, dir, bulkhead, client }
}

/// php-fpm's master of `app`: the only child of its pool launcher.
fn fpm_master(world: &World, app: &str) -> u32 {
    let found =
        bulkhead_tests::net::poll_until(Duration::from_secs(5), || running_master(world, app));
    found.unwrap_or_else(|| panic!("no php-fpm master for {app}"))
}

fn running_master(world: &World, app: &str) -> Option<u32> {
    let status = world.bulkhead.status();
    let launcher = status["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == app))
        .and_then(|a| a["pool_pid"].as_u64())?;
    procfs::children(u32::try_from(launcher).ok()?).first().copied()
}

/// Sets the flag when dropped, so a load thread stops even if the test panics.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn beta_session(world: &World) -> String {
    let reply = world.client.get("beta.localhost", "/index.php");
    assert_eq!(reply.status, 200, "{reply:?}");
    let text = reply.text();
    assert!(text.contains("secret-length=15"), "beta must receive its secret: {text}");
    text.split("session=").nth(1).and_then(|s| s.split(' ').next()).expect("session id").to_owned()
}

/// Latencies of `n` sequential requests to beta, and how many failed.
fn beta_load(addr: std::net::SocketAddr, until: impl Fn(usize) -> bool) -> (Vec<Duration>, usize) {
    let client = Client::new(addr, Proto::Http1, &["beta.localhost"]);
    let (mut times, mut failed) = (Vec::new(), 0);
    let mut i = 0;
    while !until(i) {
        let t = Instant::now();
        let reply = client.get("beta.localhost", "/index.php");
        times.push(t.elapsed());
        if reply.status != 200 || !reply.text().contains("secret-length=15") {
            failed += 1;
        }
        i += 1;
    }
    (times, failed)
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    let index = ((times.len() as f64 - 1.0) * p).round() as usize;
    times.get(index).copied().unwrap_or_default()
}

fn attack_all(mode: &str) {
    let world = start(mode, "");
    let p = world.dir.path().to_path_buf();
    let session = beta_session(&world);
    let b_fpm = fpm_master(&world, "beta");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let abstract_name = format!("bulkhead-test-{}", std::process::id());
    let abstract_socket = std::os::unix::net::UnixListener::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(abstract_name.as_bytes())
            .expect("abstract name"),
    )
    .expect("an abstract socket");
    let control = world.bulkhead.config_path().with_file_name("control.sock");
    let pools = control.with_extension("pools");
    let targets = [
        ("b_root", p.join("beta").display().to_string()),
        ("b_writable", p.join("beta-data").display().to_string()),
        ("b_secret", p.join("beta-secret").display().to_string()),
        ("config", world.bulkhead.config_path().display().to_string()),
        ("tls_key", p.join("tls.key").display().to_string()),
        ("b_session", session),
        ("b_tmp", "/tmp".into()),
        ("b_fpm", b_fpm.to_string()),
        ("broker", world.bulkhead.pid().to_string()),
        ("a_root", p.join("alpha").display().to_string()),
        ("b_socket", pools.join("beta/php-fpm.sock").display().to_string()),
        ("control", control.display().to_string()),
        ("tcp_port", tcp.local_addr().expect("addr").port().to_string()),
        ("tcp_other", "127.0.0.2".into()),
        ("abstract", abstract_name),
        ("b_shm", 0xB0B.to_string()),
    ];
    let query: String = targets.iter().map(|(k, v)| format!("&{k}={}", encode(v))).collect();
    let names = world.client.get("alpha.localhost", "/probe.php?list=1").text();
    let names: Vec<&str> = names.lines().filter(|l| !l.is_empty()).collect();
    assert!(names.len() >= MIN_ATTACKS, "only {} attacks: {names:?}", names.len());

    let (mut before, failed_before) = beta_load(world.bulkhead.addr(), |i| i >= 200);
    assert_eq!(failed_before, 0, "beta failed before the attacks");
    let resource = ["fill-tmp", "memory-bomb", "fork-bomb"];
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut during, failed_during, succeeded) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            beta_load(world.bulkhead.addr(), |_| done.load(std::sync::atomic::Ordering::Relaxed))
        });
        let _stop = StopOnDrop(&done);
        let mut succeeded = Vec::new();
        for name in &names {
            let reply =
                world.client.get("alpha.localhost", &format!("/probe.php?run={name}{query}"));
            let text = reply.text();
            let line = text.lines().find(|l| l.starts_with(&format!("{name}:")));
            let outcome = line.map_or_else(
                || format!("{name}: blocked: the request ended ({})", reply.status),
                str::to_owned,
            );
            println!("[{mode}] {outcome}");
            if outcome.contains(": SUCCEEDED") {
                succeeded.push(outcome);
            }
        }
        for name in resource {
            for _ in 0..3 {
                let _ =
                    world.client.get("alpha.localhost", &format!("/probe.php?run={name}{query}"));
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (times, failed) = load.join().expect("load thread");
        (times, failed, succeeded)
    });
    println!("[{mode}] {} attacks tried, {} succeeded", names.len(), succeeded.len());
    println!(
        "[{mode}] beta while idle: p50 {:?} p99 {:?} ({} requests); during alpha's attacks: p50 {:?} p99 {:?} ({} requests, {} failed)",
        percentile(&mut before, 0.5),
        percentile(&mut before, 0.99),
        before.len(),
        percentile(&mut during, 0.5),
        percentile(&mut during, 0.99),
        during.len(),
        failed_during
    );
    assert!(succeeded.is_empty(), "attacks succeeded in {mode} mode: {succeeded:#?}");
    assert_eq!(failed_during, 0, "beta failed requests while alpha attacked");
    let hello = world.client.get("alpha.localhost", "/hello.php");
    assert_eq!(hello.text(), "alpha ok", "alpha still serves after its attacks");
    secrets_stay_out_of_pools(&world, &pools);
    drop((tcp, abstract_socket));
}

/// beta's secret travels only per request: never in a pool's config, argv or environment.
fn secrets_stay_out_of_pools(world: &World, pools: &Path) {
    let secret = b"beta-token-7f3a";
    for app in ["alpha", "beta"] {
        let config = std::fs::read(pools.join(app).join("php-fpm.conf")).expect("the pool config");
        assert!(!procfs::contains_bytes(&config, secret), "{app}'s pool config holds the secret");
        let master = fpm_master(world, app);
        let mut pids = vec![master];
        pids.extend(procfs::children(master));
        for pid in pids {
            let environ = procfs::environ(pid).unwrap_or_default();
            let argv = procfs::cmdline(pid);
            assert!(
                !procfs::contains_bytes(&environ, secret),
                "{app}'s php-fpm {pid} env holds it"
            );
            assert!(!procfs::contains_bytes(&argv, secret), "{app}'s php-fpm {pid} argv holds it");
        }
    }
}

#[test]
fn php_attacks_fail_in_root_mode() {
    attack_all("root");
}

#[test]
fn php_attacks_fail_in_rootless_mode() {
    attack_all("rootless");
}

#[test]
fn a_killed_pool_master_is_replaced_within_a_second_and_the_other_app_sees_nothing() {
    let world = start("root", "");
    assert_eq!(world.client.get("alpha.localhost", "/hello.php").text(), "alpha ok");
    beta_session(&world);
    let master = fpm_master(&world, "alpha");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (back_after, failed) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            beta_load(world.bulkhead.addr(), |_| done.load(std::sync::atomic::Ordering::Relaxed))
        });
        let _stop = StopOnDrop(&done);
        std::thread::sleep(Duration::from_millis(300));
        let killed = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(master as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("killing php-fpm's master");
        let back = loop {
            let reply = world.client.get("alpha.localhost", "/hello.php");
            if reply.status == 200
                && reply.text() == "alpha ok"
                && fpm_master(&world, "alpha") != master
            {
                break killed.elapsed();
            }
            assert!(killed.elapsed() < Duration::from_secs(10), "alpha never came back");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (back, load.join().expect("load").1)
    });
    println!(
        "alpha answered again {back_after:?} after its php-fpm master was killed; beta failed {failed}"
    );
    // The time is printed, not asserted (a loaded machine must not fail the test);
    // the backlog of the kept socket is what makes the gap short.
    assert!(back_after < Duration::from_secs(5), "alpha took {back_after:?} to come back");
    assert_eq!(failed, 0, "beta failed requests while alpha's pool restarted");
}

#[test]
fn audit_checks_every_php_fpm_process_against_the_pool_profile() {
    for mode in ["root", "rootless"] {
        let world = start(mode, "");
        assert_eq!(world.client.get("alpha.localhost", "/hello.php").text(), "alpha ok");
        let out = std::process::Command::new(bulkhead_tests::binaries::broker())
            .args(["audit", "--config"])
            .arg(world.bulkhead.config_path())
            .output()
            .expect("running bulkhead audit");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        println!("[{mode}] {text}");
        assert!(out.status.success(), "audit failed in {mode} mode:\n{text}");
        assert!(text.contains("limits in force: ") && text.contains("Max processes 36"), "{text}");
        for app in ["alpha", "beta"] {
            assert!(
                text.contains(&format!("pool[{app}] (pid")),
                "{app}'s launcher audited: {text}"
            );
            assert!(
                text.contains(&format!("pool[{app}] php-fpm (pid")),
                "{app}'s php-fpm audited: {text}"
            );
        }
    }
}

/// With a TCP `connect` endpoint the pool shares the host's network, where Landlock pins
/// TCP connect to the declared port but has no rules for UDP, raw or netlink sockets, nor
/// for a `listen` that binds a port by itself: seccomp refuses those (and netlink, which PHP
/// cannot ask for without FFI). The declared port is reached; 5 other ways out are not.
#[test]
fn a_pool_with_a_tcp_endpoint_reaches_that_port_and_nothing_else() {
    let declared = std::net::TcpListener::bind("127.0.0.1:0").expect("a declared listener");
    let port = declared.local_addr().expect("its address").port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP listener");
    udp.set_nonblocking(true).expect("non-blocking");
    let udp_port = udp.local_addr().expect("its address").port();
    let world = start("root", &format!(", connect = [\"tcp:127.0.0.1:{port}\"]"));
    let page = format!(
        r#"<?php
$r = [];
$c = @stream_socket_client("tcp://127.0.0.1:{port}", $no, $err, 2);
$r[] = "declared tcp: " . ($c ? "connected" : "refused $err");
$u = @stream_socket_client("udp://127.0.0.1:{udp_port}", $no, $err, 2);
$r[] = "udp: " . (($u && @fwrite($u, "leak") > 0) ? "SENT" : "refused $err");
$s = @stream_socket_server("tcp://127.0.0.1:0", $no, $err);
$r[] = "listen: " . ($s ? "LISTENING" : "refused $err");
if (function_exists("socket_create")) {{
    $l = @socket_create(AF_INET, SOCK_STREAM, SOL_TCP);
    $r[] = "autobind listen: " . (($l && @socket_listen($l)) ? "LISTENING" : "refused");
    $n = @socket_create(AF_INET, SOCK_RAW, 1);
    $r[] = "raw icmp: " . ($n ? "OPEN" : "refused");
    $d = @socket_create(AF_INET, SOCK_DGRAM, SOL_UDP);
    $r[] = "udp socket: " . ($d ? "OPEN" : "refused");
}}
echo implode("\n", $r);
"#
    );
    write(&world.dir.path().join("alpha/net.php"), &page, 0o644);
    let text = world.client.get("alpha.localhost", "/net.php").text();
    println!("{text}");
    assert!(text.contains("declared tcp: connected"), "the declared endpoint is reachable: {text}");
    for way_out in ["SENT", "LISTENING", "OPEN"] {
        assert!(!text.contains(way_out), "{way_out}: a way out of the declared endpoint:\n{text}");
    }
    let mut buf = [0; 16];
    assert!(udp.recv(&mut buf).is_err(), "the UDP listener received bytes from PHP");
    let tried = text.lines().count();
    println!("{tried} network attempts, {} refused", text.matches("refused").count());
    assert!(tried >= 3, "{text}");
}

#[test]
fn programs_true_lets_php_run_programs_and_still_hides_the_other_app() {
    let world = start("root", ", programs = true");
    let p = world.dir.path();
    let page = format!(
        "<?php echo shell_exec('echo ran-a-shell'), var_export(@file_get_contents({:?}), true);",
        p.join("beta-secret").display().to_string()
    );
    write(&p.join("alpha/run.php"), &page, 0o644);
    let text = world.client.get("alpha.localhost", "/run.php").text();
    assert!(text.contains("ran-a-shell"), "programs = true runs a shell: {text}");
    assert!(text.ends_with("false"), "beta's secret stays out of view: {text}");
}

#[test]
fn a_reload_that_changes_php_settings_replaces_the_pool_without_a_failed_request() {
    let world = start("root", "");
    let p = world.dir.path();
    write(&p.join("alpha/ini.php"), "<?php echo 'limit=', ini_get('upload_max_filesize');", 0o644);
    let ini = || world.client.get("alpha.localhost", "/ini.php").text();
    assert_eq!(ini(), "limit=2M", "php.ini's default first");
    let old = fpm_master(&world, "alpha");
    let done = std::sync::atomic::AtomicBool::new(false);
    let addr = world.bulkhead.addr();
    let (failed, total) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let client = Client::new(addr, Proto::Http1, &["alpha.localhost"]);
            let (mut failed, mut total) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = client.get("alpha.localhost", "/hello.php");
                total += 1;
                if reply.status != 200 || reply.text() != "alpha ok" {
                    failed += 1;
                }
            }
            (failed, total)
        });
        let _stop = StopOnDrop(&done);
        std::thread::sleep(Duration::from_millis(300));
        let changed = world.toml.replacen(
            "php = { max_children = 4 }",
            "php = { max_children = 4, php_admin_value = { \"upload_max_filesize\" = \"7M\" } }",
            1,
        );
        assert_ne!(changed, world.toml);
        world.bulkhead.rewrite_config(&changed);
        let out = world.bulkhead.reload();
        assert_eq!(out.code, Some(0), "reload: {}", out.output());
        let applied = bulkhead_tests::net::poll_until(Duration::from_secs(5), || {
            (ini() == "limit=7M").then_some(())
        });
        assert!(applied.is_some(), "the new setting never applied: {}", ini());
        std::thread::sleep(Duration::from_millis(500));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().expect("load")
    });
    println!("{total} requests to alpha across the pool's replacement, {failed} failed");
    assert!(running_master(&world, "alpha").is_some_and(|m| m != old), "a new php-fpm master runs");
    assert_eq!(failed, 0, "requests failed while the pool was replaced");
}

#[test]
fn an_on_demand_app_starts_its_pool_at_the_first_request_and_stops_it_when_idle() {
    let world = start_with("root", "", "on_demand = true\nidle_timeout = \"1s\"\n");
    let pool_of = |app: &str| {
        let status = world.bulkhead.status();
        let apps = status["apps"].as_array().cloned().unwrap_or_default();
        apps.iter().find(|a| a["name"] == app).and_then(|a| a["pool_pid"].as_u64())
    };
    assert_eq!(pool_of("alpha"), None, "no pool before the first request");
    assert!(pool_of("beta").is_some(), "beta is not on demand");
    let cold = Instant::now();
    let reply = world.client.get("alpha.localhost", "/hello.php");
    let took = cold.elapsed();
    assert_eq!(reply.text(), "alpha ok", "{reply:?}");
    println!("on-demand cold start with its pool: first response after {took:?}");
    assert!(pool_of("alpha").is_some(), "the pool runs while the app is in demand");
    let stopped = bulkhead_tests::net::poll_until(Duration::from_secs(10), || {
        pool_of("alpha").is_none().then_some(())
    });
    assert!(stopped.is_some(), "the pool stops with its idle workers");
    assert_eq!(
        world.client.get("alpha.localhost", "/hello.php").text(),
        "alpha ok",
        "and starts again"
    );
}
