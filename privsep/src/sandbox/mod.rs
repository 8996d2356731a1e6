//! Sandbox profiles: what a child may see and do, applied by the child itself.
//!
//! The broker builds a [`Profile`] for each child and sends it in the child's
//! `Init`; the child applies it before it reads a byte of client input:
//! [`enter`] while still single-threaded (namespaces and mounts, rlimits,
//! identity and capabilities, no_new_privs and non-dumpable, Landlock), then
//! builds its runtime, then [`lock`] (seccomp, synchronised to every thread).
//!
//! A profile is plain data, so the broker, the escape tests and `bulkhead
//! audit` all reason about the same value. `Profile::default()` confines
//! nothing: it is what a child gets only when the operator explicitly turned
//! sandboxes off.
//!
//! # Layout
//! - [`mounts`]: namespaces, user-namespace id maps and the mount view.
//! - [`privileges`]: rlimits, capabilities, uid/gid, dumpable, no_new_privs.
//! - [`rules`]: the Landlock ruleset.
//! - [`syscalls`]: the seccomp filters.
//! - [`features`]: what the running kernel offers, for start-up checks.
//! - `probe` (feature `escape-probe`, tests only): raw escape attempts.

pub mod features;
mod mounts;
mod privileges;
#[cfg(feature = "escape-probe")]
pub mod probe;
mod rules;
mod syscalls;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything a child's sandbox consists of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Which namespaces the child creates for itself.
    pub namespaces: Namespaces,
    /// The file system the child sees; `None` keeps the host's (only with sandboxes off).
    pub mounts: Option<MountView>,
    /// The uid/gid to switch to; `None` keeps the current one (rootless mode).
    pub identity: Option<Identity>,
    /// Limits set before the identity change.
    pub rlimits: Vec<Rlimit>,
    /// Drop every capability (bounding, ambient, permitted, effective), lock securebits,
    /// set no_new_privs and make the process non-dumpable.
    pub drop_privileges: bool,
    /// The Landlock ruleset; `None` applies none.
    pub landlock: Option<Landlock>,
    /// The seccomp policy installed by [`lock`]; `None` installs none.
    pub seccomp: Option<Seccomp>,
    /// Tolerate a kernel that lacks a feature (the operator's `allow_weaker`): Landlock
    /// rights it does not know are dropped, and without user namespaces or seccomp
    /// those layers are skipped.
    pub best_effort: bool,
}

impl Profile {
    /// Whether this profile confines anything at all.
    pub fn is_enabled(&self) -> bool {
        *self != Self::default()
    }
}

/// Namespaces created with `unshare` at start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// A user namespace mapping only the current uid/gid (rootless mode).
    pub user: bool,
    /// A mount namespace (required for a [`MountView`]).
    pub mount: bool,
    /// An empty network namespace (only a down loopback).
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    /// A PID namespace: only the children forked afterwards are in it (the first
    /// becomes its PID 1); the caller stays outside as their reaper.
    #[serde(default)]
    pub pid: bool,
}

/// The whole file system a child sees: an empty read-only tmpfs root holding
/// only these bind mounts, each at the same path as outside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountView {
    /// A private, writable tmpfs at `/tmp` of at most this many bytes
    /// (mounted before the binds); `None`: no `/tmp` at all.
    pub private_tmp: Option<u64>,
    /// Bound in this order; a parent must come before what lies beneath it.
    pub binds: Vec<Bind>,
}

/// One path of the host made visible at the same path inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bind {
    pub path: PathBuf,
    pub access: BindAccess,
    /// Skip the bind when the path does not exist at start-up (a backend socket
    /// whose server is not running yet: connecting then fails, as it would outside).
    #[serde(default)]
    pub optional: bool,
}

/// How a bind mount may be used; every bind is `nosuid` and `noexec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindAccess {
    /// Read-only, no device nodes (recursively).
    ReadOnly,
    /// Writable, no device nodes (recursively).
    ReadWrite,
    /// A single device node such as `/dev/null` (read-only mount, device access kept).
    Device,
    /// Read-only, no device nodes, but files may be executed and mapped executable:
    /// a program host's binary and its shared libraries.
    Program,
}

/// The ids a child switches to (root mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// A resource limit, soft and hard set to the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimit {
    pub resource: Resource,
    pub limit: u64,
}

