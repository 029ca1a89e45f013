//! `gateway`: serve (default), migrate, manage API keys.

/// mimalloc: per-thread free lists suit the many small, short-lived allocations of
/// request handling across worker threads (glibc malloc cost ~12% of a validation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gateway::cli::run().await
}
