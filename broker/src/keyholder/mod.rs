//! The keyholder: the only process that holds TLS private keys.
//!
//! It is started by the broker like every child, receives its sandbox and
//! its keys on its control socket, and then answers exactly one request on
//! each gateway's signing channel: "sign these bytes with key K using scheme
//! S", checked against [`privsep::keyproto`]'s policy. It has no listening
//! socket, opens no file and takes no command from a gateway; any request
//! that is not a handshake signature closes that gateway's channel.
//!
//! - [`keys`]: parsing keys, naming them, signing (also used by the broker to
//!   check that a key matches its certificate).
//! - [`serve`]: the keyholder's loop: control socket and signing channels.
//! - [`files`]: runs in the *broker*: reads certificate and key files into
//!   what the gateway and the keyholder are sent.

pub mod files;
pub mod keys;
pub mod serve;

pub use serve::{receive_init, run};
