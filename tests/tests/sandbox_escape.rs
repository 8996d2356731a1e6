//! The escape battery: from inside each sandbox profile the broker hands out
//! (the gateway's, and app A's worker's), in root mode and in rootless mode,
//! every attack must fail.
//!
//! The profiles come from `bulkhead::profiles` on a config loaded with
//! `bulkhead::config::load`, exactly as the broker builds them. The probe
//! (`bulkhead-probe`, test-only) applies one with `sandbox::enter`, a tokio
//! runtime and `sandbox::lock`, as every child does, then makes one attempt;
//! each attempt runs in its own probe process, because the real seccomp
//! policy kills the process on a forbidden syscall, and such a death (SIGSYS)
//! counts as blocked.
//!
//! Root mode runs the probe as root, like the broker's children before they
//! drop privileges, and targets this test process as "the broker". Rootless
//! mode runs the probe as `nobody`, like an unprivileged broker's children, and
//! targets a process of that same user as "the broker".

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bulkhead_tests::config::{AppSpec, config_toml};
use bulkhead_tests::net::{free_port, loopback};
use bulkhead_tests::php::write_file;

/// Where the battery must end up at least.
const MIN_ATTACKS: usize = 30;
/// `nobody`: the unprivileged user of the rootless runs.
const NOBODY: u32 = 65534;
/// Something in this process's memory for `process_vm_readv` to aim at.
static BROKER_MEMORY: [u8; 16] = *b"broker-memory!!!";

/// Two apps, their sockets and secrets, a loopback TCP service and the config.
struct World {
    dir: tempfile::TempDir,
    config: PathBuf,
    a_root: PathBuf,
    b_root: PathBuf,
    b_socket: PathBuf,
    b_secret: PathBuf,
    abstract_name: String,
    /// The loopback service the probe must not reach; kept open for the test's length.
    _tcp: TcpListener,
    /// Where `PROBE_TCP` points: the loopback service unless a test retargets it.
    probe_tcp: std::cell::RefCell<String>,
    /// App A's FastCGI backend when it is a TCP one.
    a_backend: Option<TcpListener>,
    _listeners: Vec<UnixListener>,
}

fn world(mode: &str) -> World {
    world_with(mode, false)
}

/// With `tcp_backend`, app A's FastCGI server is a TCP listener on loopback.
fn world_with(mode: &str, tcp_backend: bool) -> World {
    let a_backend =
        tcp_backend.then(|| TcpListener::bind("127.0.0.1:0").expect("binding A's backend"));
    let dir = bulkhead_tests::temp_dir();
    let path = |rel: &str| dir.path().join(rel);
    let mut apps = Vec::new();
    let mut listeners = Vec::new();
    for name in ["a", "b"] {
        let root = path(&format!("apps/{name}"));
        write_file(&root, "index.php", "<?php echo 'hi';");
        let socket = path(&format!("{name}.sock"));
        listeners.push(UnixListener::bind(&socket).expect("binding an app socket"));
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let secret = path(&format!("{name}-secret"));
        std::fs::write(&secret, format!("secret-of-{name}")).expect("writing a secret");
        let fastcgi = match (&a_backend, name) {
            (Some(backend), "a") => backend.local_addr().expect("addr").to_string(),
            _ => format!("unix:{}", socket.display()),
        };
        let app = AppSpec::new(name, &root, &fastcgi);
        apps.push(app.secret_file("DB_PASSWORD", &secret));
    }
    let abstract_name = format!("bulkhead-probe-{}-{mode}", std::process::id());
    let addr = UnixSocketAddr::from_abstract_name(abstract_name.as_bytes()).expect("abstract name");
    listeners.push(UnixListener::bind_addr(&addr).expect("binding an abstract socket"));
    let toml =
        format!("{}\n[sandbox]\nmode = \"{mode}\"\n", config_toml(&[loopback(free_port())], &apps));
    let config = path("bulkhead.toml");
    std::fs::write(&config, toml).expect("writing the config");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("binding a loopback service");
    let probe_tcp = std::cell::RefCell::new(tcp.local_addr().expect("addr").to_string());
    World {
        probe_tcp,
        a_backend,
        a_root: path("apps/a"),
        b_root: path("apps/b"),
        b_socket: path("b.sock"),
        b_secret: path("b-secret"),
        config,
        dir,
        abstract_name,
        _tcp: tcp,
        _listeners: listeners,
    }
}

