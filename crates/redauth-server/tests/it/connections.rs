//! Connection limits and timeouts (issue 11, item 7): slow request heads are cut off
//! while other clients are served, idle keep-alive connections close, the connection
//! cap refuses at once and recovers, a slow request gets 503 `timeout`, and SIGTERM
//! ends the process with status 0 within the shutdown deadline even while a client
//! holds a half-sent request.
//!
//! Nothing here sleeps to synchronise: every wait is a socket read, a response or a
//! process exit, bounded by [`WAIT`] so a regression fails instead of hanging.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use redauth_axum::serve::{self as listener, ConnectionLimits};

use crate::support::{Server, serve_env};

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);

/// A timeout of one second, as the server sees it, observed from outside: allows for
/// the timer firing a little early relative to our clock.
const ABOUT_ONE_SECOND: Duration = Duration::from_millis(900);

struct DataDir(std::path::PathBuf);

impl DataDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "redauth-connections-it-{}",
            redauth_core::ids::random_id().unwrap()
        )))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `redauth serve` on the embedded store (no Redis needed) with `env`.
fn start(env: &[(&str, &str)]) -> (Server, std::sync::mpsc::Receiver<String>, DataDir) {
    let dir = DataDir::new();
    let path = dir.0.to_str().unwrap().to_owned();
    let mut all = vec![("REDAUTH_DATA_DIR", path.as_str())];
    all.extend_from_slice(env);
    let (server, lines) = serve_env(&all).unwrap();
    (server, lines, dir)
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// A request line and one header, and no blank line: a head that never completes.
fn send_half_a_request(s: &mut TcpStream) {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: redauth\r\n")
        .unwrap();
}

/// Waits for the server to close `s`; panics if it has not within [`WAIT`].
fn wait_until_closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the server did not close the connection within {WAIT:?}: {e}"),
        }
    }
}

/// True when `s` is open with nothing to read (a read would block).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!((&*s).read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// Reads one response (head and `Content-Length` body) off a kept-alive connection.
fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("a response within the wait");
        assert!(n > 0, "closed before a whole response");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body.to_owned());
            }
        }
    }
}

fn keep_alive_get(s: &mut TcpStream, path: &str) -> (u16, String) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: redauth\r\n\r\n").as_bytes())
        .unwrap();
    read_response(s)
}

/// One `GET` on a new connection; `None` if the server closed it without answering.
fn try_get(addr: &str, path: &str) -> Option<u16> {
    let mut s = connect(addr);
    let request = format!("GET {path} HTTP/1.1\r\nHost: redauth\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return None;
    }
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("no answer within {WAIT:?}: {e}"),
    }
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1).map(|s| s.parse().unwrap())
}

#[test]
fn slow_request_heads_are_cut_off_and_other_clients_are_served_meanwhile() {
    let (server, _lines, _dir) = start(&[
        ("REDAUTH_HEADER_READ_TIMEOUT_SECS", "1"),
        ("REDAUTH_MAX_CONNECTIONS", "50"),
    ]);
    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = (0..40).map(|_| connect(&server.addr)).collect();
    for s in &mut slow {
        send_half_a_request(s);
    }

    let asked = Instant::now();
    assert_eq!(try_get(&server.addr, "/healthz"), Some(200));
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "served promptly: {:?}",
        asked.elapsed()
    );
    let open = slow.iter().filter(|s| still_open(s)).count();
    assert!(
        open == slow.len() || opened.elapsed() >= ABOUT_ONE_SECOND,
        "the slow clients were still connected while the request was served ({open} open)"
    );

    for s in &mut slow {
        wait_until_closed_by_server(s);
    }
    assert!(
        opened.elapsed() >= ABOUT_ONE_SECOND,
        "closed by the header-read timeout, not at once: {:?}",
        opened.elapsed()
    );
    assert_eq!(try_get(&server.addr, "/healthz"), Some(200));
}

#[test]
fn beyond_the_connection_limit_new_connections_are_closed_until_one_ends() {
    let (server, lines, _dir) = start(&[
        ("REDAUTH_MAX_CONNECTIONS", "3"),
        ("REDAUTH_HEADER_READ_TIMEOUT_SECS", "60"),
    ]);
    // Connections are accepted in order, so the first three hold the three slots.
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(&server.addr)).collect();

    let refused_at = Instant::now();
    let mut fourth = connect(&server.addr);
    wait_until_closed_by_server(&mut fourth);
    assert!(
        refused_at.elapsed() < Duration::from_secs(1),
        "closed at once, not left waiting: {:?}",
        refused_at.elapsed()
    );
    assert_eq!(try_get(&server.addr, "/healthz"), None);
    let warned = std::iter::from_fn(|| lines.recv_timeout(WAIT).ok())
        .any(|l| l.contains("connection limit reached"));
    assert!(warned, "the refusal is logged");

    // The held connections are served as usual.
    assert_eq!(keep_alive_get(&mut held[0], "/healthz").0, 200);

    // One ends; the next client gets its slot as soon as the server has seen that.
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        match try_get(&server.addr, "/healthz") {
            Some(status) => {
                assert_eq!(status, 200);
                break;
            }
            None if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            None => panic!("no slot freed within {WAIT:?} after a connection ended"),
        }
    }
}

