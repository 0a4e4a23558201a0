//! The `sockjsproxy` binary: parse the command line, check the configuration,
//! run the server. Every start-up error is one line and exit code 2.

use std::process::ExitCode;

use clap::Parser;
use sockjsproxy::cli::Cli;
use sockjsproxy::config::Config;

fn main() -> ExitCode {
    sockjsproxy::memory::return_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are "errors" that print and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // clap's message spans lines (usage, hints); one line is wanted.
            let text = e.to_string();
            let parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Usage:")
                        && !l.starts_with("For more information")
                })
                .collect();
            let line = parts.join(" ");
            return fail(&format!(
                "{} (see --help)",
                line.strip_prefix("error: ").unwrap_or(&line)
            ));
        }
    };
    if let Some(sockjsproxy::cli::Tool::Keygen { dir, name }) = &cli.tool {
        return match sockjsproxy::config::curve::keygen(dir, name) {
            Ok((public, secret)) => {
                println!("public certificate: {}", public.display());
                println!("secret certificate: {}", secret.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    let level = if cli.verbose { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();

    let config = match Config::from_cli(&cli) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    match actix_web::rt::System::new().block_on(sockjsproxy::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("sockjsproxy: {e}");
    ExitCode::from(2)
}
