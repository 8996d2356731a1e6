//! The listening sockets: inherited from systemd, or bound here.
//!
//! They are opened once and kept by the broker for its whole life; every
//! gateway it starts gets duplicates. That is what lets a crashed gateway be
//! replaced without a single refused connection.

use std::net::TcpListener;

use tracing::{info, warn};

use crate::config::Config;

/// Socket-activated listeners when systemd passed some, else the configured `listen`.
pub fn open(config: &Config) -> anyhow::Result<Vec<TcpListener>> {
    let inherited = privsep::inherit::systemd_listeners()?;
    if !inherited.is_empty() {
        for l in &inherited {
            info!(addr = %l.local_addr()?, "listening (socket activation)");
        }
        if !config.listen.is_empty() {
            warn!("socket activation: the configured `listen` addresses are not bound");
        }
        return Ok(inherited);
    }
    let mut out = Vec::new();
    for addr in &config.listen {
        let l = TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("listen {addr}: {e}"))?;
        info!(addr = %l.local_addr()?, "listening");
        out.push(l);
    }
    Ok(out)
}
