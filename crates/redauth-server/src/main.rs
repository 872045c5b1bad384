use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: `malloc`/`free` were 12 % of a token check's CPU
/// and 20 % of a refresh's, and glibc kept the 19 MiB Argon2 buffers of a login storm in
/// per-thread arenas (hundreds of MiB of RSS afterwards). See docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser as _;
use redauth_server::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redauth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // With its causes: "storage unavailable: redis: Connection refused" says
            // more than "storage unavailable".
            eprintln!("redauth: {}", redauth_core::error::Chain(&e));
            ExitCode::from(2)
        }
    }
}
