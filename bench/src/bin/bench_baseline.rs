//! P1's baseline: the least an axum service can do per request. One route, no
//! middleware, a prebuilt JSON body of `--body-bytes` bytes, on the same multi-thread
//! runtime setup as `redauth serve` and built with the same profile. The harness sizes
//! the body so the whole response is as long on the wire as redauth's answer to
//! `GET /api/auth/verify`; everything redauth spends beyond this is its own cost.
//! It uses the same global allocator as `redauth` (mimalloc), so the allocator is not
//! part of the difference either.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `{"pad":"xxx…"}`, exactly `len` bytes (at least the 10 of the empty object).
fn json_body(len: usize) -> Bytes {
    let pad = len.saturating_sub(r#"{"pad":""}"#.len());
    Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad)))
}

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next()?;
    args.next()
}

fn main() -> ExitCode {
    let listen: SocketAddr = match arg("--listen").unwrap_or("127.0.0.1:0".into()).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-baseline: --listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let body = json_body(
        arg("--body-bytes")
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-baseline: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let router = Router::new().route(
            "/api/auth/verify",
            get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("listening {}", listener.local_addr()?);
        axum::serve(listener, router).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
