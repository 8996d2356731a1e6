//! `bulkhead-gateway`: started by the broker with its control socket at fd 3.

#![forbid(unsafe_code)]

use privsep::channel::ControlSocket;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let control = ControlSocket::inherited(privsep::CONTROL_FD)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gateway")
        .enable_all()
        .build()?;
    rt.block_on(bulkhead_gateway::run(control))
}
