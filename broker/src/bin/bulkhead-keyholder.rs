//! `bulkhead-keyholder`: started by the broker with its control socket at fd 3.
//!
//! Order matters: receive `Init`, enter the sandbox while single-threaded,
//! build a single-threaded runtime, lock the sandbox, and only then read a
//! key or a signing request.

#![forbid(unsafe_code)]

use bulkhead::keyholder;
use privsep::channel::ControlSocket;
use privsep::sandbox;

fn main() -> anyhow::Result<()> {
    privsep::logging::init();
    let control = ControlSocket::inherited(privsep::CONTROL_FD)?;
    let init = keyholder::receive_init(&control)?;
    sandbox::enter(&init.sandbox)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    sandbox::lock(&init.sandbox)?;
    rt.block_on(keyholder::run(control, init))
}