/// The limits a profile may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    Core,
    Memlock,
    Msgqueue,
    Rtprio,
    Nice,
    Nofile,
    /// Tasks (processes and threads) of the real uid.
    Nproc,
    /// The largest file a process may write.
    Fsize,
    /// Address space per process.
    As,
}

/// A Landlock ruleset: every file system and TCP right is handled (denied)
/// except what the rules grant, and abstract Unix sockets and signals are
/// scoped to the child's own domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Landlock {
    /// The oldest Landlock ABI that enforces this ruleset fully.
    pub min_abi: u8,
    /// Directories (or files) readable beneath.
    pub read: Vec<PathBuf>,
    /// Directories (or files) readable and writable beneath.
    pub write: Vec<PathBuf>,
    /// TCP ports that may be connected to; no port may ever be bound.
    pub connect_tcp: Vec<u16>,
    /// Files (or directories) that may be executed (and read); empty for every
    /// child that runs only its own code.
    #[serde(default)]
    pub execute: Vec<PathBuf>,
}

/// The seccomp allow-list: a common set for a tokio runtime, plus what the role needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seccomp {
    /// `accept4` on inherited listeners.
    pub accept: bool,
    /// Opening and inspecting files (`openat`, `statx`, `readlink`, …); without it
    /// `open`/`openat` fail with EACCES.
    pub files: bool,
    /// Families in which `socket()` may create stream sockets (and `connect` is
    /// allowed at all when non-empty).
    pub socket_domains: Vec<SocketDomain>,
    /// A host for a program Bulkhead did not write (php-fpm): instead of the
    /// allow-list, everything is allowed but a deny-list of what no web
    /// application needs (ptrace, mount, namespaces, bpf, io_uring, …), which
    /// fails with EPERM. The other fields are then ignored.
    #[serde(default)]
    pub deny_list: bool,
}

/// Address families a profile may open sockets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketDomain {
    Unix,
    Inet,
    Inet6,
}

/// Why a sandbox could not be applied. A child that gets one must exit.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox must be entered while single-threaded ({0} threads run)")]
    Threads(usize),
    #[error("{step}: {source}")]
    Os { step: String, source: std::io::Error },
    #[error("Landlock: {0}")]
    Landlock(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
}

impl SandboxError {
    fn os(step: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Self::Os { step: step.into(), source: source.into() }
    }
}

/// Stage one, before any thread exists: namespaces and mounts, rlimits,
/// capabilities and identity, no_new_privs and non-dumpable, Landlock.
pub fn enter(profile: &Profile) -> Result<(), SandboxError> {
    if !profile.is_enabled() {
        return Ok(());
    }
    let threads = privileges::thread_count()?;
    if threads != 1 {
        return Err(SandboxError::Threads(threads));
    }
    let host = privileges::HostFacts::read()?;
    privileges::drop_supplementary_groups(&host)?;
    let kernel = features::Features::detect();
    let weaker_userns = profile.best_effort && profile.namespaces.user && !kernel.user_namespaces;
    if !weaker_userns {
        mounts::unshare(&profile.namespaces, &host)?;
        if let Some(view) = &profile.mounts {
            mounts::build_view(view)?;
        }
    }
    privileges::set_rlimits(&profile.rlimits)?;
    if profile.drop_privileges {
        privileges::drop_all(profile.identity.as_ref(), &host)?;
    }
    if let Some(landlock) = &profile.landlock {
        rules::restrict_self(landlock, profile.best_effort)?;
    }
    Ok(())
}

/// Stage two, once the runtime's threads exist: the seccomp filters, installed
/// on every thread at once (TSYNC). Nothing can be installed after them.
pub fn lock(profile: &Profile) -> Result<(), SandboxError> {
    match &profile.seccomp {
        Some(_) if profile.best_effort && !features::seccomp_supported() => Ok(()),
        Some(policy) => syscalls::install(policy),
        None => Ok(()),
    }
}

/// [`lock`] for a launcher that execs exactly one program next, through the
/// file name at `filename`: afterwards no `execve` can succeed, since its
/// argument would have to be that address in a fresh address space (any other
/// kills the caller). Without a deny-list seccomp policy this adds nothing.
pub fn lock_before_exec(
    profile: &Profile,
    filename: *const libc::c_char,
) -> Result<(), SandboxError> {
    lock(profile)?;
    match &profile.seccomp {
        Some(policy)
            if policy.deny_list && (!profile.best_effort || features::seccomp_supported()) =>
        {
            syscalls::install_exec_once(filename as u64)
        }
        _ => Ok(()),
    }
}