/// Which profile to attack from.
#[derive(Debug, Clone, Copy)]
enum Role {
    Gateway,
    WorkerOfA,
}

/// The profile exactly as the broker builds it, written where the probe can read it.
fn profile_file(world: &World, role: Role) -> PathBuf {
    let config = bulkhead::config::load(&world.config).expect("the battery's config is valid");
    let profile = match role {
        Role::Gateway => bulkhead::profiles::gateway(&config),
        Role::WorkerOfA => bulkhead::profiles::worker(&config, &config.apps[0]),
    };
    assert!(profile.is_enabled(), "{role:?} must be sandboxed");
    let file = world.dir.path().join(format!("{role:?}.json"));
    std::fs::write(&file, serde_json::to_vec(&profile).expect("a profile serializes"))
        .expect("write");
    file
}

/// The probe, copied where `nobody` can execute it.
fn probe_binary(world: &World) -> PathBuf {
    let copy = world.dir.path().join("bulkhead-probe");
    if !copy.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_bulkhead-probe"), &copy).expect("copying the probe");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    copy
}

fn attacks(probe: &Path) -> Vec<String> {
    let out = Command::new(probe).arg("--list").output().expect("listing the attacks");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// A stand-in broker: a process of the probe's own user (rootless mode).
struct FakeBroker(Child);

impl Drop for FakeBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pid and a readable address of "the broker" the probe attacks.
fn broker_target(rootless: bool) -> (u32, usize, Option<FakeBroker>) {
    if !rootless {
        return (std::process::id(), BROKER_MEMORY.as_ptr() as usize, None);
    }
    let child = Command::new("sleep").arg("600").uid(NOBODY).gid(NOBODY).spawn().expect("sleep");
    let pid = child.id();
    let addr = readable_address(pid);
    (pid, addr, Some(FakeBroker(child)))
}

/// The start of the first readable mapping of `pid`.
fn readable_address(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("reading maps");
    maps.lines()
        .find(|line| line.split_whitespace().nth(1).is_some_and(|p| p.starts_with('r')))
        .and_then(|line| usize::from_str_radix(line.split('-').next()?, 16).ok())
        .expect("a readable mapping")
}

/// How one attempt ended.
#[derive(Debug)]
enum Verdict {
    Blocked(String),
    Escaped(String),
}

impl Verdict {
    /// What the probe or the kernel said.
    fn text(&self) -> String {
        match self {
            Self::Blocked(why) => format!("blocked ({why})"),
            Self::Escaped(what) => format!("ESCAPED ({what})"),
        }
    }
}

fn attempt(
    world: &World,
    probe: &Path,
    profile: &Path,
    attack: &str,
    rootless: bool,
    broker: (u32, usize),
) -> Verdict {
    let mut cmd = Command::new(probe);
    cmd.arg(profile)
        .arg(attack)
        .env_clear()
        .env("PROBE_TCP", world.probe_tcp.borrow().as_str())
        .env("PROBE_A_ROOT", &world.a_root)
        .env("PROBE_B_ROOT", &world.b_root)
        .env("PROBE_B_SECRET", &world.b_secret)
        .env("PROBE_B_SOCKET", &world.b_socket)
        .env("PROBE_CONFIG", &world.config)
        .env("PROBE_ABSTRACT", &world.abstract_name)
        .env("PROBE_BROKER_PID", broker.0.to_string())
        .env("PROBE_BROKER_ADDR", format!("{:x}", broker.1))
        .stdin(Stdio::null());
    if rootless {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let out = cmd.output().expect("running the probe");
    let verdict = judge(attack, &out);
    match (verdict, host_path_written(world, attack)) {
        // A write only counts if the host sees it: the worker's private /tmp is
        // writable by design and holds empty copies of its mount points' parents.
        (Verdict::Escaped(what), Some(path)) if !path.exists() => Verdict::Blocked(format!(
            "{what} (only inside its private tmpfs; the host has no {})",
            path.display()
        )),
        (verdict, Some(path)) => {
            let _ = std::fs::remove_file(path);
            verdict
        }
        (verdict, None) => verdict,
    }
}

/// The host path a write attack targets.
fn host_path_written(world: &World, attack: &str) -> Option<PathBuf> {
    match attack {
        "write-root" => Some(PathBuf::from("/escaped")),
        "write-a-root" => Some(world.a_root.join("escaped.php")),
        "write-config-dir" => Some(PathBuf::from(format!("{}.escaped", world.config.display()))),
        _ => None,
    }
}

fn judge(attack: &str, out: &std::process::Output) -> Verdict {
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match (out.status.code(), out.status.signal()) {
        (_, Some(libc::SIGSYS)) => Verdict::Blocked("killed by seccomp (SIGSYS)".into()),
        (Some(0), _) if stdout.starts_with("blocked:") => Verdict::Blocked(stdout),
        (Some(3), _) => Verdict::Escaped(stdout),
        _ if stdout.contains("ESCAPED") => Verdict::Escaped(stdout),
        (code, signal) => panic!(
            "{attack}: the probe failed to run (code {code:?}, signal {signal:?})\nstdout: {stdout}\nstderr: {stderr}"
        ),
    }
}

fn battery(role: Role, mode: &str) {
    let rootless = mode == "rootless";
    let world = world(mode);
    let profile = profile_file(&world, role);
    let probe = probe_binary(&world);
    let (pid, addr, _fake) = broker_target(rootless);
    let attacks = attacks(&probe);
    let mut results = BTreeMap::new();
    for attack in &attacks {
        results.insert(
            attack.clone(),
            attempt(&world, &probe, &profile, attack, rootless, (pid, addr)),
        );
    }
    let escaped: Vec<_> =
        results.iter().filter(|(_, v)| matches!(v, Verdict::Escaped(_))).collect();
    println!("{role:?} profile, {mode} mode:");
    for (attack, verdict) in &results {
        println!("  {attack:<26} {}", verdict.text());
    }
    println!(
        "{role:?} ({mode} mode): {} attacks tried, {} succeeded",
        results.len(),
        escaped.len()
    );
    assert!(results.len() >= MIN_ATTACKS, "only {} attacks", results.len());
    assert!(escaped.is_empty(), "{role:?} ({mode}): escapes: {escaped:#?}");
}

#[test]
fn gateway_root_mode_resists_every_attack() {
    battery(Role::Gateway, "root");
}

#[test]
fn worker_root_mode_resists_every_attack() {
    battery(Role::WorkerOfA, "root");
}

#[test]
fn gateway_rootless_mode_resists_every_attack() {
    battery(Role::Gateway, "rootless");
}

#[test]
fn worker_rootless_mode_resists_every_attack() {
    battery(Role::WorkerOfA, "rootless");
}

/// Attacks that the other layers (namespaces, mount view, identity, Landlock)
/// must stop on their own, without seccomp.
const WITHOUT_SECCOMP: &[&str] = &[
    "read-etc-passwd",
    "read-etc-shadow",
    "read-b-root-file",
    "list-b-root",
    "read-b-secret",
    "read-b-secret-on-runtime-threads",
    "read-config",
    "list-root",
    "read-proc-1-environ",
    "write-root",
    "write-a-root",
    "write-config-dir",
    "connect-tcp-loopback",
    "reconnect-inherited-tcp",
    "connect-b-fastcgi",
    "connect-abstract-unix",
    "kill-broker",
    "ptrace-broker",
    "process-vm-readv-broker",
    "setuid-0",
    "mount-tmpfs",
    "chroot",
];

/// Defence in depth: the same profiles with seccomp removed (a test-only
/// variant, never built by the broker) still stop every attack that does not
/// depend on seccomp — so one broken layer is not an escape.
fn layers_without_seccomp(role: Role, mode: &str) {
    let rootless = mode == "rootless";
    let world = world(mode);
    let config = bulkhead::config::load(&world.config).expect("valid config");
    let mut profile = match role {
        Role::Gateway => bulkhead::profiles::gateway(&config),
        Role::WorkerOfA => bulkhead::profiles::worker(&config, &config.apps[0]),
    };
    profile.seccomp = None;
    let file = world.dir.path().join("no-seccomp.json");
    std::fs::write(&file, serde_json::to_vec(&profile).expect("serializes")).expect("write");
    let probe = probe_binary(&world);
    let (pid, addr, _fake) = broker_target(rootless);
    let mut escaped = Vec::new();
    for attack in WITHOUT_SECCOMP {
        let verdict = attempt(&world, &probe, &file, attack, rootless, (pid, addr));
        println!("  {attack:<32} {}", verdict.text());
        if matches!(verdict, Verdict::Escaped(_)) {
            escaped.push(attack);
        }
    }
    println!(
        "{role:?} without seccomp ({mode} mode): {} attacks tried, {} succeeded",
        WITHOUT_SECCOMP.len(),
        escaped.len()
    );
    assert!(escaped.is_empty(), "{role:?} ({mode}) without seccomp: {escaped:?}");
}

#[test]
fn gateway_layers_hold_without_seccomp() {
    layers_without_seccomp(Role::Gateway, "root");
    layers_without_seccomp(Role::Gateway, "rootless");
}

#[test]
fn worker_layers_hold_without_seccomp() {
    layers_without_seccomp(Role::WorkerOfA, "root");
    layers_without_seccomp(Role::WorkerOfA, "rootless");
}

/// A worker whose backend is TCP keeps the host's network, but Landlock lets
/// it connect to its backend's port only; everything else stays closed.
#[test]
fn tcp_backend_worker_reaches_only_its_backend_port() {
    const BLOCKED: &[&str] = &[
        "connect-tcp-loopback",
        "reconnect-inherited-tcp",
        "socket-udp",
        "socket-netlink",
        "socket-packet",
        "socket-unix",
        "connect-b-fastcgi",
        "connect-abstract-unix",
        "read-b-secret",
        "read-config",
    ];
    for mode in ["root", "rootless"] {
        let rootless = mode == "rootless";
        let world = world_with(mode, true);
        let profile = profile_file(&world, Role::WorkerOfA);
        let probe = probe_binary(&world);
        let (pid, addr, _fake) = broker_target(rootless);
        for attack in BLOCKED {
            let verdict = attempt(&world, &probe, &profile, attack, rootless, (pid, addr));
            println!("  {mode:<8} {attack:<26} {}", verdict.text());
            assert!(matches!(verdict, Verdict::Blocked(_)), "{mode}: {attack}: {verdict:?}");
        }
        let backend = world.a_backend.as_ref().expect("a TCP backend").local_addr().expect("addr");
        *world.probe_tcp.borrow_mut() = backend.to_string();
        let own = attempt(&world, &probe, &profile, "connect-tcp-loopback", rootless, (pid, addr));
        println!("  {mode:<8} connect to its own backend {}", own.text());
        assert!(matches!(own, Verdict::Escaped(_)), "{mode}: its own backend must stay reachable");
    }
}

/// Positive control: without a sandbox the same probe does escape, so a
/// "blocked" above is the sandbox's doing and not a broken attack.
#[test]
fn unsandboxed_probe_escapes() {
    let world = world("off");
    let file = world.dir.path().join("none.json");
    std::fs::write(&file, b"{\"namespaces\":{\"user\":false,\"mount\":false,\"net\":false,\"ipc\":false,\"uts\":false},\"mounts\":null,\"identity\":null,\"rlimits\":[],\"drop_privileges\":false,\"landlock\":null,\"seccomp\":null,\"best_effort\":false}").expect("write");
    let probe = probe_binary(&world);
    let broker = (std::process::id(), BROKER_MEMORY.as_ptr() as usize);
    for attack in [
        "read-b-secret",
        "read-config",
        "connect-tcp-loopback",
        "reconnect-inherited-tcp",
        "socket-netlink",
        "fork",
    ] {
        let verdict = attempt(&world, &probe, &file, attack, false, broker);
        assert!(
            matches!(verdict, Verdict::Escaped(_)),
            "{attack} must work unsandboxed: {verdict:?}"
        );
    }
}
