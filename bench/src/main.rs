//! `redauth-bench`: issue 5's harness. One command (see `docs/performance.md`)
//!
//! ```text
//! cargo run --release -p redauth-bench -- [--smoke] [--concurrency 64]
//! ```
//!
//! builds the release `redauth` server and the helper binaries, starts its own
//! `redis-server`, the server and the baselines on free loopback ports, drives each
//! workload with a keep-alive load generator and prints one table: every figure next
//! to a baseline measured in the same run, because absolute numbers on a shared 2-core
//! machine mean little. It writes the table (Markdown) and a PNG chart to `docs/perf/`
//! and refreshes the marked results section of `docs/performance.md`.
//!
//! `--smoke` runs every workload for about a second with small P5 sizes (and P6 with
//! 20 healthy and 2 black-holed revocations instead of 200 and 20), writes its
//! output under the target directory and never touches the docs: CI runs it so the
//! harness keeps working. It fails only on errors (a server that does not start, an
//! unexpected status), never on a missed target.

mod chart;
mod client;
mod load;
mod procs;
mod propagation;
mod report;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use redauth_testkit::RedisServer;

use crate::chart::{BASELINE, Bar, Group, Panel, REDAUTH};
use crate::load::Window;
use crate::propagation::P6;
use crate::report::{Row, Verdict, millis, rate};
use crate::workloads::{P1, P3, P4, P4Input};

pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, BenchError>;

#[derive(Debug, Parser)]
#[command(
    name = "redauth-bench",
    about = "redauth benchmarks: ratios against baselines measured in the same run"
)]
struct Args {
    /// About a second per workload and small P5 sizes: proves the harness works; the
    /// numbers mean nothing. Output goes under the target directory, not docs/.
    #[arg(long)]
    smoke: bool,
    /// Connections of the closed-loop workloads (and redis-benchmark's clients).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds measured per workload [default: 10, or 1 with --smoke].
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of warm-up before each measured window [default: 2, or 0.3 with --smoke].
    #[arg(long)]
    warmup: Option<f64>,
    /// Argon2 hashes at once: the server's REDAUTH_HASH_CONCURRENCY and P4's raw
    /// baseline threads [default: cores − 1, at least 1: the server's own default].
    #[arg(long)]
    hash_concurrency: Option<usize>,
    /// Run only these workloads, e.g. `--only p1,p5`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Use the binaries beside the harness as they are instead of building them.
    #[arg(long)]
    no_build: bool,
    /// Directory for results.md and chart.png [default: docs/perf, or
    /// target/<profile>/bench-smoke with --smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Extra KEY=VALUE environment for the redauth server (repeatable), for
    /// experiments such as `--server-env RUST_LOG=warn`. Such runs are not written to docs.
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Run the main server under this command, e.g. "valgrind --tool=callgrind".
    /// Such runs are not written to docs.
    #[arg(long, value_name = "COMMAND")]
    server_prefix: Option<String>,
    /// Send an `x-request-id` with every P1 request, so the server does not generate
    /// one (an experiment). Such runs are not written to docs.
    #[arg(long)]
    p1_request_id: bool,
}

impl Args {
    fn runs(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| w.eq_ignore_ascii_case(workload))
    }

    fn window(&self) -> Window {
        let (measure, warmup) = if self.smoke { (1.0, 0.3) } else { (10.0, 2.0) };
        Window {
            warmup: Duration::from_secs_f64(self.warmup.unwrap_or(warmup)),
            measure: Duration::from_secs_f64(self.duration.unwrap_or(measure)),
        }
    }

    /// An experiment changes what is measured; its numbers must not replace the docs'.
    fn is_experiment(&self) -> bool {
        !self.server_env.is_empty() || self.server_prefix.is_some() || self.p1_request_id
    }
}

/// Password of both bench users (the policy wants at least 12 characters).
const PASSWORD: &str = "bench password 0123456789";
/// Holds the sessions of P1 and P3. Its hash has the cheapest Argon2 parameters (the
/// stored hash carries its own), so opening 64 sessions takes milliseconds; its logins
/// are setup, never measured.
const SESSION_USER: &str = "bench-sessions";
/// P4's storm user, hashed with the server's real parameters.
const LOGIN_USER: &str = "bench-login";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redauth-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct Results {
    p1: Option<P1>,
    /// redis-benchmark GET, and the session checks if the server has cookie sessions.
    p2: Option<(procs::RedisBenchmark, Option<workloads::P2>)>,
    p3: Option<P3>,
    p4: Option<P4>,
    /// (1M sessions at capacity 1M; at capacity 100k after 1M and after 10M), with sizes.
    p5: Option<P5>,
    p6: Option<P6>,
}

