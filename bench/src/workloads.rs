//! The workloads of issue 5 and their baselines. Each function measures one pair and
//! returns raw outcomes; `main` turns them into rows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redauth_testkit::{CountingProxy, RedisServer};

use crate::client::{self, Connection};
use crate::load::{self, Fixed, Outcome, Requests, Window};
use crate::procs::{self, Running};
use crate::{BenchError, Result};

/// Client addresses for requests, one per request, in a documentation range that is
/// never contacted: it only fills the `X-Real-IP` header. The server trusts that
/// header only when `REDAUTH_CLIENT_IP_HEADER` names it, which the harness sets, so
/// per-IP limits see many clients as in production instead of one loopback address.
fn client_ip(n: u64) -> String {
    format!("198.18.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

static SETUP_LOGINS: AtomicU64 = AtomicU64::new(0);

/// `(access token, refresh token)` of one session.
pub type Tokens = (String, String);

/// Logs in with `refresh_token_delivery = body` and returns the session's tokens.
pub async fn login(addr: SocketAddr, username: &str, password: &str) -> Result<Tokens> {
    let mut conn = Connection::open(addr).await?;
    let body = serde_json::json!({
        "username": username,
        "password": password,
        "refresh_token_delivery": "body",
    })
    .to_string();
    // Setup logins come from their own addresses too, or 64 of them would exhaust
    // one address's login budget.
    let ip = client_ip(SETUP_LOGINS.fetch_add(1, Ordering::Relaxed) + 50_000);
    let r = conn
        .send(&client::post_json(
            "/api/auth/login",
            &[("X-Real-IP", &ip)],
            &body,
        ))
        .await?;
    if r.status != 200 {
        return Err(format!(
            "login of {username} answered {}: {}",
            r.status,
            String::from_utf8_lossy(r.body)
        )
        .into());
    }
    let v: serde_json::Value = serde_json::from_slice(r.body)?;
    let field = |name: &str| -> Result<String> {
        v.get(name)
            .and_then(|f| f.as_str())
            .map(str::to_owned)
            .ok_or_else(|| BenchError::from(format!("login response has no {name}")))
    };
    Ok((field("access_token")?, field("refresh_token")?))
}

/// Logs in and returns the value of the session cookie `cookie_name` it set.
pub async fn login_cookie(
    addr: SocketAddr,
    username: &str,
    password: &str,
    cookie_name: &str,
) -> Result<String> {
    let mut conn = Connection::open(addr).await?;
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let ip = client_ip(SETUP_LOGINS.fetch_add(1, Ordering::Relaxed) + 50_000);
    let r = conn
        .send(&client::post_json(
            "/api/auth/login",
            &[("X-Real-IP", &ip)],
            &body,
        ))
        .await?;
    if r.status != 200 {
        return Err(format!("cookie login answered {}", r.status).into());
    }
    let head = String::from_utf8_lossy(r.head);
    let prefix = format!("{cookie_name}=");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            let value = v.trim().strip_prefix(&prefix)?.split(';').next()?;
            (!value.is_empty()).then(|| value.to_owned())
        })
        .ok_or_else(|| format!("login set no {cookie_name} cookie").into())
}

pub struct P2 {
    pub outcome: Outcome,
    /// Script calls per session check, from INFO commandstats.
    pub evalsha_per_check: f64,
    /// Redis commands per session check, the ones scripts run included.
    pub redis_calls_per_check: f64,
}

