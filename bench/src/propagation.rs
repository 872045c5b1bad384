//! P6: how long a revocation on one node takes to be refused by the others.
//!
//! Three `redauth serve` processes on one redis-server, same secret: A reaches Redis
//! directly, B and C each through their own [`CountingProxy`]. The proxies serve two
//! purposes. Every sample first proves that B and C serve the session from their
//! caches (a second verify crosses no round trip), so a 401 afterwards can only come
//! from the revocation reaching them, not from a cache miss that reads Redis. And B's
//! proxy can black-hole B's subscription: what Redis sends to it is dropped while the
//! socket stays open (a half-open feed). Both B and C pay the proxy's hop (in this
//! process, on loopback) on the way from Redis, so their healthy figures compare.
//!
//! A sample: warm B and C, start the clock *just before* `POST /api/auth/logout` with
//! the Bearer is sent to A (so a sample includes A's own handling of the logout; its
//! round trip is reported beside), then poll `GET /api/auth/verify` on B and C until
//! each answers 401, and stop that node's clock when the 401 arrives. Polls go back to
//! back (each waits for its answer) for the first [`BACK_TO_BACK`], then one every
//! [`POLL_INTERVAL`]: a sample is at most one poll late.
//!
//! - Healthy: the revocation reaches B and C by pub/sub.
//! - Black-holed: B never hears of it, and refuses the token only once its heartbeat
//!   (a PING through the subscription every 1 s, 2 s deadline) declares the feed lost
//!   and it stops trusting its cache: 2 to 3 s, depending on where in the heartbeat
//!   cycle the revocation lands, which is the point (the samples are spread over the
//!   cycle on purpose, see [`blackholed`]). Then the black hole is lifted and
//!   B's `/readyz` polled until it reports `"revocation_feed":"subscribed"` before the
//!   next sample, instead of sleeping for a resubscription that may or may not be done.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use redauth_testkit::{CountingProxy, RedisServer};

use crate::client::{self, Connection};
use crate::load;
use crate::procs::{self, Running};
use crate::workloads::{self, Tokens};
use crate::{BenchError, Result};

/// Polls go back to back for this long after the revocation is sent: the healthy
/// figures are well under it, and each poll is a round trip, not a spin.
const BACK_TO_BACK: Duration = Duration::from_millis(50);
/// Then one poll every this long (the black-holed samples last seconds).
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// A node that still accepts a revoked token this long after the revocation is wrong,
/// not slow: the run fails (see `check_refusals`).
const GIVE_UP: Duration = Duration::from_secs(10);
/// How long a node may take to (re)subscribe its feed before the run fails.
const SUBSCRIBE_DEADLINE: Duration = Duration::from_secs(30);

/// The server's default heartbeat (`redauth_redis::feed::Heartbeat`): a PING through
/// the subscription every interval, lost if unanswered within the deadline.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(2);
/// The documented bound on a black-holed feed: interval + deadline.
pub const LOST_FEED_BOUND: Duration = HEARTBEAT_INTERVAL.saturating_add(HEARTBEAT_DEADLINE);

pub struct P6 {
    /// B's and C's times, healthy feeds, nanoseconds: two samples per revocation.
    pub healthy: Histogram<u64>,
    pub healthy_revocations: u64,
    /// B's times with its feed black-holed.
    pub blackholed: Histogram<u64>,
    /// C's times during the same revocations: its feed is untouched.
    pub direct_meanwhile: Histogram<u64>,
    pub blackholed_revocations: u64,
    /// A's `POST /api/auth/logout` round trips, included in every sample.
    pub revoke: Histogram<u64>,
    /// Times a node still accepted a revoked token after [`GIVE_UP`]. Sampling stops
    /// at the first; `check_refusals` fails the run on it.
    pub never_refused: u64,
}

pub struct P6Input<'a> {
    pub redis: &'a RedisServer,
    pub env: &'a [(String, String)],
    /// A user whose stored hash has cheap parameters: logins are setup here.
    pub login: (&'a str, &'a str),
    pub healthy: u64,
    pub blackholed: u64,
}

/// One node as P6 drives it: a keep-alive connection for polls and, for B and C, the
/// proxy its Redis traffic crosses.
struct Node {
    name: &'static str,
    server: Running,
    conn: Connection,
    proxy: Option<CountingProxy>,
}

