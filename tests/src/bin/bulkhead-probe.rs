//! `bulkhead-probe PROFILE.json ATTACK`: enters a sandbox profile exactly as a
//! child does (`sandbox::enter`, a tokio runtime, `sandbox::lock`), then makes
//! one escape attempt. Exists only in the test package.
//!
//! Verdicts: prints `blocked: …` and exits 0 when the attempt failed; prints
//! `ESCAPED: …` and exits 3 when it succeeded; exits 2 when the sandbox could
//! not be set up. A seccomp kill (SIGSYS) is a block, judged by the caller.
//! What to attack comes from `PROBE_*` environment variables (see
//! `tests/tests/sandbox_escape.rs`).

#![forbid(unsafe_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use privsep::sandbox::{self, Profile, probe};

/// What exists before the sandbox: the "inherited" socket and bytes to exec.
struct Prepared {
    inherited: Option<TcpStream>,
    shell: Vec<u8>,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--list") {
        ATTACKS.iter().for_each(|a| println!("{a}"));
        return ExitCode::SUCCESS;
    }
    let (Some(profile), Some(attack)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bulkhead-probe PROFILE.json ATTACK");
        return ExitCode::from(2);
    };
    let profile: Profile = match std::fs::read(profile).map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(p)) => p,
        other => {
            eprintln!("cannot read the profile: {other:?}");
            return ExitCode::from(2);
        }
    };
    let prepared = Prepared {
        inherited: env("PROBE_TCP")
            .parse::<SocketAddr>()
            .ok()
            .and_then(|a| TcpStream::connect(a).ok()),
        shell: std::fs::read("/bin/sh").unwrap_or_default(),
    };
    if !ATTACKS.contains(&attack.as_str()) {
        eprintln!("unknown attack {attack:?}");
        return ExitCode::from(2);
    }
    match confine(&profile) {
        Ok(runtime) => verdict(attack, run(attack, &prepared, &runtime)),
        Err(e) => {
            eprintln!("cannot enter the sandbox: {e}");
            ExitCode::from(2)
        }
    }
}

/// Exactly what the gateway's and worker's `main` do.
fn confine(profile: &Profile) -> Result<tokio::runtime::Runtime, Box<dyn std::error::Error>> {
    sandbox::enter(profile)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    sandbox::lock(profile)?;
    Ok(rt)
}

fn verdict(attack: &str, outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(what) => {
            println!("ESCAPED: {attack}: {what}");
            ExitCode::from(3)
        }
        Err(why) => {
            println!("blocked: {attack}: {why}");
            ExitCode::SUCCESS
        }
    }
}

type Outcome = Result<String, String>;

fn io<T>(r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

fn nx<T>(r: nix::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

fn read(path: &str) -> Outcome {
    let mut text = Vec::new();
    io(std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut text)))?;
    Ok(format!("read {} bytes of {path}", text.len()))
}

fn list(path: &str) -> Outcome {
    let names: Vec<_> =
        io(std::fs::read_dir(path))?.filter_map(Result::ok).map(|e| e.file_name()).collect();
    if names.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(format!("{path} lists {names:?}"))
}

fn write(path: &str) -> Outcome {
    io(std::fs::write(path, b"x"))?;
    Ok(format!("wrote {path}"))
}

fn new_socket(family: AddressFamily, ty: SockType) -> Outcome {
    nx(socket(family, ty, SockFlag::SOCK_CLOEXEC, None))?;
    Ok(format!("created a {family:?} {ty:?} socket"))
}

fn connect_tcp() -> Outcome {
    let addr: SocketAddr = env("PROBE_TCP").parse().map_err(|_| "no PROBE_TCP".to_owned())?;
    io(TcpStream::connect(addr))?;
    Ok(format!("connected to {addr}"))
}

fn reconnect_inherited(prepared: &Prepared) -> Outcome {
    let stream = prepared.inherited.as_ref().ok_or("no inherited socket")?;
    io(probe::disconnect(stream.as_fd()))?;
    let addr: SocketAddr = env("PROBE_TCP").parse().map_err(|_| "no PROBE_TCP".to_owned())?;
    let SocketAddr::V4(v4) = addr else { return Err("PROBE_TCP must be IPv4".into()) };
    let sockaddr = nix::sys::socket::SockaddrIn::from(v4);
    nx(connect(std::os::fd::AsRawFd::as_raw_fd(stream), &sockaddr))?;
    Ok(format!("re-connected an inherited socket to {addr}"))
}

