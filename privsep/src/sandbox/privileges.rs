//! Resource limits, capabilities, identity, dumpability and no_new_privs.
//!
//! The order is fixed by what each step still needs: the bounding set is
//! dropped while CAP_SETPCAP is held, groups and gid change before the uid
//! (afterwards CAP_SETGID is gone), and the result is verified: a process that
//! can still regain uid 0 or holds any capability refuses to continue.

use std::io;

use super::{Identity, Resource, Rlimit, SandboxError};

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;
/// `SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
/// SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | …_LOCKED`.
const SECUREBITS: libc::c_ulong = 0x01 | 0x02 | 0x08 | 0x20 | 0x40 | 0x80;

/// Facts about the host read before the file system disappears.
#[derive(Debug, Clone, Copy)]
pub(super) struct HostFacts {
    pub uid: u32,
    pub gid: u32,
    /// The highest capability number this kernel knows.
    pub cap_last_cap: u32,
}

impl HostFacts {
    pub fn read() -> Result<Self, SandboxError> {
        let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .map_err(|e| SandboxError::os("reading cap_last_cap", e))?;
        let cap_last_cap = text.trim().parse().unwrap_or(63);
        Ok(Self {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            cap_last_cap,
        })
    }
}

/// The number of threads of this process.
pub(super) fn thread_count() -> Result<usize, SandboxError> {
    let tasks = std::fs::read_dir("/proc/self/task")
        .map_err(|e| SandboxError::os("listing /proc/self/task", e))?;
    Ok(tasks.count())
}

/// Supplementary groups can only be dropped while privileged in the initial namespace.
pub(super) fn drop_supplementary_groups(host: &HostFacts) -> Result<(), SandboxError> {
    if host.uid != 0 {
        return Ok(());
    }
    nix::unistd::setgroups(&[]).map_err(|e| SandboxError::os("setgroups([])", e))
}

pub(super) fn set_rlimits(limits: &[Rlimit]) -> Result<(), SandboxError> {
    use nix::sys::resource::{Resource as R, setrlimit};
    for limit in limits {
        let resource = match limit.resource {
            Resource::Core => R::RLIMIT_CORE,
            Resource::Memlock => R::RLIMIT_MEMLOCK,
            Resource::Msgqueue => R::RLIMIT_MSGQUEUE,
            Resource::Rtprio => R::RLIMIT_RTPRIO,
            Resource::Nice => R::RLIMIT_NICE,
            Resource::Nofile => R::RLIMIT_NOFILE,
            Resource::Nproc => R::RLIMIT_NPROC,
            Resource::Fsize => R::RLIMIT_FSIZE,
            Resource::As => R::RLIMIT_AS,
        };
        setrlimit(resource, limit.limit, limit.limit)
            .map_err(|e| SandboxError::os(format!("setrlimit({resource:?})"), e))?;
    }
    Ok(())
}

/// Drops every capability, switches identity if asked, then sets
/// non-dumpable and no_new_privs, and checks that nothing can be regained.
pub(super) fn drop_all(identity: Option<&Identity>, host: &HostFacts) -> Result<(), SandboxError> {
    for cap in 0..=host.cap_last_cap {
        prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), "PR_CAPBSET_DROP")?;
    }
    prctl_arg2(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, "ambient clear")?;
    prctl(libc::PR_SET_SECUREBITS, SECUREBITS, "PR_SET_SECUREBITS")?;
    if let Some(id) = identity {
        switch_identity(id)?;
    }
    clear_capability_sets()?;
    prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")?;
    verify(identity)
}

fn switch_identity(id: &Identity) -> Result<(), SandboxError> {
    use nix::unistd::{Gid, Uid, setresgid, setresuid};
    let gid = Gid::from_raw(id.gid);
    setresgid(gid, gid, gid).map_err(|e| SandboxError::os("setresgid", e))?;
    let uid = Uid::from_raw(id.uid);
    setresuid(uid, uid, uid).map_err(|e| SandboxError::os("setresuid", e))
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empties the effective, permitted and inheritable sets.
fn clear_capability_sets() -> Result<(), SandboxError> {
    let header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let data = [CapData::default(); 2];
    // SAFETY: `header` and `data` are valid, properly laid out
    // `__user_cap_header_struct` / two `__user_cap_data_struct`s for version 3,
    // and outlive the call; the kernel only reads them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) };
    if rc != 0 {
        return Err(SandboxError::os("capset(0)", io::Error::last_os_error()));
    }
    Ok(())
}

/// The permitted set as the kernel reports it.
fn permitted_caps() -> Result<u64, SandboxError> {
    let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: as for capset; the kernel writes at most two `CapData` entries.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(SandboxError::os("capget", io::Error::last_os_error()));
    }
    Ok(u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32))
}

fn verify(identity: Option<&Identity>) -> Result<(), SandboxError> {
    let leftover = permitted_caps()?;
    if leftover != 0 {
        let err = io::Error::other(format!("capabilities {leftover:#x} are still permitted"));
        return Err(SandboxError::os("verifying the privilege drop", err));
    }
    if identity.is_some_and(|id| id.uid != 0) && nix::unistd::setuid(0.into()).is_ok() {
        let err = io::Error::other("setuid(0) succeeded after the drop");
        return Err(SandboxError::os("verifying the privilege drop", err));
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<(), SandboxError> {
    // SAFETY: these prctl options take integer arguments only; no memory is passed.
    let rc = unsafe { libc::prctl(option, arg, 0, 0, 0) };
    if rc != 0 {
        return Err(SandboxError::os(what, io::Error::last_os_error()));
    }
    Ok(())
}

fn prctl_arg2(option: libc::c_int, sub: libc::c_int, what: &str) -> Result<(), SandboxError> {
    prctl(option, libc::c_ulong::try_from(sub).unwrap_or_default(), what)
}
