//! `bulkhead audit --config FILE`: checks the running instance against the
//! profiles the broker hands out, by reading `/proc` (root or the broker's user).
//!
//! It finds the broker whose command line is `run --config FILE` (same
//! canonical path), its children and their roles (the executable's name; a
//! worker's app from `BULKHEAD_ROLE=worker[NAME]` in its environment), and for
//! every live component prints uid/gid, capabilities, seccomp mode and filter
//! count and no_new_privs (for every thread), its namespaces compared with
//! the broker's, and what its root shows. The expected profile of each is
//! rebuilt with [`crate::profiles`] from the same config; anything weaker is a
//! finding. Landlock domains are not visible in `/proc` on current kernels, so
//! they are reported as such and left to the escape tests. The broker itself
//! is checked too: non-dumpable, and no secret in its environment (`own`).
//!
//! A managed pool is audited as its launcher (`bulkhead-pool`,
//! `BULKHEAD_ROLE=pool[NAME]`) and every php-fpm process beneath it, each
//! against the pool's profile; the php-fpm processes must also be in a PID
//! namespace other than the broker's.
//!
//! Read-only: it never signals, traces or changes a process.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use privsep::sandbox::Profile;

use crate::config::{self, Config};
use crate::profiles;

mod own;

/// The namespaces compared with the broker's.
const NAMESPACES: [&str; 5] = ["user", "mnt", "net", "ipc", "uts"];
/// Fewest stacked filters a locked child has (clone3, open, ioctl, allow-list).
const MIN_FILTERS: u32 = 4;
/// Fewest a pool process has (clone3, the deny-list; the exec-once filter unless `programs`).
const MIN_POOL_FILTERS: u32 = 2;

/// Why the audit could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("cannot resolve {path}: {source}")]
    Path { path: PathBuf, source: std::io::Error },
    #[error("no running `bulkhead run --config {0}` found")]
    NoBroker(PathBuf),
}

/// The audit's findings: the report text and whether everything matched.
#[derive(Debug)]
pub struct Report {
    pub text: String,
    /// Descriptions of every way a component is weaker than its profile.
    pub findings: Vec<String>,
}

/// Audits the instance started with `config_path`.
pub fn run(config_path: &Path) -> Result<Report, AuditError> {
    let canonical = fs::canonicalize(config_path)
        .map_err(|source| AuditError::Path { path: config_path.to_path_buf(), source })?;
    let config = config::load_elsewhere(&canonical)?;
    let broker = find_broker(&canonical).ok_or(AuditError::NoBroker(canonical))?;
    let mut report = Report { text: String::new(), findings: Vec::new() };
    let _ = writeln!(report.text, "broker {broker}: {}", describe_ids(broker));
    let (text, findings) = own::check(broker, &config);
    report.text.push_str(&text);
    report.findings.extend(findings);
    let broker_ns = namespaces(broker);
    let mut saw_gateway = false;
    for child in children(broker) {
        let Some((role, expected)) = expected_profile(&config, child) else { continue };
        saw_gateway |= role == "gateway";
        audit_child(&mut report, child, &role, &expected, &broker_ns);
        if role.starts_with("pool[") {
            audit_php_fpm(&mut report, child, &role, &expected, &broker_ns);
            report.text.push_str(&pool_limits(child));
        }
    }
    if !saw_gateway {
        report.findings.push("no live gateway found".to_owned());
    }
    report.text.push_str(&supervision(&config.control_socket));
    Ok(report)
}

/// What the broker says of its children: restarts and crash loops, one line each.
fn supervision(socket: &Path) -> String {
    let status = match crate::admin::request(socket, &crate::admin::Request::Status) {
        Ok(crate::admin::Response::Status(status)) => status,
        Ok(other) => return format!("supervision: unexpected answer {other:?}\n"),
        Err(e) => {
            return format!("supervision: admin socket {} unreachable: {e}\n", socket.display());
        }
    };
    let mut out = String::new();
    if let Some(gw) = &status.gateway {
        let _ = writeln!(out, "supervision: gateway restarts {}", gw.restarts);
    }
    if let Some(keyholder) = &status.keyholder {
        let _ = writeln!(out, "supervision: keyholder restarts {}", keyholder.restarts);
    }
    for app in &status.apps {
        let _ = writeln!(
            out,
            "supervision: app {} {} ({} workers, {} restarts, generation {})",
            app.name,
            app.state,
            app.workers.len(),
            app.restarts,
            app.generation,
        );
    }
    out
}

