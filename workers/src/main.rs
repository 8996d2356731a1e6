//! `bulkhead-worker`: one app's worker process, started by the broker.
//!
//! It only wires things up: logging, the control socket at `privsep::CONTROL_FD`, the
//! one `Init` message with the first gateway channel, the sandbox, then the library's
//! `process::run`, which serves until the broker goes away or orders a drain. It must
//! never touch a channel before its sandbox is in place.
#![forbid(unsafe_code)]

use anyhow::Context;
use privsep::channel::ControlSocket;
use privsep::msg::{ToBroker, ToWorker};
use privsep::sandbox;

fn main() -> anyhow::Result<()> {
    privsep::logging::init();
    let control = ControlSocket::inherited(privsep::CONTROL_FD).context("control socket")?;
    let first = control.recv::<ToWorker>()?.context("broker closed before Init")?;
    let (ToWorker::Init(init), mut fds) = (first.msg, first.fds) else {
        anyhow::bail!("the first control message must be Init");
    };
    let channel = fds.pop().context("Init came without its channel")?;
    sandbox::enter(&init.sandbox).context("entering the sandbox")?;
    let profile = init.sandbox.clone();
    let app = bulkhead_worker::App::new(*init).context("app configuration")?;
    // One thread: a worker only moves bytes between the gateway and php-fpm, and
    // one thread spares the cross-thread wake-ups and stacks (`workers = N` scales out).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    sandbox::lock(&profile).context("locking the sandbox")?;
    control.send(&ToBroker::Ready, &[])?;
    runtime.block_on(async {
        let control = control.into_async()?;
        bulkhead_worker::process::run(app, control, channel).await?;
        Ok(())
    })
}
