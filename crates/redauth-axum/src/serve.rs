//! The accept loop: what `axum::serve` does, plus the limits it lacks. `redauth serve`
//! runs on it; an embedder may too (`redauth_axum::serve::serve`), or keep its own.
//!
//! `axum::serve` read request heads with no deadline, kept idle connections forever and
//! accepted without bound, so a few hundred clients that each sent half a request made
//! legitimate requests time out; and its graceful shutdown waited for them forever
//! (issue 11, item 7). Here each connection is a task with a watchdog, and:
//!
//! - a request head must arrive whole within [`ConnectionLimits::header_read_timeout`],
//!   counted from the connection's opening, or from the first byte of a request on a
//!   kept-alive connection; trickling bytes does not extend it;
//! - a kept-alive connection that starts no request for
//!   [`ConnectionLimits::idle_timeout`] is closed;
//! - a request not answered within [`ConnectionLimits::request_timeout`] gets 503
//!   `timeout`;
//! - beyond [`ConnectionLimits::max_connections`] a new connection is accepted and closed
//!   at once (see [`serve`] for why it is not left waiting in the backlog);
//! - on shutdown, accepting stops, connections finish their current request and close,
//!   and whatever is still open after [`ConnectionLimits::shutdown_timeout`] is dropped.
//!
//! hyper's own `header_read_timeout` is not used: hyper starts that timer whenever a
//! connection waits for a request head, idle keep-alive time included, so it cannot
//! tell a slow head from an idle connection and one setting would have to serve both.
//!
//! Only HTTP/1 is served, as before: that is all our axum features ever spoke.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, Response, Uri};
use axum::response::IntoResponse as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::error::{ApiError, ErrorCode};

/// Limits on connections. The defaults here are the configuration's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a request head may take to arrive whole, counted from the connection's
    /// opening or the first byte of a request (`REDAUTH_HEADER_READ_TIMEOUT_SECS`).
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may go without starting a request before it is
    /// closed (`REDAUTH_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Longest a request may take to be answered. A login queues for a hashing slot
    /// first, so this stays well above a hash's duration times the queue it may wait in.
    pub request_timeout: Duration,
    /// Open connections at most; past it a new one is accepted and closed at once
    /// (`REDAUTH_MAX_CONNECTIONS`). Each is a file descriptor.
    pub max_connections: usize,
    /// How long shutdown waits for open connections to finish their request before it
    /// drops them (`REDAUTH_SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            // Each connection is a file descriptor: keep `ulimit -n` above this (the
            // start-up log warns when it is not).
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// File descriptors the process needs besides client connections: the listener, Redis
/// connections, the embedded store's files, stdio.
const FD_HEADROOM: u64 = 64;

