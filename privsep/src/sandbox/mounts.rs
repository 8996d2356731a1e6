//! Namespaces, user-namespace id maps and the mount view.
//!
//! The view is built like bubblewrap builds one: a scaffolding tmpfs becomes
//! the root with the host's tree parked under `/oldroot`; a fresh tmpfs at
//! `/newroot` receives the bind mounts (each at its host path), which are made
//! read-only, `nosuid`, `noexec` (and `nodev` unless a device) recursively with
//! `mount_setattr`; then `/newroot` becomes `/`, the host tree is detached and
//! the new root is remounted read-only. Nothing of the host stays reachable.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;

use super::privileges::HostFacts;
use super::{Bind, BindAccess, MountView, Namespaces, SandboxError};

/// Where the scaffolding tmpfs is mounted (it must exist on every host).
const SCAFFOLD: &str = "/tmp";
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Creates the requested namespaces; in a new user namespace, maps only the current ids.
pub(super) fn unshare(ns: &Namespaces, host: &HostFacts) -> Result<(), SandboxError> {
    let wanted = [
        (ns.user, CloneFlags::CLONE_NEWUSER),
        (ns.mount, CloneFlags::CLONE_NEWNS),
        (ns.net, CloneFlags::CLONE_NEWNET),
        (ns.ipc, CloneFlags::CLONE_NEWIPC),
        (ns.uts, CloneFlags::CLONE_NEWUTS),
        (ns.pid, CloneFlags::CLONE_NEWPID),
    ];
    let flags = wanted.iter().filter(|(on, _)| *on).fold(CloneFlags::empty(), |a, (_, f)| a | *f);
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|e| SandboxError::os(format!("unshare({flags:?})"), e))?;
    if ns.user {
        write_id_maps(host)?;
    }
    Ok(())
}

/// `setgroups` must be denied before `gid_map` is written; each map is write-once.
fn write_id_maps(host: &HostFacts) -> Result<(), SandboxError> {
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| SandboxError::os(format!("writing /proc/self/{file}"), e))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{0} {0} 1\n", host.uid))?;
    write("gid_map", format!("{0} {0} 1\n", host.gid))
}

/// Replaces the root with `view`. Requires a mount namespace of our own.
pub(super) fn build_view(view: &MountView) -> Result<(), SandboxError> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| SandboxError::os("making / private", e))?;
    park_host_tree()?;
    tmpfs("/newroot", "size=1m,nr_inodes=4096,mode=0755")?;
    if let Some(bytes) = view.private_tmp {
        mkdir_all(Path::new("/newroot/tmp"))?;
        // An inode per 4 KiB, the least a file takes: small files (PHP sessions) run
        // out of room when the bytes do, not before.
        let inodes = (bytes / 4096).max(4096);
        tmpfs("/newroot/tmp", &format!("size={bytes},nr_inodes={inodes},mode=1777"))?;
    }
    for bind in &view.binds {
        bind_mount(bind)?;
    }
    enter_new_root()
}

/// Mounts the scaffolding tmpfs and makes it the root, the host tree at `/oldroot`.
fn park_host_tree() -> Result<(), SandboxError> {
    tmpfs(SCAFFOLD, "size=64k,nr_inodes=16,mode=0700")?;
    for dir in ["oldroot", "newroot"] {
        mkdir_all(&Path::new(SCAFFOLD).join(dir))?;
    }
    nix::unistd::pivot_root(SCAFFOLD, &Path::new(SCAFFOLD).join("oldroot"))
        .map_err(|e| SandboxError::os("pivot_root to the scaffold", e))?;
    nix::unistd::chdir("/").map_err(|e| SandboxError::os("chdir /", e))
}

fn bind_mount(bind: &Bind) -> Result<(), SandboxError> {
    let relative = bind.path.strip_prefix("/").unwrap_or(&bind.path);
    let source = Path::new("/oldroot").join(relative);
    let target = Path::new("/newroot").join(relative);
    let meta = match std::fs::metadata(&source) {
        Ok(meta) => meta,
        Err(e) if bind.optional && e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SandboxError::os(format!("bind source {}", bind.path.display()), e)),
    };
    if meta.is_dir() {
        mkdir_all(&target)?;
    } else {
        if let Some(parent) = target.parent() {
            mkdir_all(parent)?;
        }
        if !target.exists() {
            std::fs::File::create(&target)
                .map_err(|e| SandboxError::os(format!("mount point {}", target.display()), e))?;
        }
    }
    let none: Option<&str> = None;
    mount(Some(&source), &target, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)
        .map_err(|e| SandboxError::os(format!("bind-mounting {}", bind.path.display()), e))?;
    let flags = match bind.access {
        BindAccess::ReadOnly => MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        BindAccess::ReadWrite => MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        BindAccess::Device => MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        BindAccess::Program => {
            return set_attrs_recursive(
                &target,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            );
        }
    };
    set_attrs_recursive(&target, flags | MOUNT_ATTR_NOEXEC)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(AT_RECURSIVE)`: unlike a bind remount, it also covers submounts.
fn set_attrs_recursive(target: &Path, set: u64) -> Result<(), SandboxError> {
    let path = c_path(target)?;
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: `path` is a NUL-terminated string and `attr` a correctly laid out
    // `struct mount_attr` whose size is passed; both outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        let what = format!("mount_setattr {}", target.display());
        return Err(SandboxError::os(what, io::Error::last_os_error()));
    }
    Ok(())
}

/// `/newroot` becomes `/`; the scaffold and the host tree under it are detached.
/// The root itself stays `noexec`: only [`BindAccess::Program`] binds may hold programs.
fn enter_new_root() -> Result<(), SandboxError> {
    nix::unistd::chdir("/newroot").map_err(|e| SandboxError::os("chdir /newroot", e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| SandboxError::os("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| SandboxError::os("detaching the host", e))?;
    nix::unistd::chdir("/").map_err(|e| SandboxError::os("chdir /", e))?;
    let none: Option<&str> = None;
    let ro = MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    mount(none, "/", none, ro, none).map_err(|e| SandboxError::os("remounting / read-only", e))
}

fn tmpfs(target: &str, options: &str) -> Result<(), SandboxError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options))
        .map_err(|e| SandboxError::os(format!("tmpfs on {target}"), e))
}

fn mkdir_all(path: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(path)
        .map_err(|e| SandboxError::os(format!("mkdir {}", path.display()), e))
}

fn c_path(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        let err = io::Error::from(io::ErrorKind::InvalidInput);
        SandboxError::os(format!("path {}", PathBuf::from(path).display()), err)
    })
}
