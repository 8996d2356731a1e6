//! `bulkhead-gateway`: started by the broker with its control socket at fd 3.
//!
//! Order matters: receive `Init`, enter the sandbox while single-threaded,
//! build the runtime, lock the sandbox (seccomp on every thread), and only
//! then accept a client connection.

#![forbid(unsafe_code)]

use privsep::channel::ControlSocket;
use privsep::sandbox;

fn main() -> anyhow::Result<()> {
    privsep::logging::init();
    let control = ControlSocket::inherited(privsep::CONTROL_FD)?;
    let init = bulkhead_gateway::control::receive_init(&control)?;
    sandbox::enter(&init.sandbox)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime_threads())
        .thread_name("gateway")
        .enable_all()
        .build()?;
    sandbox::lock(&init.sandbox)?;
    rt.block_on(bulkhead_gateway::run(control, init))
}

/// Half the CPUs (at least one): the gateway shares the machine with the
/// workers and php-fpm, and fewer threads mean fewer cross-thread wake-ups
/// (measured on 2 cores: one thread served 8% more PHP requests than two).
/// Multi-threaded even then, so keyholder calls can use `block_in_place`.
fn runtime_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