struct P5 {
    full: procs::RssPoint,
    full_floor: procs::RssPoint,
    bounded: Vec<procs::RssPoint>,
    capacity: u64,
}

async fn run(args: &Args) -> Result<()> {
    if !args.no_build {
        procs::build_binaries()?;
    }
    let window = args.window();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // The server's own default (config.rs): one core is left for token checks.
    let hash_concurrency = args
        .hash_concurrency
        .unwrap_or_else(|| cores.saturating_sub(1).max(1));
    let load_before = loadavg();
    let redis = RedisServer::start();
    let mut env: Vec<(String, String)> = vec![
        ("REDIS_URL".into(), redis.url()),
        ("JWT_SECRET".into(), secret()?),
        (
            "REDAUTH_HASH_CONCURRENCY".into(),
            hash_concurrency.to_string(),
        ),
        // The load comes from many simulated clients (see workloads::client_ip).
        ("REDAUTH_CLIENT_IP_HEADER".into(), "x-real-ip".into()),
        // One bench user holds every workload's sessions (P1, P2, P3 and P6 log it in
        // hundreds of times); the default cap of 100 live sessions would end the
        // oldest while they are in use.
        ("REDAUTH_MAX_SESSIONS_PER_USER".into(), "10000".into()),
    ];
    for kv in &args.server_env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--server-env wants KEY=VALUE, not {kv}"))?;
        env.push((k.into(), v.into()));
    }
    setup_users(&env)?;
    let prefix: Vec<String> = args
        .server_prefix
        .as_deref()
        .map(|p| p.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let server = procs::start_redauth(&env, &prefix).await?;
    eprintln!(
        "bench: redis-server :{}, redauth {}",
        redis.port(),
        server.addr
    );
    let tokens = workloads::sessions(server.addr, SESSION_USER, PASSWORD, args.concurrency).await?;

    let mut results = Results::default();
    if args.runs("p1") {
        eprintln!("bench: P1 verify vs bare axum");
        let rounds = if args.smoke { 1 } else { 2 };
        results.p1 = Some(
            workloads::p1(
                &server,
                &tokens,
                args.concurrency,
                window,
                rounds,
                args.p1_request_id,
            )
            .await?,
        );
        workloads::settle().await;
    }
    if args.runs("p2") {
        eprintln!("bench: P2 redis-benchmark GET");
        let requests = (100_000.0 * window.measure.as_secs_f64()) as u64;
        let bench =
            procs::redis_benchmark_get(redis.port(), args.concurrency, requests.max(10_000))?;
        eprintln!("bench: P2 cookie-session check, cache off");
        results.p2 = Some((bench, p2_sessions(args, &redis, &env, window).await?));
        workloads::settle().await;
    }
    if args.runs("p3") {
        eprintln!("bench: P3 refresh rotation");
        let counted = if args.smoke { 20 } else { 200 };
        results.p3 = Some(
            workloads::p3(
                server.addr,
                &redis,
                &env,
                &tokens,
                (SESSION_USER, PASSWORD),
                window,
                counted,
            )
            .await?,
        );
        workloads::settle().await;
    }
    if args.runs("p4") {
        eprintln!("bench: P4 login storm vs raw Argon2id, P1 probe idle vs storm");
        results.p4 = Some(
            workloads::p4(P4Input {
                redauth: server.addr,
                user: LOGIN_USER,
                password: PASSWORD,
                concurrency: args.concurrency,
                hash_threads: hash_concurrency,
                tokens: &tokens,
                probe_rate: workloads::probe_rate(results.p1.as_ref()),
                window,
            })
            .await?,
        );
    }
    let server_rss = procs::rss_kib(server.pid());
    drop(server);
    if args.runs("p6") {
        eprintln!("bench: P6 revocation propagation between three nodes");
        let (healthy, blackholed) = if args.smoke { (20, 2) } else { (200, 20) };
        results.p6 = Some(
            propagation::p6(propagation::P6Input {
                redis: &redis,
                env: &env,
                login: (SESSION_USER, PASSWORD),
                healthy,
                blackholed,
            })
            .await?,
        );
    }
    if args.runs("p5") {
        eprintln!("bench: P5 cache memory");
        let (n, capacity, long) = if args.smoke {
            (10_000, 1_000, 100_000)
        } else {
            (1_000_000, 100_000, 10_000_000)
        };
        let full = procs::cache_rss(n, &[n])?;
        let bounded = procs::cache_rss(capacity, &[n, long])?;
        results.p5 = Some(P5 {
            full_floor: *full.first().ok_or("no RSS output")?,
            full: *full.last().ok_or("no RSS output")?,
            bounded,
            capacity,
        });
    }
    check_refusals(&results)?;

    let rows = rows(&results, args);
    let table = report::text(&rows);
    println!("{table}");
    let meta = metadata(
        args,
        window,
        hash_concurrency,
        cores,
        &load_before,
        server_rss,
    );
    println!("{meta}");
    let out = output_dir(args)?;
    std::fs::create_dir_all(&out)?;
    let chart_path = out.join("chart.png");
    chart::render(
        &chart_path,
        "redauth benchmarks: each pair measured in the same run",
        "pairs share a scale; groups do not",
        &panels(&results),
    )?;
    let markdown = format!("{}\n{meta}\n", report::markdown(&rows));
    std::fs::write(out.join("results.md"), &markdown)?;
    eprintln!("bench: wrote {} and results.md", chart_path.display());
    if !args.smoke && args.out.is_none() && !args.is_experiment() && args.only.is_empty() {
        let doc = workspace_root().join("docs/performance.md");
        let section = format!("{markdown}\n![throughput and p99 per workload](perf/chart.png)\n");
        if report::update_doc(&doc, &section)? {
            eprintln!("bench: updated the results section of {}", doc.display());
        } else {
            eprintln!(
                "bench: {} has no results markers; left alone",
                doc.display()
            );
        }
    }
    Ok(())
}

