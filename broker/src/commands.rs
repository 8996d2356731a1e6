//! The `bulkhead` subcommands, each returning the process exit status.
//!
//! `main` only parses arguments and calls one of these; the work itself is
//! in the other modules.

use std::path::Path;
use std::process::ExitCode;

use crate::admin::{self, ReloadOutcome, Request, Response};
use crate::config;

/// Exit status of `audit` when a component is weaker than its profile.
const EXIT_WEAKER: u8 = 1;
/// Exit status when the running instance could not be reached or inspected.
const EXIT_UNREACHABLE: u8 = 2;

/// `bulkhead check`: validate only.
pub fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(config) => {
            for warning in config::file_warnings(path, &config) {
                eprintln!("warning: {warning}");
            }
            println!("{}: configuration OK", path.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `bulkhead run`: become non-dumpable, validate, scrub `{ env = … }` secrets
/// from the environment, then serve until SIGTERM.
pub fn run(path: &Path) -> ExitCode {
    if let Err(e) = privsep::exposure::set_undumpable() {
        eprintln!("bulkhead: cannot make the broker non-dumpable: {e}");
        return ExitCode::FAILURE;
    }
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = crate::environ::scrub(&config.env_secrets) {
        eprintln!("bulkhead: cannot clear the secrets' variables from the environment: {e}");
        return ExitCode::FAILURE;
    }
    for warning in config::file_warnings(path, &config) {
        tracing::warn!("{warning}");
    }
    match crate::profiles::preflight(&config) {
        Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
        Err(e) => {
            eprintln!("bulkhead: cannot sandbox the children: {e}");
            return ExitCode::FAILURE;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match rt {
        Ok(rt) => rt.block_on(crate::orchestrate::run(path.to_path_buf(), config)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `bulkhead reload`: ask the running broker to re-read its configuration.
pub fn reload(path: &Path) -> ExitCode {
    match ask(path, &Request::Reload) {
        Ok(Response::Reload(ReloadOutcome::Reloaded { summary })) => {
            println!("reloaded: {summary}");
            ExitCode::SUCCESS
        }
        Ok(Response::Reload(ReloadOutcome::Refused { problems })) => {
            eprintln!("reload refused; the running configuration is unchanged:");
            problems.iter().for_each(|p| eprintln!("{p}"));
            ExitCode::from(config::EXIT_CONFIG as u8)
        }
        other => unreachable_instance(other),
    }
}

/// `bulkhead status`: print the running instance's children as JSON.
pub fn status(path: &Path) -> ExitCode {
    match ask(path, &Request::Status) {
        Ok(Response::Status(status)) => {
            let json = serde_json::to_string_pretty(&status).unwrap_or_default();
            println!("{json}");
            ExitCode::SUCCESS
        }
        other => unreachable_instance(other),
    }
}

/// `bulkhead audit`: check every live component against its profile.
pub fn audit(path: &Path) -> ExitCode {
    match crate::audit::run(path) {
        Ok(report) => {
            print!("{}", report.text);
            if report.findings.is_empty() {
                println!("audit: every component is at least as confined as its profile");
                return ExitCode::SUCCESS;
            }
            println!("audit: {} finding(s):", report.findings.len());
            report.findings.iter().for_each(|f| println!("  {f}"));
            ExitCode::from(EXIT_WEAKER)
        }
        Err(e) => {
            eprintln!("bulkhead audit: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

fn load(path: &Path) -> Result<config::Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{}: configuration invalid:\n{e}", path.display());
        ExitCode::from(config::EXIT_CONFIG as u8)
    })
}

fn ask(path: &Path, request: &Request) -> std::io::Result<Response> {
    let socket = config::control_socket_for(path);
    admin::request(&socket, request).map_err(|e| {
        std::io::Error::other(format!("cannot reach the broker at {}: {e}", socket.display()))
    })
}

fn unreachable_instance(answer: std::io::Result<Response>) -> ExitCode {
    match answer {
        Ok(Response::Error(e)) => eprintln!("bulkhead: the broker answered: {e}"),
        Ok(other) => eprintln!("bulkhead: unexpected answer: {other:?}"),
        Err(e) => eprintln!("bulkhead: {e}"),
    }
    ExitCode::from(EXIT_UNREACHABLE)
}