/// How long the loop waits after an accept error that is not about one connection
/// (`EMFILE`: out of file descriptors), as hyper 0.14 and axum do.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// At most one "connection limit reached" line per this interval, with a count.
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` completes, then drains connections
/// for at most [`ConnectionLimits::shutdown_timeout`] and drops the rest. Requests carry
/// [`ConnectInfo<SocketAddr>`] with the TCP peer, as `into_make_service_with_connect_info`
/// gave them.
///
/// Over [`ConnectionLimits::max_connections`] a connection is accepted and closed
/// immediately rather than left in the kernel's accept backlog. A client refused this
/// way learns it at once and can retry (a load balancer tries another node); one left
/// in the backlog has already sent its request and waits, unanswered, behind every
/// connection queued before it (most of them, in an attack, the attacker's), often past
/// its own timeout, after which serving it is wasted work. The timeouts above bound how
/// long any connection holds a slot, so slots free up within seconds.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refused = RefusedLog::default();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = connections.join_next() => log_if_panicked(ended),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_about_one_connection(&e) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "accept failed; retrying in a second");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                        }
                    }
                };
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        connections.spawn(serve_connection(
                            stream,
                            peer,
                            router.clone(),
                            limits,
                            drain_rx.clone(),
                            slot,
                        ));
                    }
                    Err(_) => {
                        drop(stream);
                        refused.count(limits.max_connections);
                    }
                }
            }
        }
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(
        connections = open,
        "shutting down: finishing requests in progress"
    );
    // Fails only if no connection is listening, which needs no telling.
    let _ = drain_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while let Some(ended) = connections.join_next().await {
            log_if_panicked(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "shutdown deadline passed: closing the remaining connections"
        );
        connections.shutdown().await;
    }
}

/// Warns when the soft `RLIMIT_NOFILE` cannot hold `max_connections` connections: past
/// it, accepts fail with `EMFILE` before the connection limit is reached, and so do the
/// store's own files and connections.
pub fn warn_if_file_limit_is_too_low(max_connections: usize) {
    let Some(soft) = open_files_soft_limit() else {
        return;
    };
    let needed = (max_connections as u64).saturating_add(FD_HEADROOM);
    if soft < needed {
        tracing::warn!(
            open_files_limit = soft,
            max_connections,
            "the open-files limit (ulimit -n) is below REDAUTH_MAX_CONNECTIONS plus {FD_HEADROOM}: raise it, or lower the connection limit"
        );
    }
}

/// The soft limit from `/proc/self/limits` (Linux; `None` elsewhere or if unlimited).
fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[derive(Default)]
struct RefusedLog {
    since_last_line: u64,
    last_line: Option<Instant>,
}

impl RefusedLog {
    /// Logs the first refusal and then at most one line per [`REFUSED_LOG_INTERVAL`]: a
    /// flood must not turn into a flood of log lines.
    fn count(&mut self, max_connections: usize) {
        self.since_last_line += 1;
        let now = Instant::now();
        if self
            .last_line
            .is_none_or(|at| now.duration_since(at) >= REFUSED_LOG_INTERVAL)
        {
            tracing::warn!(
                max_connections,
                refused = self.since_last_line,
                "connection limit reached: new connections are closed until others end"
            );
            self.since_last_line = 0;
            self.last_line = Some(now);
        }
    }
}

/// Errors that end one connection attempt (the client gave up before the accept), not
/// the listener.
fn is_about_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn log_if_panicked(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!(error = %e, "a connection task panicked");
    }
}

/// One connection: hyper serves it while the watchdog enforces the header-read and idle
/// timeouts and the drain signal. Returning drops the connection, which closes the
/// socket, and the slot.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut drain: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            handle(
                req,
                peer,
                router.clone(),
                limits.request_timeout,
                activity.clone(),
            )
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog below does this job (see the module docs). Left at its default
    // hyper would only log that it has no timer, on every connection.
    builder.header_read_timeout(None);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut draining = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            () = sleep_until_or_forever(deadline) => {
                if activity.has_expired(&limits, Instant::now()) {
                    tracing::debug!(%peer, "closing a connection that sent no complete request in time");
                    return;
                }
            }
            () = activity.changed.notified() => {}
            _ = drain.changed(), if !draining => {
                draining = true;
                // Idle connections close now; busy ones after their response.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs one request through the router with the peer address and the request timeout.
/// The response body carries a [`Busy`] guard: the connection counts as busy until
/// hyper has taken the whole body.
async fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    router: Router,
    timeout: Duration,
    activity: Arc<Activity>,
) -> Result<Response<TrackedBody>, Infallible> {
    let busy = Busy::start(activity);
    req.extensions_mut().insert(ConnectInfo(peer));
    let method = req.method().clone();
    let uri = req.uri().clone();
    let res = match tokio::time::timeout(timeout, router.oneshot(req.map(Body::new))).await {
        Ok(Ok(res)) => res,
        Ok(Err(never)) => match never {},
        Err(_elapsed) => timed_out(&method, &uri),
    };
    Ok(res.map(|inner| TrackedBody { inner, _busy: busy }))
}

/// The answer to a request that outlived the request timeout. It comes from outside
/// the router, so it has no request id and no access-log line of its own: this line is
/// its log. Like `unavailable`, a 503 tells the client to retry; whatever the request
/// had done before it was cut off stays done (a refresh retried with the same token
/// gets the same successor back).
fn timed_out(method: &Method, uri: &Uri) -> Response<Body> {
    tracing::warn!(
        method = method.as_str(),
        path = uri.path(),
        "request timed out"
    );
    ApiError::new(ErrorCode::Timeout, "the request took too long; retry it").into_response()
}

/// What a connection is doing, as far as the timeouts care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request head is due: since the connection opened, or since the first byte after
    /// an idle period.
    ReadingHead,
    /// Kept alive after a response, nothing received since.
    Idle,
    /// A request is being handled or its response body is being taken by hyper; the
    /// request timeout bounds this.
    Busy,
}

/// A connection's phase and when it began, shared by its IO (bytes read), its service
/// (request start and end) and its watchdog.
///
/// Bytes of a next request that arrive while the previous one is still busy (HTTP/1.1
/// pipelining) do not start the header clock: that connection is then bounded by the
/// idle timeout instead, which is longer but still a bound.
struct Activity {
    state: Mutex<(Phase, Instant)>,
    /// Wakes the watchdog when a new deadline starts that it has not seen.
    changed: Notify,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new((Phase::ReadingHead, now)),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Phase, Instant)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_read(&self, now: Instant) {
        let mut state = self.lock();
        if state.0 == Phase::Idle {
            *state = (Phase::ReadingHead, now);
            drop(state);
            self.changed.notify_one();
        }
    }

    fn request_started(&self, now: Instant) {
        *self.lock() = (Phase::Busy, now);
    }

    fn response_taken(&self, now: Instant) {
        *self.lock() = (Phase::Idle, now);
        self.changed.notify_one();
    }

    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let (phase, since) = *self.lock();
        match phase {
            Phase::ReadingHead => Some(since + limits.header_read_timeout),
            Phase::Idle => Some(since + limits.idle_timeout),
            Phase::Busy => None,
        }
    }

    fn has_expired(&self, limits: &ConnectionLimits, now: Instant) -> bool {
        self.deadline(limits).is_some_and(|at| now >= at)
    }
}

/// Marks the connection busy from the request's start until dropped with the response
/// body.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.request_started(Instant::now());
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.response_taken(Instant::now());
    }
}

/// The router's response body, with the guard that ends the busy phase when hyper is
/// done with it.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn a_new_connection_owes_a_head_within_the_header_timeout() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        a.bytes_read(t0 + Duration::from_secs(3));
        assert_eq!(a.deadline(&limits()), Some(t0 + Duration::from_secs(10)));
        assert!(!a.has_expired(&limits(), t0 + Duration::from_secs(9)));
        assert!(a.has_expired(&limits(), t0 + Duration::from_secs(10)));
    }

    #[test]
    fn trickled_bytes_do_not_extend_the_header_timeout() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        a.response_taken(t0);
        a.bytes_read(t0 + Duration::from_secs(5));
        for s in 6..20 {
            a.bytes_read(t0 + Duration::from_secs(s));
        }
        assert_eq!(a.deadline(&limits()), Some(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn busy_has_no_deadline_and_idle_starts_when_the_response_is_taken() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        a.request_started(t0 + Duration::from_secs(1));
        a.bytes_read(t0 + Duration::from_secs(2));
        assert_eq!(a.deadline(&limits()), None, "a body being read is busy");
        a.response_taken(t0 + Duration::from_secs(40));
        assert_eq!(a.deadline(&limits()), Some(t0 + Duration::from_secs(100)));
        a.bytes_read(t0 + Duration::from_secs(99));
        assert_eq!(
            a.deadline(&limits()),
            Some(t0 + Duration::from_secs(109)),
            "the first byte of the next request starts its header clock"
        );
    }

    #[test]
    fn the_soft_open_files_limit_is_read_on_linux() {
        let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
            return;
        };
        let line = limits.lines().find(|l| l.starts_with("Max open files"));
        match line.and_then(|l| l.split_whitespace().nth(3)) {
            Some("unlimited") | None => assert_eq!(open_files_soft_limit(), None),
            Some(n) => assert_eq!(open_files_soft_limit(), n.parse().ok()),
        }
    }
}
