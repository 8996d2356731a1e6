//! The contract between Bulkhead's processes, and the only crate allowed `unsafe`.
//!
//! Every other crate forbids `unsafe`; whatever needs it (fd passing, the
//! `pre_exec` hook that places a child's control socket at fd 3) lives here,
//! each block with a `// SAFETY:` comment.
//!
//! # Layout
//! - [`exposure`]: the dumpable flag and the original environment block, set,
//!   scrubbed and checked from outside.
//! - [`inherit`]: listeners passed by systemd socket activation.
//! - [`keyproto`]: the gateway ↔ keyholder signing protocol and its policy (no I/O).
//! - [`logging`]: the log subscriber every binary installs.
//! - [`msg`]: the typed control messages and their bounded codec (no I/O).
//! - [`channel`]: a `SOCK_SEQPACKET` control socket that carries one message
//!   and its file descriptors per datagram, with hard size and fd caps.
//! - [`spawn`]: fork+exec of a sibling binary with its control socket at
//!   [`CONTROL_FD`], an empty environment and no inherited descriptors.
//! - [`program`]: fork+exec of a foreign program (php-fpm) as PID 1 of the
//!   launcher's sandbox, and waiting for it.
//! - [`sandbox`]: sandbox profiles and the code that applies them in a child.
//! - [`secret`]: a secret value that never prints and is zeroed on drop.
//! - [`wire`]: the headers the gateway adds to requests it forwards to workers.

pub mod channel;
pub mod exposure;
pub mod inherit;
pub mod keyproto;
pub mod logging;
pub mod msg;
pub mod program;
pub mod sandbox;
pub mod secret;
pub mod spawn;
pub mod wire;

/// The descriptor number at which every child finds its control socket.
pub const CONTROL_FD: i32 = 3;
