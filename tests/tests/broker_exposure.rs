//! The broker is non-dumpable in every mode and keeps no secret in its environment.
//! Run as `nobody` (rootless), it is attacked from another process of `nobody`:
//! `/proc/<broker>/environ` and `/proc/<broker>/mem` cannot be opened, while the same
//! attacker reads a dumpable process of that uid (so the attack is real). The environ the kernel shows (the original block on the initial stack) holds
//! the `{ env = … }` variable's name with its value zeroed, and no secret.
//! `bulkhead audit` checks the same from outside.
//!
//! `/proc/PID/status` has no dumpable field; what the kernel shows of a non-dumpable
//! process that is not root is `/proc/PID/status` (and every file beside it) owned by
//! root, and refusal to same-uid readers, which is what is checked here. A root
//! broker's flag does not show (a same-uid reader lacking its capabilities is refused
//! whatever the flag), so for it the broker's own report in `status` is checked.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use bulkhead_tests::procfs::contains_bytes;
use bulkhead_tests::{AppPlan, Launch, Proto, Stack, StackOptions, binaries, php, unique_token};

const NOBODY: u32 = 65534;
const FILE_KEY: &str = "DB_PASSWORD";
const ENV_KEY: &str = "API_TOKEN";
const VAR: &str = "BULKHEAD_TEST_EXPOSURE_API_TOKEN";

struct World {
    stack: Stack,
    file_secret: String,
    env_secret: String,
}

fn world(user: Option<u32>) -> World {
    let (file_secret, env_secret) = (unique_token("exposure-file"), unique_token("exposure-env"));
    let app = AppPlan::new("alpha")
        .file("index.php", &php::secret_probe("alpha", ENV_KEY, &[]))
        .secret(FILE_KEY, &file_secret)
        .secret_env(ENV_KEY, VAR, &env_secret);
    let options =
        StackOptions { launch: Launch { user, ..Launch::default() }, ..Default::default() };
    let stack = Stack::start_with(&[app], &options);
    let reply = stack.client(Proto::Http1).get("alpha.localhost", "/");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["secret"], env_secret.as_str(), "the env secret still reaches PHP");
    World { stack, file_secret, env_secret }
}

/// An attacker of the broker's uid: `cat FILE` as `uid`, holding no capability.
fn attacker(uid: u32, file: &str) -> Command {
    let mut command = Command::new("cat");
    command.arg(file).uid(uid).gid(uid);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// What the attacker read, or `Err(stderr)`.
fn attack(uid: u32, file: &str) -> Result<Vec<u8>, String> {
    let out = attacker(uid, file).output().expect("running the attacker");
    match out.status.success() {
        true => Ok(out.stdout),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
    }
}

/// A dumpable process of `uid` with `VAR=marker` in its environment.
struct Dumpable(Child);

impl Dumpable {
    fn start(uid: u32, marker: &str) -> Self {
        let mut command = Command::new("sleep");
        command.arg("600").env(VAR, marker).uid(uid).gid(uid);
        Self(command.spawn().expect("starting sleep"))
    }
}

impl Drop for Dumpable {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every attack on the broker fails with EACCES; the same attacker reads a dumpable
/// process of the same uid. Returns the number of attacks made.
fn attacks_fail(broker: u32, uid: u32) -> usize {
    let marker = unique_token("dumpable-marker");
    let control = Dumpable::start(uid, &marker);
    let environ = attack(uid, &format!("/proc/{}/environ", control.0.id()))
        .expect("the attacker reads a dumpable process of its uid");
    assert!(contains_bytes(&environ, marker.as_bytes()), "the control attack reads the marker");
    let mut made = 0;
    for file in ["environ", "mem"] {
        let Err(refused) = attack(uid, &format!("/proc/{broker}/{file}")) else {
            panic!("a process of the broker's uid read its {file}");
        };
        assert!(refused.contains("Permission denied"), "{file}: {refused}");
        made += 1;
    }
    made
}

fn environ_has_no_secret(world: &World) {
    let broker = world.stack.bulkhead.pid();
    let environ = std::fs::read(format!("/proc/{broker}/environ")).expect("root reads environ");
    for secret in [&world.file_secret, &world.env_secret] {
        assert!(!contains_bytes(&environ, secret.as_bytes()), "a secret in the broker's environ");
    }
    let entry = format!("{VAR}=");
    let at = environ
        .split(|&b| b == 0)
        .position(|e| e == entry.as_bytes())
        .unwrap_or_else(|| panic!("{VAR} is still named in the original block, its value gone"));
    println!("{VAR} is entry {at} of the broker's environ, with an empty value");
}

fn audit(world: &World) -> String {
    let out = Command::new(binaries::binary(binaries::BROKER))
        .args(["audit", "--config"])
        .arg(world.stack.bulkhead.config_path())
        .output()
        .expect("running bulkhead audit");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("non-dumpable"), "{text}");
    assert!(text.contains("environ: 0 secret(s) found"), "{text}");
    assert!(!text.contains("broker (pid"), "audit found the broker weaker: {text}");
    text
}

/// A root broker's flag does not show in `/proc` (a same-uid reader that lacks its
/// capabilities is refused whatever the flag): the broker reports it in `status`.
#[test]
fn a_root_broker_is_non_dumpable_and_its_environ_holds_no_secret() {
    let world = world(None);
    environ_has_no_secret(&world);
    let status = world.stack.bulkhead.status();
    assert_eq!(status["dumpable"], false, "{status}");
    audit(&world);
}

#[test]
fn a_rootless_broker_run_by_nobody_is_safe_from_nobodys_other_processes() {
    let world = world(Some(NOBODY));
    let broker = world.stack.bulkhead.pid();
    let owner = std::fs::metadata(format!("/proc/{broker}/status")).expect("stat status").uid();
    assert_eq!(owner, 0, "the kernel gives a non-dumpable process's /proc files to root");
    environ_has_no_secret(&world);
    let made = attacks_fail(broker, NOBODY);
    let text = audit(&world);
    println!("{text}rootless broker: {made} attacks by another process of nobody, all refused");
}
