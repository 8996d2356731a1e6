//! The keyholder child and the gateway's TLS: listeners, chains, signing channels.
//!
//! The broker reads every certificate chain and private key
//! ([`files::load`]); chains go to the gateway ([`ToGateway::Tls`]), keys
//! only to the keyholder ([`ToKeyholder::Key`]). For every gateway the broker
//! creates a fresh `SOCK_SEQPACKET` pair and hands one end to the keyholder
//! ([`ToKeyholder::Channel`]) and the other to the gateway
//! ([`ToGateway::Keyholder`]), so each gateway's identity is its channel.
//! When the keyholder exits it is restarted with backoff and every live
//! gateway gets a new channel; until then the gateway fails new handshakes
//! cleanly. Reload re-reads the files and, when anything changed, sends the
//! gateway its new chains and replaces the keyholder by one holding the new
//! keys.

use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use privsep::msg::{ToGateway, ToKeyholder};
use tracing::{error, info, warn};

use super::{Broker, Event};
use crate::admin::ChildStatus;
use crate::config::Config;
use crate::keyholder::files::{self, TlsFileError, TlsMaterial};
use crate::profiles;
use crate::supervise::{self, Backoff, ChildId, Control};

/// The keyholder's binary, next to `bulkhead`.
const PROGRAM: &str = "bulkhead-keyholder";

/// Everything the broker keeps for TLS.
#[derive(Debug, Default)]
pub(super) struct TlsState {
    /// Bound once, like the plain listeners; every gateway gets duplicates.
    listeners: Vec<TcpListener>,
    /// What the files held when last read; the keys are zeroed when dropped.
    material: TlsMaterial,
    child: Option<KeyholderChild>,
    backoff: Backoff,
    /// Keyholder exits while the broker was not shutting down.
    restarts: u64,
}

#[derive(Debug)]
struct KeyholderChild {
    serial: u64,
    control: Control,
    /// It has every key, and the live gateway (if any) a channel to it.
    ready: bool,
}

impl TlsState {
    /// Binds `listen_tls` and reads every app's TLS files.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let material = files::load(config)?;
        let mut listeners = Vec::new();
        for addr in &config.listen_tls {
            let l =
                TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("listen_tls {addr}: {e}"))?;
            info!(addr = %l.local_addr()?, "listening (TLS)");
            listeners.push(l);
        }
        if !material.is_empty() && listeners.is_empty() {
            warn!("apps have `tls` but there is no `listen_tls`: HTTPS is not served");
        }
        Ok(Self { listeners, material, ..Self::default() })
    }

    /// The TLS listeners, to pass to a gateway after the plain ones.
    pub fn listener_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.listeners.iter().map(AsFd::as_fd).collect()
    }

    fn serves_tls(&self) -> bool {
        !self.listeners.is_empty() && !self.material.is_empty()
    }

    /// The keyholder's line in `bulkhead status`.
    pub fn status(&self) -> Option<ChildStatus> {
        let child = self.child.as_ref()?;
        Some(ChildStatus { pid: child.control.pid, ready: child.ready, restarts: self.restarts })
    }
}

/// Reads the TLS files of a configuration about to be applied by a reload.
pub(super) fn reload_material(config: &Config) -> Result<TlsMaterial, TlsFileError> {
    files::load(config)
}

impl Broker {
    /// Starts the keyholder with every key, then connects it to the gateway.
    pub(super) async fn start_keyholder(&mut self) {
        if !self.tls.serves_tls() {
            return;
        }
        let serial = self.next_serial();
        let id = ChildId::Keyholder { serial };
        let started = supervise::start(&self.bin, PROGRAM, id, self.events.clone());
        let control = match started {
            Ok(c) => c,
            Err(e) => {
                error!(cause = %e, "cannot start the keyholder");
                let delay = self.tls.backoff.next(Duration::ZERO);
                return self.later(delay, Event::RestartKeyholder);
            }
        };
        self.tls.child = Some(KeyholderChild { serial, control: control.clone(), ready: false });
        if let Err(e) = self.init_keyholder(&control).await {
            // Its exit, reported by the watcher, schedules the next attempt.
            error!(cause = %e, "cannot initialise the keyholder");
            return control.kill();
        }
        self.connect_keyholder().await;
        if let Some(child) = self.tls.child.as_mut().filter(|c| c.serial == serial) {
            child.ready = true;
        }
    }

