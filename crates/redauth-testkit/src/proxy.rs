//! A TCP proxy that counts round trips between redauth and Redis.
//!
//! `INFO commandstats` cannot do this: Redis also counts the commands a Lua script
//! runs. The proxy counts what a round trip is on the wire: a client send that follows
//! a server reply (or opens the connection). Several commands written before the
//! reply (a pipeline) count once. Connections that have subscribed (the revocation
//! feed) are not counted: their heartbeat pings are no request's round trip.
//!
//! It can also break subscriptions the way networks do:
//! [`CountingProxy::blackhole_subscribers`] stops forwarding what Redis sends to
//! subscribed clients while keeping their sockets open (a half-open connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct CountingProxy {
    port: u16,
    round_trips: Arc<AtomicU64>,
    blackhole_subscribers: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let round_trips = Arc::new(AtomicU64::new(0));
        let blackhole_subscribers = Arc::new(AtomicBool::new(false));
        let counter = round_trips.clone();
        let blackhole = blackhole_subscribers.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, counter.clone(), blackhole.clone()));
            }
        });
        Self {
            port,
            round_trips,
            blackhole_subscribers,
            task,
        }
    }

    /// While on, bytes from Redis to any connection whose client has sent `SUBSCRIBE`
    /// are dropped (not delayed: they are gone, as on a dead network path), and the
    /// sockets stay open, so the client sees silence rather than a close. Other
    /// connections are unaffected. Turning it off lets later bytes through again.
    pub fn blackhole_subscribers(&self, on: bool) {
        self.blackhole_subscribers.store(on, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    counter: Arc<AtomicU64>,
    blackhole: Arc<AtomicBool>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let waiting_for_reply = Arc::new(AtomicBool::new(false));
    let waiting = waiting_for_reply.clone();
    let subscriber = Arc::new(AtomicBool::new(false));
    let subscribed = subscriber.clone();
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if sends_subscribe(&buf[..n]) {
                subscribed.store(true, Ordering::SeqCst);
            }
            if !subscribed.load(Ordering::SeqCst) && !waiting.swap(true, Ordering::SeqCst) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            if server_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            waiting_for_reply.store(false, Ordering::SeqCst);
            if subscriber.load(Ordering::SeqCst) && blackhole.load(Ordering::SeqCst) {
                continue;
            }
            if client_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(upstream, downstream);
}

/// Whether a client chunk carries a (P/S)SUBSCRIBE command: a RESP argument that is
/// exactly that word. Commands are small and written whole, so one read holds it; a
/// value that is exactly the word would be a false positive, which only stops counting
/// that connection.
fn sends_subscribe(chunk: &[u8]) -> bool {
    [
        &b"\nSUBSCRIBE\r\n"[..],
        b"\nPSUBSCRIBE\r\n",
        b"\nSSUBSCRIBE\r\n",
    ]
    .iter()
    .any(|word| {
        chunk
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    })
}