impl Node {
    async fn start(
        name: &'static str,
        redis: &RedisServer,
        env: &[(String, String)],
        proxied: bool,
    ) -> Result<Self> {
        let proxy = if proxied {
            Some(CountingProxy::start(redis.port()).await)
        } else {
            None
        };
        let url = proxy
            .as_ref()
            .map_or_else(|| redis.url(), CountingProxy::url);
        let env: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| k != "REDIS_URL")
            .cloned()
            .chain([("REDIS_URL".to_owned(), url)])
            .collect();
        let server = procs::start_redauth(&env, &[]).await?;
        let conn = Connection::open(server.addr).await?;
        Ok(Self {
            name,
            server,
            conn,
            proxy,
        })
    }

    /// Verifies `access` until the node serves it from its cache: a verify that
    /// crosses no round trip to Redis. The first verify loads and caches; a load
    /// overtaken by some invalidation is not cached, hence a few tries.
    async fn warm(&mut self, access: &str) -> Result<()> {
        let request = verify(access);
        let proxy = self.proxy.as_ref().ok_or("only proxied nodes are warmed")?;
        for _ in 0..3 {
            expect(self.name, self.conn.send(&request).await?.status, 204)?;
            let before = proxy.round_trips();
            expect(self.name, self.conn.send(&request).await?.status, 204)?;
            if proxy.round_trips() == before {
                return Ok(());
            }
        }
        Err(format!("{} never served a session from its cache", self.name).into())
    }

    /// Silences (or restores) what Redis sends to this node's subscription.
    fn blackhole(&self, on: bool) -> Result<()> {
        let proxy = self
            .proxy
            .as_ref()
            .ok_or("only proxied nodes can be black-holed")?;
        proxy.blackhole_subscribers(on);
        Ok(())
    }

    /// Polls until `access` is refused; the time from `start` to the 401, or `None`
    /// if it is still accepted after [`GIVE_UP`].
    async fn until_refused(&mut self, access: &str, start: Instant) -> Result<Option<Duration>> {
        let request = verify(access);
        loop {
            let status = self.conn.send(&request).await?.status;
            let elapsed = start.elapsed();
            match status {
                401 => return Ok(Some(elapsed)),
                204 if elapsed > GIVE_UP => return Ok(None),
                204 if elapsed > BACK_TO_BACK => tokio::time::sleep(POLL_INTERVAL).await,
                204 => {}
                other => return Err(format!("{} verify answered {other}", self.name).into()),
            }
        }
    }

    /// The `revocation_feed` field of `/readyz`.
    async fn feed(&mut self) -> Result<String> {
        let r = self.conn.send(&client::get("/readyz", &[])).await?;
        expect(self.name, r.status, 200)?;
        let v: serde_json::Value = serde_json::from_slice(r.body)?;
        v.get("revocation_feed")
            .and_then(|f| f.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "{}'s /readyz reports no revocation_feed (a server from before P6?)",
                    self.name
                )
                .into()
            })
    }

    /// Polls `/readyz` every 2 ms until the feed is subscribed (the cache trusted);
    /// returns when it first said so, which is within a poll of when the feed's
    /// heartbeat cycle started.
    async fn until_subscribed(&mut self) -> Result<Instant> {
        let start = Instant::now();
        loop {
            if self.feed().await? == "subscribed" {
                return Ok(Instant::now());
            }
            if start.elapsed() > SUBSCRIBE_DEADLINE {
                return Err(format!("{}'s feed did not subscribe within 30 s", self.name).into());
            }
            // Polling another process's readiness endpoint.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn verify(access: &str) -> Vec<u8> {
    client::get(
        "/api/auth/verify",
        &[("Authorization", &format!("Bearer {access}"))],
    )
}

fn expect(node: &str, status: u16, wanted: u16) -> Result<()> {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("{node} answered {status} instead of {wanted}").into())
    }
}

fn record(h: &mut Histogram<u64>, d: Duration) -> Result<()> {
    h.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .map_err(|e| BenchError::from(format!("histogram: {e}")))
}

/// Logs out `access` on A; returns when A's 204 arrives.
async fn revoke(a: &mut Connection, access: &str) -> Result<()> {
    let bearer = format!("Bearer {access}");
    let r = a
        .send(&client::post_json(
            "/api/auth/logout",
            &[("Authorization", &bearer)],
            "",
        ))
        .await?;
    expect("A (logout)", r.status, 204)
}