#[test]
fn a_kept_alive_connection_idle_past_the_idle_timeout_is_closed() {
    let (server, _lines, _dir) = start(&[
        ("REDAUTH_IDLE_TIMEOUT_SECS", "1"),
        ("REDAUTH_HEADER_READ_TIMEOUT_SECS", "60"),
    ]);
    let mut s = connect(&server.addr);
    assert_eq!(keep_alive_get(&mut s, "/healthz").0, 200);
    let idle_since = Instant::now();
    wait_until_closed_by_server(&mut s);
    assert!(
        idle_since.elapsed() >= ABOUT_ONE_SECOND,
        "{:?}",
        idle_since.elapsed()
    );
}

#[test]
fn the_header_timeout_does_not_cut_idle_keep_alive_short() {
    let (server, _lines, _dir) = start(&[
        ("REDAUTH_HEADER_READ_TIMEOUT_SECS", "1"),
        ("REDAUTH_IDLE_TIMEOUT_SECS", "60"),
    ]);
    let mut s = connect(&server.addr);
    assert_eq!(keep_alive_get(&mut s, "/healthz").0, 200);
    // Idle for longer than the header timeout: nothing arrives, the connection stays.
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 1];
    let waited = s.read(&mut buf);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "closed while idle: {waited:?}"
    );
    s.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(keep_alive_get(&mut s, "/healthz").0, 200);
}

/// Waits for the process to exit, polling its status; panics after `limit`.
fn wait_for_exit(server: &mut Server, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running {limit:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_with_a_half_sent_request_exits_0_within_the_shutdown_deadline() {
    let (mut server, lines, _dir) = start(&[
        ("REDAUTH_SHUTDOWN_TIMEOUT_SECS", "1"),
        ("REDAUTH_HEADER_READ_TIMEOUT_SECS", "60"),
    ]);
    let mut holder = connect(&server.addr);
    send_half_a_request(&mut holder);
    // Accepted in order: once this later request is answered, the holder's connection
    // is the server's too.
    assert_eq!(try_get(&server.addr, "/healthz"), Some(200));

    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The listener is closed before this line is logged: from then on a new client is
    // refused at once (stop accepting), while the held connection keeps its deadline.
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("shutting down")) {
        log.push(lines.recv_timeout(WAIT).expect("a shutdown line"));
    }
    let refused = TcpStream::connect(&server.addr)
        .map(|_| ())
        .map_err(|e| e.kind());
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused));
    let status = wait_for_exit(&mut server, Duration::from_secs(1) + WAIT);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() >= ABOUT_ONE_SECOND,
        "the half-sent request was given the deadline: {:?}",
        signalled.elapsed()
    );
    wait_until_closed_by_server(&mut holder);
    // Every line up to the end of stderr: the reader thread forwards what the process
    // wrote before it exited, then drops its sender. (`try_iter` here raced that thread
    // and missed the last lines on a loaded machine.)
    while let Ok(line) = lines.recv_timeout(WAIT) {
        log.push(line);
    }
    let said = |what: &str| log.iter().any(|l| l.contains(what));
    assert!(said("shutdown deadline passed"), "{log:#?}");
    assert!(
        said("\"stopped\""),
        "log lines are flushed on exit: {log:#?}"
    );
}

/// Serves `router` in-process on a free port; the sender stops it.
async fn serve_in_process(
    router: Router,
    limits: ConnectionLimits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(listener::serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(600)).await;
    "done"
}

async fn peer(ConnectInfo(addr): ConnectInfo<SocketAddr>) -> String {
    addr.to_string()
}

/// Runs blocking socket code off the runtime that serves it.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn a_request_past_the_request_timeout_gets_503_timeout_and_handlers_see_the_peer() {
    let limits = ConnectionLimits {
        request_timeout: Duration::from_millis(200),
        ..ConnectionLimits::default()
    };
    let router = Router::new()
        .route("/slow", get(slow))
        .route("/peer", get(peer));
    let (addr, _stop, _task) = serve_in_process(router, limits).await;
    let addr = addr.to_string();

    let (status, body, local) = blocking({
        let addr = addr.clone();
        move || {
            let mut s = connect(&addr);
            let local = s.local_addr().unwrap();
            let (status, body) = keep_alive_get(&mut s, "/slow");
            let (_, seen) = keep_alive_get(&mut s, "/peer");
            (status, body, (local, seen))
        }
    })
    .await;
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "timeout", "{body}");
    assert_eq!(local.0.to_string(), local.1, "ConnectInfo is the TCP peer");
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish() {
    let limits = ConnectionLimits {
        shutdown_timeout: WAIT,
        ..ConnectionLimits::default()
    };
    let entered = std::sync::Arc::new(tokio::sync::Notify::new());
    let router = Router::new().route(
        "/slow",
        get({
            let entered = entered.clone();
            move || async move {
                entered.notify_one();
                slow().await
            }
        }),
    );
    let (addr, stop, task) = serve_in_process(router, limits).await;
    let addr = addr.to_string();
    let client = tokio::spawn(blocking(move || {
        let mut s = connect(&addr);
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: redauth\r\n\r\n")
            .unwrap();
        let answer = read_response(&mut s);
        wait_until_closed_by_server(&mut s);
        answer
    }));
    tokio::time::timeout(WAIT, entered.notified())
        .await
        .unwrap();
    stop.send(()).unwrap();
    let (status, body) = tokio::time::timeout(WAIT, client).await.unwrap().unwrap();
    assert_eq!((status, body.as_str()), (200, "done"));
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}
