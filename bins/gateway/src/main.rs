//! `gateway`: serve (default), migrate, manage API keys.

/// mimalloc: per-thread free lists suit the many small, short-lived allocations of
/// request handling across worker threads (glibc malloc cost ~12% of a validation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // mimalloc asks for transparent huge pages on its arenas (`madvise`): every 2 MiB
    // region it touches then becomes resident whole, which held ~24 MiB of an idle
    // gateway's RSS (issue 21). Turned off for this process before the runtime starts.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("gateway: could not turn off transparent huge pages: {e}");
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(gateway::cli::run()),
        Err(e) => {
            eprintln!("gateway: could not start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