/// P2: `GET /api/auth/session` with a session cookie on a server whose cookie-session
/// cache is off (`REDAUTH_SESSION_CACHE_SECS=0`), so every check reads Redis.
pub async fn p2(
    server: SocketAddr,
    redis: &RedisServer,
    cookie_name: &str,
    login: (&str, &str),
    concurrency: usize,
    window: Window,
) -> Result<P2> {
    let mut cookies = Vec::new();
    for _ in 0..concurrency.min(64) {
        cookies.push(login_cookie(server, login.0, login.1, cookie_name).await?);
    }
    let sources: Vec<Fixed> = (0..concurrency)
        .filter_map(|i| cookies.get(i % cookies.len().max(1)))
        .map(|c| Fixed {
            request: client::get(
                "/api/auth/session",
                &[("Cookie", &format!("{cookie_name}={c}"))],
            ),
            status: 200,
        })
        .collect();
    let before = redis.command_calls();
    let outcome = load::closed_loop(server, sources, window).await?;
    let after = redis.command_calls();
    let delta = |name: Option<&str>| -> f64 {
        let sum = |m: &std::collections::BTreeMap<String, u64>| -> u64 {
            m.iter()
                .filter(|(k, _)| name.is_none_or(|n| k.as_str() == n))
                .map(|(_, v)| *v)
                .sum()
        };
        sum(&after).saturating_sub(sum(&before)) as f64 / outcome.sent.max(1) as f64
    };
    Ok(P2 {
        evalsha_per_check: delta(Some("evalsha")),
        redis_calls_per_check: delta(None),
        outcome,
    })
}

/// `n` sessions, logged in eight at a time.
pub async fn sessions(
    addr: SocketAddr,
    username: &str,
    password: &str,
    n: usize,
) -> Result<Vec<Tokens>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let batch = (n - out.len()).min(8);
        let mut tasks = Vec::new();
        for _ in 0..batch {
            let (u, p) = (username.to_owned(), password.to_owned());
            tasks.push(tokio::spawn(async move { login(addr, &u, &p).await }));
        }
        for t in tasks {
            out.push(t.await.map_err(|e| format!("login task: {e}"))??);
        }
    }
    Ok(out)
}

fn verify_request(access: &str, request_id: Option<&str>) -> Vec<u8> {
    let bearer = format!("Bearer {access}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if let Some(id) = request_id {
        headers.push(("X-Request-Id", id));
    }
    client::get("/api/auth/verify", &headers)
}

/// One source per connection, round-robin over the sessions.
pub fn verify_sources(
    tokens: &[Tokens],
    connections: usize,
    request_id: bool,
) -> Result<Vec<Fixed>> {
    if tokens.is_empty() {
        return Err("no sessions to verify".into());
    }
    Ok((0..connections)
        .filter_map(|i| tokens.get(i % tokens.len()))
        .enumerate()
        .map(|(i, (access, _))| Fixed {
            request: verify_request(access, request_id.then(|| format!("bench-{i}")).as_deref()),
            status: 204,
        })
        .collect())
}

async fn response_len(addr: SocketAddr, request: &[u8], status: u16) -> Result<usize> {
    let mut conn = Connection::open(addr).await?;
    let r = conn.send(request).await?;
    if r.status != status {
        return Err(format!("{addr} answered {} instead of {status}", r.status).into());
    }
    Ok(r.wire_len)
}

pub struct P1 {
    pub redauth: Outcome,
    pub baseline: Outcome,
    /// Bytes of each response on the wire (equal by construction).
    pub response_bytes: (usize, usize),
}

/// P1: `GET /api/auth/verify` on cached sessions against the bare axum baseline with
/// a response of the same size. The two alternate in `rounds` rounds, so a burst of
/// other work on this shared machine hits both rather than one.
pub async fn p1(
    redauth: &Running,
    tokens: &[Tokens],
    concurrency: usize,
    window: Window,
    rounds: u32,
    request_id: bool,
) -> Result<P1> {
    let sources = || verify_sources(tokens, concurrency, request_id);
    let first = sources()?;
    let probe = first.first().ok_or("no connections")?.request.clone();
    let redauth_bytes = response_len(redauth.addr, &probe, 204).await?;
    let baseline = sized_baseline(redauth_bytes).await?;
    let baseline_bytes = response_len(baseline.addr, &probe, 200).await?;
    let round = Window {
        warmup: window.warmup,
        measure: window.measure / rounds.max(1),
    };
    let mut totals: Option<(Outcome, Outcome)> = None;
    for _ in 0..rounds.max(1) {
        let a = load::closed_loop_watching(redauth.addr, sources()?, round, redauth.pid()).await?;
        let base_sources = sources()?
            .into_iter()
            .map(|f| Fixed { status: 200, ..f })
            .collect();
        let b =
            load::closed_loop_watching(baseline.addr, base_sources, round, baseline.pid()).await?;
        match &mut totals {
            None => totals = Some((a, b)),
            Some((ta, tb)) => {
                ta.merge(&a)?;
                tb.merge(&b)?;
            }
        }
    }
    let (redauth, baseline) = totals.ok_or("no rounds ran")?;
    Ok(P1 {
        redauth,
        baseline,
        response_bytes: (redauth_bytes, baseline_bytes),
    })
}

