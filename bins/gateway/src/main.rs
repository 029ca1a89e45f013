//! `gateway`: serve (default), migrate, manage API keys.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gateway::cli::run().await
}