fn connect_unix(addr: &UnixAddr) -> Outcome {
    let fd = nx(socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None))?;
    nx(connect(std::os::fd::AsRawFd::as_raw_fd(&fd), addr))?;
    Ok(format!("connected to {addr}"))
}

fn exec_shell() -> Outcome {
    let args = [c"sh", c"-c", c"echo ESCAPED: execve; exit 3"];
    nx(nix::unistd::execv(c"/bin/sh", &args))?;
    Ok("execve returned".into())
}

fn memfd_exec(prepared: &Prepared) -> Outcome {
    let args = [c"sh", c"-c", c"echo ESCAPED: memfd; exit 3"];
    io(probe::memfd_exec(&prepared.shell, &args))?;
    Ok("execveat of a memfd".into())
}

fn broker_pid() -> Result<nix::unistd::Pid, String> {
    env("PROBE_BROKER_PID")
        .parse()
        .map(nix::unistd::Pid::from_raw)
        .map_err(|_| "no PROBE_BROKER_PID".into())
}

fn kill_broker() -> Outcome {
    let pid = broker_pid()?;
    nx(nix::sys::signal::kill(pid, None))?;
    Ok(format!("may signal the broker {pid}"))
}

fn vm_read_broker() -> Outcome {
    let pid = broker_pid()?.as_raw();
    let addr = usize::from_str_radix(env("PROBE_BROKER_ADDR").trim_start_matches("0x"), 16)
        .map_err(|_| "no PROBE_BROKER_ADDR".to_owned())?;
    io(probe::process_vm_read(pid, addr))?;
    Ok(format!("read the broker's memory at {addr:#x}"))
}

fn setuid_root() -> Outcome {
    let before = nix::unistd::geteuid();
    nx(nix::unistd::setuid(0.into()))?;
    if before.is_root() {
        return Err("already uid 0 inside its own user namespace; setuid(0) changed nothing".into());
    }
    Ok("became uid 0".into())
}

fn userns_mount() -> Outcome {
    nx(nix::sched::unshare(
        nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS,
    ))?;
    mount_tmpfs().map(|m| format!("new user namespace, then {m}"))
}

fn mount_tmpfs() -> Outcome {
    let none: Option<&str> = None;
    nx(nix::mount::mount(Some("tmpfs"), "/", Some("tmpfs"), nix::mount::MsFlags::empty(), none))?;
    Ok("mounted a tmpfs".into())
}

fn chroot() -> Outcome {
    io(probe::chroot(c"/"))?;
    Ok("chroot succeeded".into())
}

fn set_dumpable() -> Outcome {
    nx(nix::sys::prctl::set_dumpable(true))?;
    Ok("made itself dumpable".into())
}

fn kernel(name: &str, r: std::io::Result<()>) -> Outcome {
    io(r)?;
    Ok(format!("{name} succeeded"))
}

fn path_of(var: &str, rel: &str) -> String {
    PathBuf::from(env(var)).join(rel).to_string_lossy().into_owned()
}

/// Every attack the battery knows, by name.
const ATTACKS: &[&str] = &[
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
    "open-etc-opath",
    "socket-tcp",
    "socket-udp",
    "socket-unix",
    "socket-netlink",
    "socket-packet",
    "connect-tcp-loopback",
    "reconnect-inherited-tcp",
    "connect-b-fastcgi",
    "connect-abstract-unix",
    "execve-sh",
    "memfd-execveat",
    "fork",
    "ptrace-broker",
    "process-vm-readv-broker",
    "kill-broker",
    "setuid-0",
    "unshare-user-then-mount",
    "mount-tmpfs",
    "chroot",
    "set-dumpable",
    "io-uring-setup",
    "bpf",
    "userfaultfd",
    "keyctl",
    "add-key",
    "perf-event-open",
    "personality",
];