/// Starts the baseline with a body sized so its whole response is `target` bytes.
/// Its head is not known in advance (a `Date` header, the length's digits), so it is
/// measured and the body corrected until the two match.
async fn sized_baseline(target: usize) -> Result<Running> {
    let mut body = target.saturating_sub(120).max(16);
    for _ in 0..4 {
        let server = procs::start_baseline(body).await?;
        let got = response_len(server.addr, &client::get("/api/auth/verify", &[]), 200).await?;
        if got == target {
            return Ok(server);
        }
        body = (body + target).checked_sub(got).ok_or_else(|| {
            BenchError::from(format!(
                "redauth's response ({target} bytes) is shorter than the baseline's head"
            ))
        })?;
    }
    Err(format!("could not size the baseline response to {target} bytes").into())
}

/// Does the server have `GET path` at all? Its fallback answers 404 for unknown paths.
pub async fn has_route(addr: SocketAddr, path: &str) -> Result<bool> {
    let mut conn = Connection::open(addr).await?;
    Ok(conn.send(&client::get(path, &[])).await?.status != 404)
}

/// P3's request source: presents its session's current refresh token and keeps the
/// successor from the answer, so every request rotates a distinct, live token.
pub struct RefreshChain {
    token: String,
    request: Vec<u8>,
    counter: Arc<AtomicU64>,
}

impl RefreshChain {
    pub fn new(token: String, counter: Arc<AtomicU64>) -> Self {
        Self {
            token,
            request: Vec::new(),
            counter,
        }
    }
}

/// The string value of `"name":"…"` in a JSON object, without parsing the rest.
fn json_str<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(body).ok()?;
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let len = text.get(start..)?.find('"')?;
    text.get(start..start + len)
}