/// A component's role and the profile the broker gives it; `None` for unknown children.
fn expected_profile(config: &Config, pid: u32) -> Option<(String, Profile)> {
    match exe_name(pid)?.as_str() {
        "bulkhead-gateway" => Some(("gateway".to_owned(), profiles::gateway(config))),
        "bulkhead-keyholder" => Some(("keyholder".to_owned(), profiles::keyholder(config))),
        "bulkhead-worker" => {
            let role = environ_var(pid, "BULKHEAD_ROLE")?;
            let name = role.strip_prefix("worker[")?.strip_suffix(']')?;
            let app = config.apps.iter().find(|app| app.spec.name == name)?;
            Some((role.clone(), profiles::worker(config, app)))
        }
        "bulkhead-pool" => {
            let role = environ_var(pid, "BULKHEAD_ROLE")?;
            let name = role.strip_prefix("pool[")?.strip_suffix(']')?;
            let app = config.apps.iter().find(|app| app.spec.name == name)?;
            Some((role.clone(), profiles::pool(config, app, app.php.as_ref()?)))
        }
        _ => None,
    }
}

/// The limits the kernel applies to a pool, read back from its php-fpm master, and
/// whether a cgroup v2 hierarchy could add memory and pids limits per app.
fn pool_limits(launcher: u32) -> String {
    let Some(master) = children(launcher).first().copied() else { return String::new() };
    let limits = fs::read_to_string(format!("/proc/{master}/limits")).unwrap_or_default();
    let wanted = ["Max processes", "Max open files", "Max file size", "Max address space"];
    let shown: Vec<String> = limits
        .lines()
        .filter(|line| wanted.iter().any(|w| line.starts_with(w)))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let controllers = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    let cgroup = if ["memory", "pids"]
        .iter()
        .all(|c| controllers.split_whitespace().any(|x| x == *c))
    {
        "cgroup v2 with memory and pids controllers is available, but Bulkhead sets no per-app cgroup yet"
    } else {
        "no per-app cgroup: this host has no cgroup v2 hierarchy with memory and pids controllers"
    };
    format!("  limits in force: {}\n  {cgroup}\n", shown.join("; "))
}

/// Every php-fpm process beneath a pool launcher, against the pool's profile.
fn audit_php_fpm(
    report: &mut Report,
    launcher: u32,
    role: &str,
    expected: &Profile,
    broker_ns: &[String],
) {
    // The launcher stays in the broker's PID namespace; only what it forks is in the pool's.
    let pid_ns =
        |pid: u32| fs::read_link(format!("/proc/{pid}/ns/pid")).map(|p| p.display().to_string());
    let broker_pid_ns = pid_ns(launcher).unwrap_or_default();
    let mut queue = children(launcher);
    while let Some(pid) = queue.pop() {
        queue.extend(children(pid));
        let role = format!("{role} php-fpm");
        audit_child(report, pid, &role, expected, broker_ns);
        if expected.namespaces.pid && pid_ns(pid).is_ok_and(|ns| ns == broker_pid_ns) {
            let what = "shares the broker's pid namespace";
            let _ = writeln!(report.text, "  WEAKER: {what}");
            report.findings.push(format!("{role} (pid {pid}): {what}"));
        }
    }
}