/// Reads B's secret from a runtime thread: a blocking-pool thread started
/// only now, and a worker thread that existed before `lock`.
fn read_on_runtime_threads(runtime: &tokio::runtime::Runtime) -> Outcome {
    let secret = env("PROBE_B_SECRET");
    let fresh = runtime.block_on(runtime.spawn_blocking({
        let secret = secret.clone();
        move || read(&secret)
    }));
    let worker = runtime.block_on(runtime.spawn(async move { read(&secret) }));
    match (fresh.map_err(|e| e.to_string())?, worker.map_err(|e| e.to_string())?) {
        (Err(a), Err(b)) => Err(format!("blocking-pool thread: {a}; worker thread: {b}")),
        (Ok(what), _) | (_, Ok(what)) => Ok(what),
    }
}

fn run(attack: &str, prepared: &Prepared, runtime: &tokio::runtime::Runtime) -> Outcome {
    match attack {
        "read-b-secret-on-runtime-threads" => read_on_runtime_threads(runtime),
        "read-etc-passwd" => read("/etc/passwd"),
        "read-etc-shadow" => read("/etc/shadow"),
        "read-b-root-file" => read(&path_of("PROBE_B_ROOT", "index.php")),
        "list-b-root" => list(&env("PROBE_B_ROOT")),
        "read-b-secret" => read(&env("PROBE_B_SECRET")),
        "read-config" => read(&env("PROBE_CONFIG")),
        "list-root" => list("/"),
        "read-proc-1-environ" => read("/proc/1/environ"),
        "write-root" => write("/escaped"),
        "write-a-root" => write(&path_of("PROBE_A_ROOT", "escaped.php")),
        "write-config-dir" => write(&format!("{}.escaped", env("PROBE_CONFIG"))),
        "open-etc-opath" => {
            let fd = nx(nix::fcntl::open(
                "/etc",
                nix::fcntl::OFlag::O_PATH,
                nix::sys::stat::Mode::empty(),
            ))?;
            Ok(format!("O_PATH opened /etc as {fd:?}"))
        }
        "socket-tcp" => new_socket(AddressFamily::Inet, SockType::Stream),
        "socket-udp" => new_socket(AddressFamily::Inet, SockType::Datagram),
        "socket-unix" => new_socket(AddressFamily::Unix, SockType::Datagram),
        "socket-netlink" => new_socket(AddressFamily::Netlink, SockType::Raw),
        "socket-packet" => new_socket(AddressFamily::Packet, SockType::Raw),
        "connect-tcp-loopback" => connect_tcp(),
        "reconnect-inherited-tcp" => reconnect_inherited(prepared),
        "connect-b-fastcgi" => connect_unix(&nx(UnixAddr::new(env("PROBE_B_SOCKET").as_str()))?),
        "connect-abstract-unix" => {
            connect_unix(&nx(UnixAddr::new_abstract(env("PROBE_ABSTRACT").as_bytes()))?)
        }
        "execve-sh" => exec_shell(),
        "memfd-execveat" => memfd_exec(prepared),
        "fork" => kernel("fork", probe::fork()),
        "ptrace-broker" => kernel("ptrace attach", probe::ptrace_attach(broker_pid()?.as_raw())),
        "process-vm-readv-broker" => vm_read_broker(),
        "kill-broker" => kill_broker(),
        "setuid-0" => setuid_root(),
        "unshare-user-then-mount" => userns_mount(),
        "mount-tmpfs" => mount_tmpfs(),
        "chroot" => chroot(),
        "set-dumpable" => set_dumpable(),
        "io-uring-setup" => kernel("io_uring_setup", probe::io_uring_setup()),
        "bpf" => kernel("bpf", probe::bpf_map_create()),
        "userfaultfd" => kernel("userfaultfd", probe::userfaultfd()),
        "keyctl" => kernel("keyctl", probe::keyctl_join_session()),
        "add-key" => kernel("add_key", probe::add_key()),
        "perf-event-open" => kernel("perf_event_open", probe::perf_event_open()),
        "personality" => kernel("personality", probe::personality()),
        other => Err(format!("unknown attack {other:?}")),
    }
}
