//! The admin socket admits a peer only if it runs as the broker's uid *and* in all
//! of the broker's namespaces (root is also admitted to a broker that is not root).
//! Attacks: the real `bulkhead status` and `bulkhead reload`, run as the broker's uid
//! from inside a namespace of their own (user, mount, network, PID, IPC, UTS, cgroup;
//! what a sandboxed child has), and from another uid. Every one is refused and logged,
//! no reload happens, and the operator's own commands keep working. Root mode runs
//! the broker as root; rootless mode runs it as `nobody`, attacked by `nobody` from an
//! unprivileged user namespace.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use bulkhead_tests::{AppPlan, Launch, Stack, StackOptions, binaries, php};

const NOBODY: u32 = 65534;
/// A uid that is neither root, nor `nobody`, nor any test's.
const STRANGER: u32 = 54321;
const REFUSED_LINE: &str = "admin socket: refused a peer";

fn stack(user: Option<u32>) -> Stack {
    let app = AppPlan::new("alpha").file("hello.php", &php::hello("alpha"));
    let options =
        StackOptions { launch: Launch { user, ..Launch::default() }, ..Default::default() };
    Stack::start_with(&[app], &options)
}

/// `[wrapper…] bulkhead SUBCOMMAND --config CONFIG`, as `uid` (None: as the test).
fn admin(stack: &Stack, uid: Option<u32>, wrapper: &[&str], subcommand: &str) -> Output {
    admin_with(&stack.bulkhead.config_path(), uid, wrapper, subcommand)
}

fn admin_with(config: &Path, uid: Option<u32>, wrapper: &[&str], subcommand: &str) -> Output {
    let bulkhead = binaries::binary(binaries::BROKER);
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&bulkhead);
            c
        }
        None => Command::new(&bulkhead),
    };
    command.arg(subcommand).arg("--config").arg(config);
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    command.output().unwrap_or_else(|e| panic!("running {wrapper:?} bulkhead {subcommand}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs every attack; each must fail. Returns how many were made.
fn attacks_refused(stack: &Stack, uid: Option<u32>, attacks: &[(&[&str], &str)]) -> usize {
    let before = reloads(stack);
    for (wrapper, subcommand) in attacks {
        let out = admin(stack, uid, wrapper, subcommand);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{wrapper:?} {subcommand} was admitted: {said}");
        assert!(said.contains("refused") || said.contains("Permission denied"), "{said}");
    }
    assert_eq!(reloads(stack), before, "no refused reload ran");
    attacks.len()
}

fn operator_commands_work(stack: &Stack, uid: Option<u32>) {
    let status = admin(stack, uid, &[], "status");
    assert!(status.status.success(), "status: {}", text(&status));
    assert!(text(&status).contains("\"broker_pid\""), "{}", text(&status));
    let before = reloads(stack);
    let reload = admin(stack, uid, &[], "reload");
    assert!(reload.status.success(), "reload: {}", text(&reload));
    assert_eq!(reloads(stack), before + 1, "the reload ran");
}

/// Reloads the broker has logged.
fn reloads(stack: &Stack) -> usize {
    stack.bulkhead.log().matches("reloaded summary=").count()
}

/// Another uid cannot read the config (mode 0600); given a readable copy naming the
/// same socket, it cannot connect (the socket is 0600). Returns the attempts made.
fn stranger_refused(stack: &Stack) -> usize {
    let dir = bulkhead_tests::temp_dir();
    let copy = dir.path().join("bulkhead.toml");
    std::fs::copy(stack.bulkhead.config_path(), &copy).expect("copying the config");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let before = reloads(stack);
    let mut made = 0;
    for config in [stack.bulkhead.config_path().as_path(), copy.as_path()] {
        for subcommand in ["status", "reload"] {
            let out = admin_with(config, Some(STRANGER), &[], subcommand);
            assert_eq!(out.status.code(), Some(2), "uid {STRANGER} was admitted: {}", text(&out));
            made += 1;
        }
        let said = text(&admin_with(config, Some(STRANGER), &[], "status"));
        let why = if config == copy { "Permission denied" } else { "No such file" };
        assert!(said.contains(why), "{said}");
    }
    assert_eq!(reloads(stack), before, "no refused reload ran");
    made
}

#[test]
fn root_mode_refuses_root_in_any_namespace_of_its_own() {
    let stack = stack(None);
    operator_commands_work(&stack, None);
    let unshare = |flag: &'static str| -> &'static [&'static str] {
        match flag {
            "--net" => &["unshare", "--net"],
            "--user" => &["unshare", "--user", "--map-root-user"],
            "--mount" => &["unshare", "--mount"],
            "--pid" => &["unshare", "--pid", "--fork"],
            "--ipc" => &["unshare", "--ipc"],
            "--uts" => &["unshare", "--uts"],
            _ => &["unshare", "--cgroup"],
        }
    };
    let mut attacks: Vec<(&[&str], &str)> = Vec::new();
    for flag in ["--net", "--user", "--mount", "--pid", "--ipc", "--uts", "--cgroup"] {
        attacks.push((unshare(flag), "status"));
        attacks.push((unshare(flag), "reload"));
    }
    let made = attacks_refused(&stack, None, &attacks);
    let stranger = stranger_refused(&stack);
    let logged = stack.bulkhead.log().matches(REFUSED_LINE).count();
    assert_eq!(logged, made, "one log line per refused peer of the broker's uid");
    operator_commands_work(&stack, None);
    println!(
        "root broker: {made} attacks from other namespaces refused and logged, \
         {stranger} from uid {STRANGER} refused; status and reload still work"
    );
}

#[test]
fn a_rootless_broker_refuses_its_own_uid_inside_a_user_namespace() {
    let stack = stack(Some(NOBODY));
    operator_commands_work(&stack, Some(NOBODY));
    operator_commands_work(&stack, None);
    let sandboxed: &[&str] = &["unshare", "--user", "--net"];
    let mapped: &[&str] = &["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork"];
    let attacks: &[(&[&str], &str)] =
        &[(sandboxed, "status"), (sandboxed, "reload"), (mapped, "status"), (mapped, "reload")];
    let made = attacks_refused(&stack, Some(NOBODY), attacks);
    let logged = stack.bulkhead.log().matches(REFUSED_LINE).count();
    assert_eq!(logged, made, "one log line per refused peer");
    operator_commands_work(&stack, Some(NOBODY));
    println!("nobody's broker: {made} attacks by nobody from its own namespaces refused");
}