fn audit_child(
    report: &mut Report,
    pid: u32,
    role: &str,
    expected: &Profile,
    broker_ns: &[String],
) {
    let _ = writeln!(report.text, "{role} (pid {pid}):");
    let mut weak = |what: String| {
        let _ = writeln!(report.text, "  WEAKER: {what}");
        report.findings.push(format!("{role} (pid {pid}): {what}"));
    };
    let threads = thread_status(pid);
    for (tid, status) in &threads {
        for problem in thread_problems(status, expected) {
            weak(format!("thread {tid}: {problem}"));
        }
    }
    namespace_problems(pid, expected, broker_ns).into_iter().for_each(&mut weak);
    let root = root_entries(pid);
    root_problems(&root, expected).into_iter().for_each(&mut weak);
    let first = threads.first().map(|(_, s)| s.clone()).unwrap_or_default();
    let field = |name: &str| status_field(&first, name).unwrap_or("?").to_owned();
    let _ = writeln!(
        report.text,
        "  threads {}; Uid {}; Gid {}; CapEff {} CapPrm {} CapBnd {}; Seccomp {} ({} filters); NoNewPrivs {}",
        threads.len(),
        field("Uid"),
        field("Gid"),
        field("CapEff"),
        field("CapPrm"),
        field("CapBnd"),
        field("Seccomp"),
        field("Seccomp_filters"),
        field("NoNewPrivs"),
    );
    let ns = namespaces(pid);
    let shared: Vec<&str> = NAMESPACES
        .iter()
        .zip(ns.iter().zip(broker_ns))
        .filter(|(_, (a, b))| a == b)
        .map(|(name, _)| *name)
        .collect();
    let _ = writeln!(report.text, "  namespaces shared with the broker: {shared:?}");
    let _ = writeln!(report.text, "  root shows: {root:?}");
    let _ = writeln!(
        report.text,
        "  Landlock: not visible in /proc (enforced at start-up; see the escape tests)"
    );
}

/// Every way one thread's `/proc/…/status` is weaker than `expected`.
fn thread_problems(status: &str, expected: &Profile) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = |name: &str, ok: &dyn Fn(&str) -> bool, what: &str| {
        let value = status_field(status, name).unwrap_or("missing");
        if !ok(value) {
            problems.push(format!("{name} is {value}, expected {what}"));
        }
    };
    if expected.drop_privileges {
        for cap in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
            want(cap, &|v| v.chars().all(|c| c == '0'), "none");
        }
        want("NoNewPrivs", &|v| v == "1", "1");
    }
    if expected.seccomp.is_some() {
        want("Seccomp", &|v| v == "2", "2 (filter)");
        let min = match &expected.seccomp {
            Some(policy) if policy.deny_list => MIN_POOL_FILTERS,
            _ => MIN_FILTERS,
        };
        let enough = |v: &str| v.parse::<u32>().is_ok_and(|n| n >= min);
        want("Seccomp_filters", &enough, &format!("at least {min}"));
    }
    if let Some(id) = expected.identity {
        let all = |want: u32| move |v: &str| v.split_whitespace().all(|x| x == want.to_string());
        want("Uid", &all(id.uid), &format!("{} (real, effective, saved, fs)", id.uid));
        want("Gid", &all(id.gid), &format!("{} (real, effective, saved, fs)", id.gid));
        want("Groups", &|v: &str| v.trim().is_empty(), "none");
    }
    problems
}

fn namespace_problems(pid: u32, expected: &Profile, broker_ns: &[String]) -> Vec<String> {
    let ns = &expected.namespaces;
    let wanted = [ns.user, ns.mount, ns.net, ns.ipc, ns.uts];
    let own = namespaces(pid);
    NAMESPACES
        .iter()
        .zip(wanted)
        .zip(own.iter().zip(broker_ns))
        .filter(|((_, want), (mine, broker))| *want && (mine == broker || mine.is_empty()))
        .map(|((name, _), _)| format!("shares the broker's {name} namespace"))
        .collect()
}

/// Anything in the root that the profile's mount view does not put there.
fn root_problems(root: &Option<Vec<String>>, expected: &Profile) -> Vec<String> {
    let Some(view) = &expected.mounts else { return Vec::new() };
    let Some(entries) = root else {
        return vec!["its root cannot be listed".to_owned()];
    };
    let mut allowed: BTreeSet<String> = view
        .binds
        .iter()
        .filter_map(|bind| bind.path.components().nth(1))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if view.private_tmp.is_some() {
        allowed.insert("tmp".to_owned());
    }
    entries
        .iter()
        .filter(|entry| !allowed.contains(*entry))
        .map(|entry| format!("its root shows /{entry}, which its profile does not mount"))
        .collect()
}