/// Name of the session cookie, set explicitly so the harness never guesses a default.
const SESSION_COOKIE: &str = "redauth_session";

/// P2 on a second server with native cookie sessions and their cache off. `None` when
/// the server has no cookie sessions (a build from before issue 3).
async fn p2_sessions(
    args: &Args,
    redis: &RedisServer,
    env: &[(String, String)],
    window: Window,
) -> Result<Option<workloads::P2>> {
    let mut env = env.to_vec();
    for (k, v) in [
        ("REDAUTH_SESSION_COOKIE_MODE", "native"),
        ("REDAUTH_SESSION_CACHE_SECS", "0"),
        ("REDAUTH_SESSION_COOKIE_NAME", SESSION_COOKIE),
    ] {
        env.push((k.into(), v.into()));
    }
    let server = procs::start_redauth(&env, &[]).await?;
    if !workloads::has_route(server.addr, "/api/auth/session").await? {
        return Ok(None);
    }
    let p2 = workloads::p2(
        server.addr,
        redis,
        SESSION_COOKIE,
        (SESSION_USER, PASSWORD),
        args.concurrency,
        window,
    )
    .await?;
    Ok(Some(p2))
}

/// Wrong answers are bugs, not slowness: the run fails (smoke included) rather than
/// report throughput of errors.
fn check_refusals(r: &Results) -> Result<()> {
    let mut outcomes = Vec::new();
    if let Some(p1) = &r.p1 {
        outcomes.push(("P1 redauth", &p1.redauth));
        outcomes.push(("P1 baseline", &p1.baseline));
    }
    if let Some((_, Some(p2))) = &r.p2 {
        outcomes.push(("P2", &p2.outcome));
    }
    if let Some(p3) = &r.p3 {
        outcomes.push(("P3", &p3.outcome));
    }
    if let Some(p4) = &r.p4 {
        outcomes.push(("P4 storm", &p4.storm));
        outcomes.push(("P4 storm with probe", &p4.storm_with_probe));
        outcomes.push(("P4 probe idle", &p4.probe_idle));
        outcomes.push(("P4 probe storm", &p4.probe_storm));
        outcomes.push(("P4 login probe idle", &p4.login_probe_idle));
        outcomes.push((
            "P4 login probe during one client's storm",
            &p4.login_probe_storm,
        ));
        outcomes.push(("P4 one client's storm", &p4.one_client_storm));
    }
    for (name, o) in outcomes {
        if o.refused > 0 {
            return Err(format!("{name}: {} responses had an unexpected status", o.refused).into());
        }
    }
    if let Some(p6) = &r.p6
        && p6.never_refused > 0
    {
        return Err("P6: a node still accepted a revoked token 10 s after the revocation".into());
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn output_dir(args: &Args) -> Result<PathBuf> {
    Ok(match (&args.out, args.smoke) {
        (Some(dir), _) => dir.clone(),
        (None, true) => procs::bin_dir()?.join("bench-smoke"),
        (None, false) if args.is_experiment() || !args.only.is_empty() => {
            procs::bin_dir()?.join("bench-experiment")
        }
        (None, false) => workspace_root().join("docs/perf"),
    })
}

fn secret() -> Result<String> {
    let mut s = String::new();
    for _ in 0..3 {
        s.push_str(&redauth_core::ids::random_id().map_err(|e| e.to_string())?);
    }
    Ok(s)
}

/// A role with a permission (so principals carry both) and the two bench users.
fn setup_users(env: &[(String, String)]) -> Result<()> {
    procs::redauth_cli(env, &["role", "set", "reader", "reader:use"], "")?;
    let mut cheap = env.to_vec();
    cheap.push(("REDAUTH_ARGON2_MEMORY_KIB".into(), "8".into()));
    cheap.push(("REDAUTH_ARGON2_ITERATIONS".into(), "1".into()));
    for (user, env) in [(SESSION_USER, &cheap[..]), (LOGIN_USER, env)] {
        let email = format!("{user}@example.com");
        let args = [
            "user",
            "add",
            user,
            "--email",
            &email,
            "--role",
            "reader",
            "--password-stdin",
        ];
        procs::redauth_cli(env, &args, &format!("{PASSWORD}\n"))?;
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "?".into())
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn metadata(
    args: &Args,
    window: Window,
    hash_concurrency: usize,
    cores: usize,
    load_before: &str,
    server_rss: Option<u64>,
) -> String {
    let root = workspace_root();
    let root = root.to_string_lossy();
    let commit = command_output("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    // Only changes to the code under test count, not to benchmarks or manifests.
    let status = command_output(
        "git",
        &["-C", &root, "status", "--porcelain", "--", "crates"],
    );
    let dirty = if status == "?" || !status.lines().any(|l| l.contains("/src/")) {
        ""
    } else {
        " + uncommitted changes"
    };
    let profile = if cfg!(debug_assertions) {
        "debug (smoke: numbers mean nothing)"
    } else {
        "release"
    };
    format!(
        "Run: commit {commit}{dirty}, {profile} build, {cores} cores, concurrency {}, \
         {:.1} s measured per workload after {:.1} s warm-up{}, hash concurrency {hash_concurrency}, \
         load average {load_before} before and {} after; redauth RSS at the end {}.",
        args.concurrency,
        window.measure.as_secs_f64(),
        window.warmup.as_secs_f64(),
        if args.smoke {
            ""
        } else {
            " (P1: two alternating rounds of half that)"
        },
        loadavg(),
        server_rss.map_or_else(|| "?".into(), |k| format!("{} MiB", k / 1024)),
    )
}

fn latency(o: &load::Outcome) -> Option<[Duration; 3]> {
    Some([o.quantile(0.5), o.quantile(0.99), o.quantile(0.999)])
}

/// The server's CPU time per request, robust to other load on the machine.
fn cpu_note(o: &load::Outcome) -> String {
    o.cpu_per_request().map_or_else(String::new, |d| {
        format!("; server CPU {:.1} µs/req", d.as_secs_f64() * 1e6)
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rows(r: &Results, args: &Args) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(p1) = &r.p1 {
        let ratio = p1.redauth.per_sec() / p1.baseline.per_sec().max(1e-9);
        rows.push(Row {
            id: "P1",
            workload: format!(
                "GET /api/auth/verify, cached session ({} B response)",
                p1.response_bytes.0
            ),
            per_sec: Some(p1.redauth.per_sec()),
            latency: latency(&p1.redauth),
            measured: format!("req/s{}", cpu_note(&p1.redauth)),
            baseline: format!("bare axum, JSON body, {} B response", p1.response_bytes.1),
            baseline_value: format!(
                "{} req/s, p99 {}{}",
                rate(p1.baseline.per_sec()),
                millis(p1.baseline.quantile(0.99)),
                cpu_note(&p1.baseline)
            ),
            ratio: Some(ratio),
            target: "≥ 0.85×".into(),
            verdict: Verdict::from_bool(ratio >= 0.85),
        });
    }
    if let Some(p1) = &r.p1
        && let (Some(a), Some(b)) = (p1.redauth.cpu_per_request(), p1.baseline.cpu_per_request())
    {
        let us = |d: Duration| format!("{:.1} µs/req", d.as_secs_f64() * 1e6);
        rows.push(Row {
            id: "P1",
            workload: "server CPU per verify (user + system, /proc)".into(),
            per_sec: None,
            latency: None,
            measured: us(a),
            baseline: "bare axum, same run".into(),
            baseline_value: us(b),
            ratio: Some(b.as_secs_f64() / a.as_secs_f64().max(1e-12)),
            target: "explains P1".into(),
            verdict: Verdict::Info,
        });
    }
    let p2_redis = r.p2.as_ref().map(|(b, _)| *b);
    let p2_rps =
        r.p2.as_ref()
            .and_then(|(_, p2)| p2.as_ref())
            .map(|p| p.outcome.per_sec());
    if let Some((bench, p2)) = &r.p2 {
        let baseline_value = format!(
            "{} req/s, p50 {:.3} ms, p99 {:.3} ms",
            rate(bench.per_sec),
            bench.p50_ms,
            bench.p99_ms
        );
        let baseline = format!("redis-benchmark -t get -c {}", args.concurrency);
        rows.push(match p2 {
            Some(p2) => {
                let ratio = p2.outcome.per_sec() / bench.per_sec.max(1e-9);
                Row {
                    id: "P2",
                    workload: "GET /api/auth/session, cookie-session cache off".into(),
                    per_sec: Some(p2.outcome.per_sec()),
                    latency: latency(&p2.outcome),
                    measured: format!(
                        "req/s; {:.2} EVALSHA and {:.2} Redis commands (scripts' included) per check",
                        p2.evalsha_per_check, p2.redis_calls_per_check
                    ),
                    baseline,
                    baseline_value,
                    ratio: Some(ratio),
                    target: "≥ 0.5×".into(),
                    verdict: Verdict::from_bool(ratio >= 0.5),
                }
            }
            None => Row {
                id: "P2",
                workload: "cookie-session check, cache off".into(),
                per_sec: None,
                latency: None,
                measured: "no cookie sessions in this build".into(),
                baseline,
                baseline_value,
                ratio: None,
                target: "≥ 0.5×".into(),
                verdict: Verdict::Missing,
            },
        });
    }
    if let (Some(p1), Some((bench, _))) = (&r.p1, &r.p2) {
        // What any HTTP service on this machine reaches relative to Redis: a handler
        // that does nothing, not even a Redis read, served at this ratio.
        rows.push(Row {
            id: "P2",
            workload: "ceiling: bare axum handler (no Redis read) vs redis GET".into(),
            per_sec: Some(p1.baseline.per_sec()),
            latency: latency(&p1.baseline),
            measured: "req/s (P1's baseline)".into(),
            baseline: format!("redis-benchmark -t get -c {}", args.concurrency),
            baseline_value: format!("{} req/s", rate(bench.per_sec)),
            ratio: Some(p1.baseline.per_sec() / bench.per_sec.max(1e-9)),
            target: "explains P2".into(),
            verdict: Verdict::Info,
        });
    }
    if let Some(p3) = &r.p3 {
        let vs_redis = p2_redis.map(|b| p3.outcome.per_sec() / b.per_sec.max(1e-9));
        let ratio = p2_rps.map(|b| p3.outcome.per_sec() / b.max(1e-9));
        rows.push(Row {
            id: "P3",
            workload: "POST /api/auth/refresh, distinct live token each".into(),
            per_sec: Some(p3.outcome.per_sec()),
            latency: latency(&p3.outcome),
            measured: vs_redis
                .map_or_else(|| "req/s".into(), |v| format!("req/s ({v:.2}× redis GET)")),
            baseline: "P2 (session check, cache off)".into(),
            baseline_value: p2_rps
                .map_or_else(|| "not available".into(), |b| format!("{} req/s", rate(b))),
            ratio,
            target: "≥ 0.5× P2".into(),
            verdict: ratio.map_or(Verdict::Missing, |r| Verdict::from_bool(r >= 0.5)),
        });
        let exact = (p3.round_trips_per_refresh - 1.0).abs() < 1e-9;
        rows.push(Row {
            id: "P3",
            workload: format!(
                "Redis round trips per refresh ({} sequential, counting proxy)",
                p3.counted_refreshes
            ),
            per_sec: None,
            latency: None,
            measured: format!(
                "{:.2} round trips; {:.2} EVALSHA/refresh under load",
                p3.round_trips_per_refresh, p3.evalsha_per_refresh
            ),
            baseline: "—".into(),
            baseline_value: "—".into(),
            ratio: None,
            target: "exactly 1".into(),
            verdict: Verdict::from_bool(exact),
        });
    }
    if let Some(p4) = &r.p4 {
        let ratio = p4.storm.per_sec() / p4.raw_hashes_per_sec.max(1e-9);
        rows.push(Row {
            id: "P4",
            workload: format!(
                "POST /api/auth/login storm ({} connections)",
                args.concurrency
            ),
            per_sec: Some(p4.storm.per_sec()),
            latency: latency(&p4.storm),
            measured: "logins/s".into(),
            baseline: "raw Argon2id, same params and threads".into(),
            baseline_value: format!("{} hashes/s", rate(p4.raw_hashes_per_sec)),
            ratio: Some(ratio),
            target: "≥ 0.9×".into(),
            verdict: Verdict::from_bool(ratio >= 0.9),
        });
        let idle = p4.probe_idle.quantile(0.99);
        let storm = p4.probe_storm.quantile(0.99);
        let ratio = storm.as_secs_f64() / idle.as_secs_f64().max(1e-9);
        rows.push(Row {
            id: "P4",
            workload: format!(
                "P1 verify at a fixed {} req/s during the storm",
                rate(p4.probe_rate)
            ),
            per_sec: Some(p4.probe_storm.per_sec()),
            latency: latency(&p4.probe_storm),
            measured: format!("p99 {}", millis(storm)),
            baseline: "same probe, no storm".into(),
            baseline_value: format!("p99 {}", millis(idle)),
            ratio: Some(ratio),
            target: "≤ 2×".into(),
            verdict: Verdict::from_bool(ratio <= 2.0),
        });
        let idle = p4.login_probe_idle.quantile(0.99);
        let storm = p4.login_probe_storm.quantile(0.99);
        let ratio = storm.as_secs_f64() / idle.as_secs_f64().max(1e-9);
        rows.push(Row {
            id: "P4",
            workload: format!(
                "another client's login at {} /s during a {}-connection login storm from one client",
                workloads::LOGIN_PROBE_RATE,
                workloads::ONE_CLIENT_STORM_CONNECTIONS
            ),
            per_sec: Some(p4.login_probe_storm.per_sec()),
            latency: latency(&p4.login_probe_storm),
            measured: format!("p99 {}", millis(storm)),
            baseline: "same login probe, no storm".into(),
            baseline_value: format!("p99 {}", millis(idle)),
            ratio: Some(ratio),
            target: "≤ 3×".into(),
            verdict: Verdict::from_bool(ratio <= 3.0),
        });
    }
    if let Some(p5) = &r.p5 {
        let full = mib(p5.full.rss_kib);
        let per_entry = (p5.full.rss_kib.saturating_sub(p5.full_floor.rss_kib) * 1024) as f64
            / p5.full.inserted.max(1) as f64;
        rows.push(Row {
            id: "P5",
            workload: format!(
                "RSS with {} cached sessions",
                group_digits(p5.full.inserted)
            ),
            per_sec: None,
            latency: None,
            measured: format!("{full:.0} MiB (~{per_entry:.0} B/session)"),
            baseline: "—".into(),
            baseline_value: "—".into(),
            ratio: None,
            target: "≤ 256 MiB".into(),
            verdict: if args.smoke {
                Verdict::Info
            } else {
                Verdict::from_bool(full <= 256.0)
            },
        });
        if let [short, long] = p5.bounded.get(1..3).unwrap_or_default() {
            let ratio = long.rss_kib as f64 / short.rss_kib.max(1) as f64;
            rows.push(Row {
                id: "P5",
                workload: format!(
                    "RSS, capacity {}, after {} sessions ({} held)",
                    group_digits(p5.capacity),
                    group_digits(long.inserted),
                    group_digits(long.entries)
                ),
                per_sec: None,
                latency: None,
                measured: format!("{:.0} MiB", mib(long.rss_kib)),
                baseline: format!("same, after {}", group_digits(short.inserted)),
                baseline_value: format!("{:.0} MiB", mib(short.rss_kib)),
                ratio: Some(ratio),
                target: "≤ 1.10×".into(),
                verdict: Verdict::from_bool(ratio <= 1.10),
            });
        }
    }
    if let Some(p6) = &r.p6 {
        rows.extend(p6_rows(p6));
    }
    rows
}

fn p6_rows(p6: &P6) -> [Row; 2] {
    use propagation::{LOST_FEED_BOUND, POLL_INTERVAL, at};
    let quantiles = |h| Some([at(h, 0.5), at(h, 0.99), at(h, 0.999)]);
    let healthy_p99 = at(&p6.healthy, 0.99);
    // One poll: the interval between polls plus the poll's own round trip, generously.
    let one_poll = POLL_INTERVAL * 2;
    let blackholed_max = at(&p6.blackholed, 1.0);
    [
        Row {
            id: "P6",
            workload: format!(
                "revocation on A (logout) refused by B and C, healthy feeds \
                 ({} revocations, {} samples)",
                p6.healthy_revocations,
                p6.healthy.len()
            ),
            per_sec: None,
            latency: quantiles(&p6.healthy),
            measured: format!(
                "p50 {}, p99 {}, max {}",
                millis(at(&p6.healthy, 0.5)),
                millis(healthy_p99),
                millis(at(&p6.healthy, 1.0))
            ),
            baseline: "A's logout round trip (in every sample)".into(),
            baseline_value: format!(
                "p50 {}, p99 {}",
                millis(at(&p6.revoke, 0.5)),
                millis(at(&p6.revoke, 0.99))
            ),
            ratio: None,
            target: "p99 ≤ 50 ms".into(),
            verdict: Verdict::from_bool(
                p6.healthy_revocations > 0 && healthy_p99 <= Duration::from_millis(50),
            ),
        },
        Row {
            id: "P6",
            workload: format!(
                "revocation on A refused by B, B's feed black-holed ({} revocations)",
                p6.blackholed_revocations
            ),
            per_sec: None,
            latency: quantiles(&p6.blackholed),
            measured: format!(
                "min {}, p50 {}, max {} (revocations spread over the heartbeat cycle)",
                millis(at(&p6.blackholed, 0.0)),
                millis(at(&p6.blackholed, 0.5)),
                millis(blackholed_max)
            ),
            baseline: "C (feed untouched), same revocations".into(),
            baseline_value: format!(
                "p50 {}, max {}",
                millis(at(&p6.direct_meanwhile, 0.5)),
                millis(at(&p6.direct_meanwhile, 1.0))
            ),
            ratio: None,
            target: format!("max ≤ 3 s + one poll ({} ms)", one_poll.as_millis()),
            verdict: Verdict::from_bool(
                p6.blackholed_revocations > 0 && blackholed_max <= LOST_FEED_BOUND + one_poll,
            ),
        },
    ]
}

fn p6_panel(p6: &P6) -> Panel {
    use propagation::{LOST_FEED_BOUND, at};
    let bar = |d: Duration, color| Bar {
        value: Some(d.as_secs_f64()),
        label: millis(d),
        color,
    };
    let h = &p6.healthy;
    let (b, c) = (&p6.blackholed, &p6.direct_meanwhile);
    Panel {
        title: "P6 revocation propagation to other nodes".into(),
        groups: vec![
            Group {
                name: "healthy feeds (B and C)\np50, p99, max".into(),
                bars: vec![
                    bar(at(h, 0.5), REDAUTH),
                    bar(at(h, 0.99), REDAUTH),
                    bar(at(h, 1.0), REDAUTH),
                ],
                target: Some(0.050),
            },
            Group {
                name: "B black-holed: p50, max\nvs C meanwhile: max".into(),
                bars: vec![
                    bar(at(b, 0.5), REDAUTH),
                    bar(at(b, 1.0), REDAUTH),
                    bar(at(c, 1.0), BASELINE),
                ],
                target: Some(LOST_FEED_BOUND.as_secs_f64()),
            },
        ],
    }
}

fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn panels(r: &Results) -> Vec<Panel> {
    let bar = |value: Option<f64>, label: String, color| Bar {
        value,
        label,
        color,
    };
    let rps = |v: f64| format!("{}/s", rate(v));
    let ms = |d: Duration| millis(d);
    let mut throughput = Vec::new();
    let mut p99 = Vec::new();
    if let Some(p1) = &r.p1 {
        let (a, b) = (p1.redauth.per_sec(), p1.baseline.per_sec());
        throughput.push(Group {
            name: "P1 verify\nvs bare axum".into(),
            bars: vec![
                bar(Some(a), rps(a), REDAUTH),
                bar(Some(b), rps(b), BASELINE),
            ],
            target: Some(0.85 * b),
        });
        let (a, b) = (p1.redauth.quantile(0.99), p1.baseline.quantile(0.99));
        p99.push(Group {
            name: "P1 verify\nvs bare axum".into(),
            bars: vec![
                bar(Some(a.as_secs_f64()), ms(a), REDAUTH),
                bar(Some(b.as_secs_f64()), ms(b), BASELINE),
            ],
            target: None,
        });
    }
    let p2_rps =
        r.p2.as_ref()
            .and_then(|(_, p2)| p2.as_ref())
            .map(|p| p.outcome.per_sec());
    if let Some((bench, p2)) = &r.p2 {
        let (value, label) = p2.as_ref().map_or((None, "n/a".into()), |p| {
            let v = p.outcome.per_sec();
            (Some(v), rps(v))
        });
        throughput.push(Group {
            name: "P2 session check\nvs redis GET".into(),
            bars: vec![
                bar(value, label, REDAUTH),
                bar(Some(bench.per_sec), rps(bench.per_sec), BASELINE),
            ],
            target: Some(0.5 * bench.per_sec),
        });
        let (value, label) = p2.as_ref().map_or((None, "n/a".into()), |p| {
            let d = p.outcome.quantile(0.99);
            (Some(d.as_secs_f64()), ms(d))
        });
        p99.push(Group {
            name: "P2 session check\nvs redis GET".into(),
            bars: vec![
                bar(value, label, REDAUTH),
                bar(
                    Some(bench.p99_ms / 1000.0),
                    format!("{:.3} ms", bench.p99_ms),
                    BASELINE,
                ),
            ],
            target: None,
        });
    }
    if let Some(p3) = &r.p3 {
        let a = p3.outcome.per_sec();
        throughput.push(Group {
            name: "P3 refresh\nvs P2".into(),
            bars: vec![
                bar(Some(a), rps(a), REDAUTH),
                bar(p2_rps, p2_rps.map_or_else(|| "n/a".into(), rps), BASELINE),
            ],
            target: p2_rps.map(|b| 0.5 * b),
        });
        let d = p3.outcome.quantile(0.99);
        p99.push(Group {
            name: "P3 refresh".into(),
            bars: vec![bar(Some(d.as_secs_f64()), ms(d), REDAUTH)],
            target: None,
        });
    }
    if let Some(p4) = &r.p4 {
        let (a, b) = (p4.storm.per_sec(), p4.raw_hashes_per_sec);
        throughput.push(Group {
            name: "P4 logins\nvs raw Argon2id".into(),
            bars: vec![
                bar(Some(a), rps(a), REDAUTH),
                bar(Some(b), rps(b), BASELINE),
            ],
            target: Some(0.9 * b),
        });
        let d = p4.storm.quantile(0.99);
        p99.push(Group {
            name: "P4 login\nstorm".into(),
            bars: vec![bar(Some(d.as_secs_f64()), ms(d), REDAUTH)],
            target: None,
        });
        let (a, b) = (p4.probe_storm.quantile(0.99), p4.probe_idle.quantile(0.99));
        p99.push(Group {
            name: "P1 probe: storm\nvs idle".into(),
            bars: vec![
                bar(Some(a.as_secs_f64()), ms(a), REDAUTH),
                bar(Some(b.as_secs_f64()), ms(b), BASELINE),
            ],
            target: Some(2.0 * b.as_secs_f64()),
        });
    }
    let mut panels = vec![
        Panel {
            title: "Throughput (requests/s)".into(),
            groups: throughput,
        },
        Panel {
            title: "p99 latency".into(),
            groups: p99,
        },
    ];
    if let Some(p5) = &r.p5 {
        let mut groups = vec![Group {
            name: format!("{} sessions\ncached", group_digits(p5.full.inserted)),
            bars: vec![bar(
                Some(mib(p5.full.rss_kib)),
                format!("{:.0} MiB", mib(p5.full.rss_kib)),
                REDAUTH,
            )],
            target: Some(256.0),
        }];
        if let [short, long] = p5.bounded.get(1..3).unwrap_or_default() {
            groups.push(Group {
                name: format!(
                    "capacity {}: after {}\nvs after {}",
                    group_digits(p5.capacity),
                    group_digits(long.inserted),
                    group_digits(short.inserted)
                ),
                bars: vec![
                    bar(
                        Some(mib(long.rss_kib)),
                        format!("{:.0} MiB", mib(long.rss_kib)),
                        REDAUTH,
                    ),
                    bar(
                        Some(mib(short.rss_kib)),
                        format!("{:.0} MiB", mib(short.rss_kib)),
                        BASELINE,
                    ),
                ],
                target: Some(1.1 * mib(short.rss_kib)),
            });
        }
        panels.push(Panel {
            title: "P5 memory: process RSS".into(),
            groups,
        });
    }
    if let Some(p6) = &r.p6 {
        panels.push(p6_panel(p6));
    }
    panels.retain(|p| !p.groups.is_empty());
    panels
}
