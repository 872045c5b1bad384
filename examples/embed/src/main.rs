//! `cargo run -p redauth-example-embed`: the example app on 127.0.0.1:3000 (or
//! `EMBED_LISTEN`), its data in `./embed-data` (or `EMBED_DATA_DIR`), tokens signed with
//! `JWT_SECRET` (at least 32 bytes).

use std::process::ExitCode;

use redauth_core::Secret;
use redauth_example_embed::{AppState, app, redauth};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed example: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("JWT_SECRET").map_err(|_| "set JWT_SECRET (32+ bytes)")?;
    let data_dir = std::env::var("EMBED_DATA_DIR").unwrap_or_else(|_| "embed-data".into());
    let listen = std::env::var("EMBED_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let state = AppState {
        redauth: redauth(data_dir.as_ref(), Secret::new(secret))?,
        greeting: "hello".into(),
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("listening on http://{listen}");
    redauth_axum::serve::serve(
        listener,
        app(state),
        redauth_axum::serve::ConnectionLimits::default(),
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await;
    Ok(())
}
