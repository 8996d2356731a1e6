//! Talking to a running broker the way an operator does: `bulkhead status` (JSON),
//! `bulkhead reload`, and rewriting the config file a reload will read.
//!
//! Everything goes through the real `bulkhead` command line, so the tests exercise the
//! admin socket, its client and the exit statuses together.

use crate::bulkhead::{Bulkhead, CheckOutcome, with_control_socket};
use crate::net::poll_until;
use crate::procfs::Pid;
use crate::{binaries, read_log};
use serde_json::Value;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one `bulkhead status` or `bulkhead reload` may run.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// One app as `bulkhead status` shows it.
#[derive(Debug, Clone)]
pub struct AppState {
    /// `running`, `idle` or `crash-loop`.
    pub state: String,
    /// Unexpected exits since the app was configured.
    pub restarts: u64,
    /// `(pid, ready, draining)` of every worker the broker tracks.
    pub workers: Vec<(Pid, bool, bool)>,
    /// The configuration generation.
    pub generation: u64,
}

impl AppState {
    /// Pids of the workers that are ready and not draining.
    pub fn ready_pids(&self) -> Vec<Pid> {
        self.workers
            .iter()
            .filter(|(_, ready, draining)| *ready && !draining)
            .map(|w| w.0)
            .collect()
    }
}

impl Bulkhead {
    /// Runs `bulkhead SUBCOMMAND --config <this broker's config>` to completion.
    pub fn admin(&self, subcommand: &str) -> CheckOutcome {
        let dir = crate::temp_dir();
        let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut child = Command::new(binaries::binary(binaries::BROKER))
            .arg(subcommand)
            .arg("--config")
            .arg(self.config_path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("creating the stdout file"))
            .stderr(File::create(&err_path).expect("creating the stderr file"))
            .spawn()
            .unwrap_or_else(|err| panic!("spawning bulkhead {subcommand}: {err}"));
        let status = poll_until(ADMIN_TIMEOUT, || child.try_wait().ok().flatten());
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bulkhead {subcommand} did not finish within {ADMIN_TIMEOUT:?}");
        };
        CheckOutcome {
            code: status.code(),
            stdout: read_log(&out_path),
            stderr: read_log(&err_path),
        }
    }

    /// `bulkhead status` as JSON; panics if the broker cannot be reached.
    pub fn status(&self) -> Value {
        let out = self.admin("status");
        assert_eq!(out.code, Some(0), "bulkhead status failed: {}", out.output());
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|err| panic!("status is not JSON ({err}): {}", out.stdout))
    }

    /// The state of app `name` in `bulkhead status`; panics if the app is not listed.
    pub fn app_state(&self, name: &str) -> AppState {
        let status = self.status();
        self.find_app(&status, name).unwrap_or_else(|| panic!("no app {name:?} in {status:#}"))
    }

    /// Whether `bulkhead status` lists app `name`.
    pub fn has_app(&self, name: &str) -> bool {
        self.find_app(&self.status(), name).is_some()
    }

    fn find_app(&self, status: &Value, name: &str) -> Option<AppState> {
        let app = status["apps"].as_array()?.iter().find(|a| a["name"] == name)?;
        let workers = app["workers"].as_array().map(Vec::as_slice).unwrap_or_default();
        Some(AppState {
            state: app["state"].as_str().unwrap_or_default().to_owned(),
            restarts: app["restarts"].as_u64().unwrap_or_default(),
            generation: app["generation"].as_u64().unwrap_or_default(),
            workers: workers
                .iter()
                .map(|w| {
                    let pid = w["pid"].as_u64().and_then(|p| Pid::try_from(p).ok()).unwrap_or(0);
                    (pid, w["ready"] == true, w["draining"] == true)
                })
                .collect(),
        })
    }

    /// The gateway's pid in `bulkhead status`.
    pub fn gateway_pid(&self) -> Option<Pid> {
        let pid = self.status()["gateway"]["pid"].as_u64()?;
        Pid::try_from(pid).ok()
    }

    /// Polls `bulkhead status` until app `name` satisfies `check`; the last state on timeout.
    pub fn wait_app(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&AppState) -> bool,
    ) -> Result<AppState, Option<AppState>> {
        let mut last = None;
        let found = poll_until(timeout, || {
            let state = self.find_app(&self.status(), name);
            let done = state.as_ref().is_some_and(&check);
            last = state.clone();
            if done { state } else { None }
        });
        found.ok_or(last)
    }

    /// Replaces the config file a reload reads (keeping this broker's admin socket).
    pub fn rewrite_config(&self, config_toml: &str) {
        let path = self.config_path();
        let dir = path.parent().expect("the config lives in a directory");
        std::fs::write(&path, with_control_socket(dir, config_toml)).expect("rewriting the config");
    }

    /// `bulkhead reload`.
    pub fn reload(&self) -> CheckOutcome {
        self.admin("reload")
    }
}
