//! The portal binary: boots the server or runs an administrative command.

use server::config::Config;
use server::startup::Application;
use std::sync::Arc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
        Some("-h") | Some("--help") | Some("help") => {
            println!("{}", server::cli::usage());
            std::process::ExitCode::SUCCESS
        }
        Some(_) => match server::cli::run(&args).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

async fn serve() -> std::process::ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    server::telemetry::init(config.log_json);
    let app =
        match Application::build(config.clone(), Arc::new(app::auth::clock::SystemClock)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "startup failed");
                return std::process::ExitCode::FAILURE;
            }
        };
    match app.local_addr() {
        Ok(addr) => tracing::info!(%addr, public_url = %config.public_url, "portal listening"),
        Err(e) => tracing::warn!(error = %e, "listening on an unknown address"),
    }
    if let Err(e) = app.run_until_stopped().await {
        tracing::error!(error = %e, "server error");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
