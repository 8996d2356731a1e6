//! Reload: validate the new file in full, then apply only the difference.
//!
//! An invalid file changes nothing. Removed apps are forgotten by the gateway
//! and their workers drain; added apps start; a changed app gets new workers
//! and its old ones are retired only once every new one is ready, so no
//! request finds the app without a worker.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Broker, Event};
use crate::admin::ReloadOutcome;
use crate::config;
use crate::systemd;

/// The longest `bulkhead reload` waits for the new workers before answering.
const SETTLE_WAIT: Duration = Duration::from_secs(15);

/// A `bulkhead reload` caller, answered once the new configuration serves.
#[derive(Debug)]
pub(super) struct Waiter {
    reply: oneshot::Sender<ReloadOutcome>,
    summary: String,
}

impl Broker {
    /// Reloads; a caller is answered once every changed app's new workers serve.
    pub(super) async fn reload_and_reply(&mut self, reply: Option<oneshot::Sender<ReloadOutcome>>) {
        let outcome = self.reload().await;
        let Some(reply) = reply else { return };
        match outcome {
            ReloadOutcome::Reloaded { summary } if !self.settled() => {
                self.reload_waiters.push(Waiter { reply, summary });
                self.later(SETTLE_WAIT, Event::ReloadDeadline);
            }
            outcome => {
                let _ = reply.send(outcome);
            }
        }
    }

    /// Answers waiting reload callers once settled, or regardless at the deadline.
    pub(super) fn answer_reloads(&mut self, deadline_passed: bool) {
        let settled = self.settled();
        if self.reload_waiters.is_empty() || !(settled || deadline_passed) {
            return;
        }
        for w in self.reload_waiters.drain(..) {
            let summary = if settled {
                w.summary
            } else {
                format!("{}; some new workers are not ready yet", w.summary)
            };
            let _ = w.reply.send(ReloadOutcome::Reloaded { summary });
        }
    }

    fn settled(&self) -> bool {
        self.apps.values().all(super::apps::AppState::settled)
    }

    pub(super) async fn reload(&mut self) -> ReloadOutcome {
        systemd::notify_reloading();
        let outcome = self.reload_inner().await;
        systemd::notify("READY=1");
        outcome
    }

    async fn reload_inner(&mut self) -> ReloadOutcome {
        let path = self.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
        let new = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
                for p in &problems {
                    warn!(problem = %p, "reload refused: the configuration is invalid");
                }
                return ReloadOutcome::Refused { problems };
            }
            Err(e) => return ReloadOutcome::Refused { problems: vec![e.to_string()] },
        };
        match crate::profiles::preflight(&new) {
            Ok(warnings) => warnings.iter().for_each(|w| warn!("{w}")),
            Err(e) => {
                warn!(problem = %e, "reload refused: the sandboxes cannot be applied");
                return ReloadOutcome::Refused { problems: vec![e.to_string()] };
            }
        }
        let tls = match super::keyholder::reload_material(&new) {
            Ok(material) => material,
            Err(e) => {
                warn!(problem = %e, "reload refused: the TLS files are unusable");
                return ReloadOutcome::Refused { problems: vec![e.to_string()] };
            }
        };
        if new.listen != self.config.listen || new.listen_tls != self.config.listen_tls {
            warn!("listener changes take effect only after a restart");
        }
        self.reloaded_at = Some(std::time::Instant::now());
        let mut summary = self.apply(new).await;
        if self.apply_tls(tls).await {
            summary.push_str(", certificates reloaded");
        }
        info!(%summary, "reloaded");
        ReloadOutcome::Reloaded { summary }
    }

    async fn apply(&mut self, mut new: config::Config) -> String {
        new.listen.clone_from(&self.config.listen);
        new.listen_tls.clone_from(&self.config.listen_tls);
        let apps = std::mem::take(&mut new.apps);
        let names: BTreeSet<String> = apps.iter().map(|a| a.spec.name.clone()).collect();
        let removed: Vec<String> =
            self.apps.keys().filter(|n| !names.contains(*n)).cloned().collect();
        new.apps.clone_from(&apps);
        self.config = new;
        let (mut added, mut changed, mut revived) = (0, 0, 0);
        for name in &removed {
            self.remove_app(name).await;
        }
        for app in apps {
            match self.apps.get(&app.spec.name) {
                None => {
                    added += 1;
                    self.add_app(app).await;
                }
                Some(st) if st.app != app => {
                    changed += 1;
                    self.change_app(app).await;
                }
                Some(_) => {
                    if self.revive(&app.spec.name).await {
                        revived += 1;
                    }
                }
            }
        }
        let mut summary = format!("{added} added, {changed} changed, {} removed", removed.len());
        if revived > 0 {
            summary.push_str(&format!(", {revived} retried after a crash loop"));
        }
        summary
    }
}