pub async fn p6(input: P6Input<'_>) -> Result<P6> {
    let mut env = input.env.to_vec();
    // P6 measures no hashing: cheap parameters make the three starts (each hashes a
    // dummy password) fast, also in a debug build. Logins verify against the stored
    // hash's own parameters.
    env.push(("REDAUTH_ARGON2_MEMORY_KIB".into(), "8".into()));
    env.push(("REDAUTH_ARGON2_ITERATIONS".into(), "1".into()));
    let (mut a, mut b, mut c) = tokio::try_join!(
        Node::start("A", input.redis, &env, false),
        Node::start("B", input.redis, &env, true),
        Node::start("C", input.redis, &env, true),
    )?;
    eprintln!(
        "bench: P6 nodes A {} (direct), B {} and C {} (proxied)",
        a.server.addr, b.server.addr, c.server.addr
    );
    for node in [&mut a, &mut b, &mut c] {
        node.until_subscribed().await?;
    }
    let total = usize::try_from(input.healthy + input.blackholed)?;
    let sessions = workloads::sessions(a.server.addr, input.login.0, input.login.1, total).await?;
    let (healthy_sessions, blackholed_sessions) = sessions
        .split_at_checked(usize::try_from(input.healthy)?)
        .ok_or("fewer sessions than asked for")?;
    let mut out = P6 {
        healthy: load::histogram()?,
        healthy_revocations: 0,
        blackholed: load::histogram()?,
        direct_meanwhile: load::histogram()?,
        blackholed_revocations: 0,
        revoke: load::histogram()?,
        never_refused: 0,
    };
    for (access, _) in healthy_sessions {
        b.warm(access).await?;
        c.warm(access).await?;
        let Some([tb, tc]) = sample(&mut out, &mut a.conn, [&mut b, &mut c], access).await? else {
            return Ok(out);
        };
        record(&mut out.healthy, tb)?;
        record(&mut out.healthy, tc)?;
        out.healthy_revocations += 1;
    }
    blackholed(&mut out, &mut a.conn, &mut b, &mut c, blackholed_sessions).await?;
    Ok(out)
}

/// Revokes `access` on A and polls both nodes at once; their times, or `None` (and
/// [`P6::never_refused`] counted) if one still accepts the token after [`GIVE_UP`].
async fn sample(
    out: &mut P6,
    a: &mut Connection,
    [b, c]: [&mut Node; 2],
    access: &str,
) -> Result<Option<[Duration; 2]>> {
    let start = Instant::now();
    revoke(a, access).await?;
    record(&mut out.revoke, start.elapsed())?;
    let (tb, tc) = tokio::try_join!(
        b.until_refused(access, start),
        c.until_refused(access, start)
    )?;
    match (tb, tc) {
        (Some(tb), Some(tc)) => Ok(Some([tb, tc])),
        (tb, tc) => {
            for (node, t) in [(b.name, tb), (c.name, tc)] {
                if t.is_none() {
                    eprintln!("bench: P6 {node} still accepts a revoked token after 10 s");
                    out.never_refused += 1;
                }
            }
            Ok(None)
        }
    }
}

/// The black-holed samples: B's feed silenced for each, lifted after, and B
/// resubscribed (per its `/readyz`) before the next.
///
/// Where in B's heartbeat cycle a revocation lands decides its time: just after a
/// ping was answered, the next ping goes out a whole interval later and times out a
/// deadline after that (the 3 s worst case); just before a ping, only the deadline
/// (2 s). A resubscription starts a new cycle, so revoking at once after it would
/// measure the worst case every time. Instead sample `i` (from the second on; the
/// first lands wherever B's cycle happens to be) waits `(i - 1) / (n - 1)` of the
/// heartbeat interval after B's resubscription: a chosen phase, spread evenly from the
/// worst case onwards. That wait places the sample; it synchronises nothing.
async fn blackholed(
    out: &mut P6,
    a: &mut Connection,
    b: &mut Node,
    c: &mut Node,
    sessions: &[Tokens],
) -> Result<()> {
    let later = u32::try_from(sessions.len().saturating_sub(1).max(1))?;
    for (i, (access, _)) in (0u32..).zip(sessions) {
        // Right after the previous sample lifted the black hole: B's resubscription.
        let subscribed = b.until_subscribed().await?;
        if i > 0 {
            let phase = HEARTBEAT_INTERVAL * (i - 1) / later;
            tokio::time::sleep_until((subscribed + phase).into()).await;
        }
        b.warm(access).await?;
        c.warm(access).await?;
        b.blackhole(true)?;
        let result = sample(out, a, [&mut *b, &mut *c], access).await;
        // B refused the token (or gave up): its feed must be lost now, and say so,
        // while the black hole is still on.
        let feed = b.feed().await;
        b.blackhole(false)?;
        let Some([tb, tc]) = result? else {
            return Ok(());
        };
        let feed = feed?;
        if feed != "lost" {
            return Err(format!(
                "B refused the revoked token with its feed black-holed, but /readyz says \
                 revocation_feed {feed:?}, not \"lost\""
            )
            .into());
        }
        record(&mut out.blackholed, tb)?;
        record(&mut out.direct_meanwhile, tc)?;
        out.blackholed_revocations += 1;
    }
    b.until_subscribed().await?;
    Ok(())
}

/// A histogram value as a duration.
pub fn at(h: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_nanos(h.value_at_quantile(q))
}