    async fn init_keyholder(&self, control: &Control) -> anyhow::Result<()> {
        let keys = &self.tls.material.keys;
        let init = ToKeyholder::Init {
            keys: u16::try_from(keys.len())?,
            sandbox: profiles::keyholder(&self.config),
            signatures_per_second: self.config.tls_signatures_per_second,
        };
        control.send(&init, &[]).await?;
        for key in keys {
            control.send(&ToKeyholder::Key(key.clone()), &[]).await?;
        }
        Ok(())
    }

    /// Gives the gateway and the keyholder the two ends of a new signing channel.
    pub(super) async fn connect_keyholder(&self) {
        let (Some(kh), Some(gw)) = (&self.tls.child, &self.gateway) else { return };
        let (ours, theirs) = match signing_pair() {
            Ok(pair) => pair,
            Err(e) => return error!(cause = %e, "cannot create a signing channel"),
        };
        if let Err(e) = kh.control.send(&ToKeyholder::Channel, &[ours.as_fd()]).await {
            warn!(cause = %e, "cannot reach the keyholder; killing it");
            return kh.control.kill();
        }
        let msg = ToGateway::Keyholder { serial: kh.serial };
        if let Err(e) = gw.control.send(&msg, &[theirs.as_fd()]).await {
            warn!(cause = %e, "cannot reach the gateway; killing it");
            gw.control.kill();
        }
    }

    /// Sends the gateway every app's chain and HTTPS options.
    pub(super) async fn send_certificates(&self) {
        if self.tls.listeners.is_empty() {
            return;
        }
        for tls in &self.tls.material.certs {
            self.to_gateway(&ToGateway::Tls(Box::new(tls.clone()))).await;
        }
    }

    /// What a live gateway needs for TLS: chains, then a signing channel.
    pub(super) async fn gateway_tls(&self) {
        self.send_certificates().await;
        self.connect_keyholder().await;
    }

    /// Applies re-read TLS files: new chains to the gateway, a new keyholder.
    pub(super) async fn apply_tls(&mut self, material: TlsMaterial) -> bool {
        if material == self.tls.material {
            return false;
        }
        let dropped: Vec<String> = (self.tls.material.certs.iter())
            .filter(|old| material.certs.iter().all(|new| new.app != old.app))
            .map(|old| old.app.clone())
            .collect();
        for app in dropped {
            self.to_gateway(&ToGateway::NoTls { app }).await;
        }
        self.tls.material = material;
        self.send_certificates().await;
        if let Some(old) = self.tls.child.take() {
            old.control.kill();
        }
        self.start_keyholder().await;
        info!("certificates and keys reloaded");
        true
    }

    pub(super) fn keyholder_exited(&mut self, serial: u64, status: &str, ran_for: Duration) {
        if self.tls.child.as_ref().is_none_or(|c| c.serial != serial) {
            return;
        }
        self.tls.child = None;
        self.tls.restarts += 1;
        error!(status, ran_ms = ran_for.as_millis() as u64, "keyholder exited; restarting it");
        let delay = self.tls.backoff.next(ran_for);
        self.later(delay, Event::RestartKeyholder);
    }

    /// The gateway reports its channel to keyholder `serial` broken: a keyholder that
    /// is alive but does not answer would otherwise never be replaced. A report about
    /// an earlier keyholder (one already replaced) changes nothing; restarts keep
    /// their backoff, so a gateway repeating the report cannot make the keyholder spin.
    pub(super) fn on_keyholder_broken(&mut self, serial: u64) {
        let Some(child) = self.tls.child.as_ref().filter(|c| c.serial == serial) else {
            return;
        };
        warn!(serial, "the gateway's signing channel failed; replacing the keyholder");
        child.control.kill();
    }

    /// Forgets the keyholder once it has exited during shutdown.
    pub(super) fn forget_keyholder(&mut self, serial: u64) {
        if self.tls.child.as_ref().is_some_and(|c| c.serial == serial) {
            self.tls.child = None;
        }
    }
}

/// A connected `SOCK_SEQPACKET` pair, both ends close-on-exec.
fn signing_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let pair = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok(pair)
}
