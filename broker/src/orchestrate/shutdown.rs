//! Stopping: the gateway finishes in-flight requests within the deadline,
//! then the workers (whose channels are then closed) drain and exit, then the
//! managed php-fpm pools finish their requests and exit.

use std::time::Duration;

use privsep::msg::{ToGateway, ToPool, ToWorker};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Broker, Event};
use crate::supervise::ChildId;

/// Extra time, past the gateway's deadline, before children are killed.
const KILL_AFTER: Duration = Duration::from_secs(2);

impl Broker {
    pub(super) async fn shutdown(&mut self, rx: &mut UnboundedReceiver<Event>) {
        let deadline_ms = self.config.shutdown_timeout_ms;
        self.to_gateway(&ToGateway::Shutdown { deadline_ms }).await;
        let deadline = Instant::now() + Duration::from_millis(deadline_ms) + KILL_AFTER;
        while self.gateway.is_some() {
            if !self.wait_exit(rx, deadline).await {
                warn!("the gateway did not stop in time; killing it");
                if let Some(gw) = self.gateway.take() {
                    gw.control.kill();
                }
            }
        }
        for worker in self.all_workers() {
            if worker.send(&ToWorker::Drain, &[]).await.is_err() {
                worker.kill();
            }
        }
        let deadline = Instant::now() + KILL_AFTER;
        while self.worker_count() > 0 {
            if !self.wait_exit(rx, deadline).await {
                warn!(left = self.worker_count(), "workers did not stop in time; killing them");
                self.all_workers().iter().for_each(|w| w.kill());
                break;
            }
        }
        self.stop_pools(rx).await;
        info!("stopped");
    }

    /// Managed pools stop last, once no worker can send them a request.
    async fn stop_pools(&mut self, rx: &mut UnboundedReceiver<Event>) {
        for pool in self.all_pools() {
            if pool.send(&ToPool::Drain, &[]).await.is_err() {
                pool.kill();
            }
        }
        let deadline = Instant::now() + KILL_AFTER;
        while self.pool_count() > 0 {
            if !self.wait_exit(rx, deadline).await {
                warn!(left = self.pool_count(), "php pools did not stop in time; killing them");
                self.all_pools().iter().for_each(|p| p.kill());
                break;
            }
        }
    }

    /// Waits for one child exit and forgets that child; `false` at the deadline.
    async fn wait_exit(&mut self, rx: &mut UnboundedReceiver<Event>, deadline: Instant) -> bool {
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Event::Exited { id, status, .. })) => {
                    info!(child = %id, status, "exited");
                    match id {
                        ChildId::Gateway { .. } => self.gateway = None,
                        ChildId::Keyholder { serial } => self.forget_keyholder(serial),
                        ChildId::Worker { app, serial } => self.forget_worker(&app, serial),
                        ChildId::Pool { app, serial } => self.forget_pool(&app, serial),
                    }
                    return true;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return false,
            }
        }
    }
}
