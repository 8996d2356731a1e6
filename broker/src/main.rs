//! `bulkhead`: the command line. Parses arguments, sets up logging, calls the library.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use bulkhead::config;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bulkhead", version, about = "A privilege-separated web gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration, bind the listeners and serve.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate the configuration only (exit status 64 on any problem).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    privsep::logging::init();
    let (path, serve) = match Cli::parse().command {
        Command::Run { config } => (config, true),
        Command::Check { config } => (config, false),
    };
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: configuration invalid:\n{e}", path.display());
            return ExitCode::from(config::EXIT_CONFIG as u8);
        }
    };
    if serve {
        return run(config);
    }
    println!("{}: configuration OK", path.display());
    ExitCode::SUCCESS
}

fn run(config: config::Config) -> ExitCode {
    let rt =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match rt.block_on(bulkhead::orchestrate::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