impl Requests for RefreshChain {
    fn request(&mut self) -> &[u8] {
        let ip = client_ip(self.counter.fetch_add(1, Ordering::Relaxed));
        let body = format!(r#"{{"refresh_token":"{}"}}"#, self.token);
        self.request = client::post_json("/api/auth/refresh", &[("X-Real-IP", &ip)], &body);
        &self.request
    }

    fn accept(&mut self, status: u16, body: &[u8]) -> bool {
        match json_str(body, "refresh_token") {
            Some(next) if status == 200 => {
                self.token = next.to_owned();
                true
            }
            _ => false,
        }
    }
}

pub struct P3 {
    pub outcome: Outcome,
    /// `evalsha` calls seen by redis-server during the run, per refresh sent.
    pub evalsha_per_refresh: f64,
    /// Round trips on the wire per refresh, counted by a proxy over sequential refreshes.
    pub round_trips_per_refresh: f64,
    pub counted_refreshes: u64,
}

pub async fn p3(
    redauth: SocketAddr,
    redis: &RedisServer,
    env: &[(String, String)],
    tokens: &[Tokens],
    login: (&str, &str),
    window: Window,
    counted: u64,
) -> Result<P3> {
    let counter = Arc::new(AtomicU64::new(0));
    let sources: Vec<RefreshChain> = tokens
        .iter()
        .map(|(_, refresh)| RefreshChain::new(refresh.clone(), counter.clone()))
        .collect();
    let evalsha = || redis.command_calls().get("evalsha").copied().unwrap_or(0);
    let before = evalsha();
    let outcome = load::closed_loop(redauth, sources, window).await?;
    let evalsha_per_refresh = (evalsha() - before) as f64 / outcome.sent.max(1) as f64;
    let round_trips_per_refresh = count_round_trips(redis, env, login, counted).await?;
    Ok(P3 {
        outcome,
        evalsha_per_refresh,
        round_trips_per_refresh,
        counted_refreshes: counted,
    })
}

/// A second server that reaches Redis through a counting proxy; `n` refreshes one
/// after another (concurrent commands on one connection could share a round trip and
/// hide an extra one), and the proxy's count across them.
async fn count_round_trips(
    redis: &RedisServer,
    env: &[(String, String)],
    (user, password): (&str, &str),
    n: u64,
) -> Result<f64> {
    let proxy = CountingProxy::start(redis.port()).await;
    let env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "REDIS_URL")
        .cloned()
        .chain([("REDIS_URL".to_owned(), proxy.url())])
        .collect();
    let server = procs::start_redauth(&env, &[]).await?;
    let (_, refresh) = login(server.addr, user, password).await?;
    let mut chain = RefreshChain::new(refresh, Arc::new(AtomicU64::new(0)));
    let mut conn = Connection::open(server.addr).await?;
    let before = proxy.round_trips();
    for _ in 0..n {
        let r = conn.send(chain.request()).await?;
        let (status, body) = (r.status, r.body.to_vec());
        if !chain.accept(status, &body) {
            return Err(format!(
                "counted refresh answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
    }
    Ok((proxy.round_trips() - before) as f64 / n.max(1) as f64)
}

/// P4's request source: a correct login, each from another client address.
pub struct LoginStorm {
    body: String,
    request: Vec<u8>,
    counter: Arc<AtomicU64>,
}

impl Requests for LoginStorm {
    fn request(&mut self) -> &[u8] {
        // Far from P3's addresses, so the two workloads' per-IP budgets never meet.
        let ip = client_ip(self.counter.fetch_add(1, Ordering::Relaxed) + 40_000);
        self.request = client::post_json("/api/auth/login", &[("X-Real-IP", &ip)], &self.body);
        &self.request
    }

    fn accept(&mut self, status: u16, _: &[u8]) -> bool {
        status == 200
    }
}

/// P4's fairness storm (issue 11, item 5): every request from one client address, as
/// one abusive client with many connections. Throttled (429) and shed (503) answers are
/// what it should get; only other statuses are wrong.
struct OneClientStorm {
    request: Vec<u8>,
}

impl Requests for OneClientStorm {
    fn request(&mut self) -> &[u8] {
        &self.request
    }

    fn accept(&mut self, status: u16, _: &[u8]) -> bool {
        matches!(status, 200 | 429 | 503)
    }
}

/// Another client's correct login, each from its own address, so the probe's own
/// per-client budget never limits it.
struct LoginProbe {
    body: String,
    request: Vec<u8>,
    counter: Arc<AtomicU64>,
}

impl Requests for LoginProbe {
    fn request(&mut self) -> &[u8] {
        let ip = client_ip(self.counter.fetch_add(1, Ordering::Relaxed) + 50_000);
        self.request = client::post_json("/api/auth/login", &[("X-Real-IP", &ip)], &self.body);
        &self.request
    }

    fn accept(&mut self, status: u16, _: &[u8]) -> bool {
        status == 200
    }
}

/// Connections of P4's one-client storm (the size of the storm that was reproduced).
pub const ONE_CLIENT_STORM_CONNECTIONS: usize = 300;
/// Logins per second of P4's fairness probe: a trickle, far below capacity.
pub const LOGIN_PROBE_RATE: f64 = 4.0;

pub struct P4 {
    pub storm: Outcome,
    /// The same storm while the P1 probe runs (its refusals are checked too).
    pub storm_with_probe: Outcome,
    pub raw_hashes_per_sec: f64,
    pub probe_rate: f64,
    pub probe_idle: Outcome,
    pub probe_storm: Outcome,
    /// Another client's login at [`LOGIN_PROBE_RATE`], alone and during a storm of
    /// [`ONE_CLIENT_STORM_CONNECTIONS`] login connections from one client.
    pub login_probe_idle: Outcome,
    pub login_probe_storm: Outcome,
    pub one_client_storm: Outcome,
}

pub struct P4Input<'a> {
    pub redauth: SocketAddr,
    pub user: &'a str,
    pub password: &'a str,
    pub concurrency: usize,
    pub hash_threads: usize,
    pub tokens: &'a [Tokens],
    pub probe_rate: f64,
    pub window: Window,
}

/// P4: a login storm against raw Argon2id throughput with the same parameters and
/// the same number of hashes at once; and P1 latency at a fixed, moderate rate, idle
/// and during the storm. The probe uses a fixed rate, not a closed loop: a closed loop
/// saturates the CPU by itself, and any extra work would then show as latency.
pub async fn p4(input: P4Input<'_>) -> Result<P4> {
    let raw_hashes_per_sec = raw_argon2(input.hash_threads, input.window)?;
    let body = serde_json::json!({
        "username": input.user,
        "password": input.password,
        "refresh_token_delivery": "body",
    })
    .to_string();
    let counter = Arc::new(AtomicU64::new(0));
    let storm_sources = || -> Vec<LoginStorm> {
        (0..input.concurrency)
            .map(|_| LoginStorm {
                body: body.clone(),
                request: Vec::new(),
                counter: counter.clone(),
            })
            .collect()
    };
    // The storm alone, for its ratio to the raw hashes (also measured alone).
    let storm = load::closed_loop(input.redauth, storm_sources(), input.window).await?;
    let probe_sources = || verify_sources(input.tokens, 8, false);
    let probe_idle = load::fixed_rate(
        input.redauth,
        probe_sources()?,
        input.probe_rate,
        input.window,
    )
    .await?;
    let (storm_with_probe, probe_storm) = tokio::join!(
        load::closed_loop(input.redauth, storm_sources(), input.window),
        load::fixed_rate(
            input.redauth,
            probe_sources()?,
            input.probe_rate,
            input.window
        ),
    );
    // Fairness: one client with many connections must not slow anyone else's login.
    let probe_counter = Arc::new(AtomicU64::new(0));
    let login_probe = || {
        vec![LoginProbe {
            body: body.clone(),
            request: Vec::new(),
            counter: probe_counter.clone(),
        }]
    };
    let login_probe_idle =
        load::fixed_rate(input.redauth, login_probe(), LOGIN_PROBE_RATE, input.window).await?;
    let abusive = client::post_json("/api/auth/login", &[("X-Real-IP", "198.19.0.1")], &body);
    let one_client = (0..ONE_CLIENT_STORM_CONNECTIONS)
        .map(|_| OneClientStorm {
            request: abusive.clone(),
        })
        .collect();
    let (one_client_storm, login_probe_storm) = tokio::join!(
        load::closed_loop(input.redauth, one_client, input.window),
        load::fixed_rate(input.redauth, login_probe(), LOGIN_PROBE_RATE, input.window),
    );
    Ok(P4 {
        storm,
        storm_with_probe: storm_with_probe?,
        raw_hashes_per_sec,
        probe_rate: input.probe_rate,
        probe_idle,
        probe_storm: probe_storm?,
        login_probe_idle,
        login_probe_storm: login_probe_storm?,
        one_client_storm: one_client_storm?,
    })
}

/// Argon2id evaluations per second on `threads` threads, with the server's default
/// parameters (the ones `redauth user add` hashed the storm user's password with).
fn raw_argon2(threads: usize, window: Window) -> Result<f64> {
    let p = redauth_core::password::Argon2Params::default();
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| format!("argon2 params: {e}"))?;
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let stop = measure_from + window.measure;
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let params = params.clone();
            std::thread::spawn(move || -> u64 {
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = [0u8; 32];
                let mut done = 0;
                loop {
                    let t0 = Instant::now();
                    if t0 >= stop {
                        return done;
                    }
                    let ok = argon
                        .hash_password_into(b"bench password 0123", b"sixteen byte salt", &mut out)
                        .is_ok();
                    // Counted like the load generator counts responses: by completion.
                    let t1 = Instant::now();
                    if ok && t1 >= measure_from && t1 <= stop {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| "argon2 thread panicked")?;
    }
    Ok(total as f64 / window.measure.as_secs_f64().max(1e-9))
}

/// P1's throughput if P1 ran, for sizing P4's probe.
pub fn probe_rate(p1: Option<&P1>) -> f64 {
    // A quarter of the measured capacity: clearly below saturation, far above idle.
    p1.map_or(1000.0, |p| (p.redauth.per_sec() / 4.0).max(50.0))
}

/// Sleeps to let the previous workload's stragglers finish before the next starts.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}
