//! `bulkhead`: the command line. Parses arguments, sets up logging, calls the library.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use bulkhead::commands;
use clap::{Parser, Subcommand};

/// Where the configuration is read from unless `--config` says otherwise.
const DEFAULT_CONFIG: &str = "/etc/bulkhead/bulkhead.toml";

#[derive(Debug, Parser)]
#[command(name = "bulkhead", version, about = "A privilege-separated web gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The configuration file.
    #[arg(long, short, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration, bind the listeners and serve.
    Run,
    /// Validate the configuration only (exit status 64 on any problem).
    Check,
    /// Make the running instance re-read its configuration (like SIGHUP).
    Reload,
    /// Print the running instance's components, as JSON.
    Status,
    /// Check the running instance's sandboxes against their profiles (reads /proc).
    Audit,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = &cli.config;
    let log = bulkhead::config::log_settings(path);
    privsep::logging::init_with(&log.level, log.json);
    match cli.command {
        Command::Run => commands::run(path),
        Command::Check => commands::check(path),
        Command::Reload => commands::reload(path),
        Command::Status => commands::status(path),
        Command::Audit => commands::audit(path),
    }
}