fn find_broker(config: &Path) -> Option<u32> {
    pids().into_iter().find(|&pid| {
        exe_name(pid).as_deref() == Some("bulkhead") && runs_config(pid).as_deref() == Some(config)
    })
}

/// Where `bulkhead` reads its configuration when no `--config` is given.
const DEFAULT_CONFIG: &str = "/etc/bulkhead/bulkhead.toml";

/// The canonical configuration path of a `bulkhead … run …` command line.
fn runs_config(pid: u32) -> Option<PathBuf> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !args.iter().skip(1).any(|arg| arg == "run") {
        return None;
    }
    let value = args
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, arg)| match arg.as_str() {
            "--config" | "-c" => args.get(i + 1).cloned(),
            other => other.strip_prefix("--config=").map(str::to_owned),
        })
        .unwrap_or_else(|| DEFAULT_CONFIG.to_owned());
    let path = Path::new(&value);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        fs::read_link(format!("/proc/{pid}/cwd")).ok()?.join(path)
    };
    fs::canonicalize(absolute).ok()
}

fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

fn children(parent: u32) -> Vec<u32> {
    let mut found: Vec<u32> = pids().into_iter().filter(|&pid| ppid(pid) == Some(parent)).collect();
    found.sort_unstable();
    found
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" {
        return None;
    }
    fields.next()?.parse().ok()
}

fn exe_name(pid: u32) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = target.to_string_lossy();
    let trimmed = text.trim_end_matches(" (deleted)");
    Some(Path::new(trimmed).file_name()?.to_string_lossy().into_owned())
}

fn environ_var(pid: u32, name: &str) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    raw.split(|b| *b == 0)
        .map(String::from_utf8_lossy)
        .find_map(|entry| entry.strip_prefix(&prefix).map(str::to_owned))
}

/// `(tid, status text)` of every thread.
fn thread_status(pid: u32) -> Vec<(u32, String)> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out: Vec<(u32, String)> = tasks
        .filter_map(|e| {
            let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            Some((tid, fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?))
        })
        .collect();
    out.sort_unstable_by_key(|(tid, _)| *tid);
    out
}

fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

/// `NAMESPACES`' link targets, `""` where unreadable.
fn namespaces(pid: u32) -> Vec<String> {
    NAMESPACES
        .iter()
        .map(|ns| {
            fs::read_link(format!("/proc/{pid}/ns/{ns}"))
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// The names in the process's root directory, `None` if unreadable.
fn root_entries(pid: u32) -> Option<Vec<String>> {
    let entries = fs::read_dir(format!("/proc/{pid}/root")).ok()?;
    let mut names: Vec<String> =
        entries.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect();
    names.sort();
    Some(names)
}

fn describe_ids(pid: u32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    format!(
        "Uid {}; CapEff {}",
        status_field(&status, "Uid").unwrap_or("?"),
        status_field(&status, "CapEff").unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use privsep::sandbox::{Identity, Seccomp};

    #[test]
    fn flags_a_thread_without_seccomp_or_with_the_wrong_uid() {
        let expected = Profile {
            drop_privileges: true,
            identity: Some(Identity { uid: 61184, gid: 61184 }),
            seccomp: Some(Seccomp::default()),
            ..Profile::default()
        };
        let good = "Uid:\t61184\t61184\t61184\t61184\nGid:\t61184\t61184\t61184\t61184\nGroups:\t\n\
                    CapEff:\t0000000000000000\nCapPrm:\t0000000000000000\nCapBnd:\t0000000000000000\n\
                    CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t4\n";
        assert!(
            thread_problems(good, &expected).is_empty(),
            "{:?}",
            thread_problems(good, &expected)
        );
        let bad = good
            .replace("Seccomp:\t2", "Seccomp:\t0")
            .replace("Uid:\t61184\t61184", "Uid:\t0\t61184");
        assert_eq!(thread_problems(&bad, &expected).len(), 2);
    }
}
