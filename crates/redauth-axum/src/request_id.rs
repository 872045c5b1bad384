//! Request ids: the caller's `x-request-id` when it is sane, else a new one, carried in
//! a task-local for the duration of the request.
//!
//! A task-local rather than a `tracing` span: a span per request, with its fields
//! formatted into the registry, was a quarter of the cost of a cached token check (see
//! docs/performance.md), and the id is the only context a log line needs. A log
//! formatter reads it with [`current`] (the server's JSON formatter does).

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The header that carries the id, in both directions.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: HeaderValue, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Runs `f` with `id` as the current request id (for synchronous code and tests).
pub fn sync_scope<R>(id: HeaderValue, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// The id of the request this task is handling, if any. A clone of the header value
/// shares its bytes: no copy per log line.
pub fn current() -> Option<HeaderValue> {
    REQUEST_ID.try_with(HeaderValue::clone).ok()
}

/// The caller's id when it is 1–128 visible ASCII characters, else a new one.
pub fn from_headers(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(HEADER)
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(new)
}

/// `<per-process random prefix>.<counter>`: unique across processes and restarts
/// without a system call per request. Request ids correlate log lines; they are not
/// secrets, so being sequential is fine.
pub fn new() -> HeaderValue {
    static PREFIX: LazyLock<String> = LazyLock::new(|| {
        redauth_core::ids::random_id().map_or_else(|_| "local".into(), |id| id[..11].to_owned())
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{}.{n:x}", *PREFIX))
        .unwrap_or_else(|_| HeaderValue::from_static("unavailable"))
}
