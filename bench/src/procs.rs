//! The processes the harness runs: the `redauth` server and CLI, the baseline server,
//! the cache-RSS helper and `redis-benchmark`. Each server is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{self, Connection};
use crate::{BenchError, Result};

/// Where the binaries are: beside the harness's own executable, so a release harness
/// always runs release servers and a debug one debug servers.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the harness executable has no directory".into())
}

/// Builds the server and the harness's helper binaries with the harness's own profile,
/// when run through `cargo run` (which sets `$CARGO`). `cargo run -p redauth-bench`
/// builds only the harness binary; without this, a stale `redauth` from an earlier
/// build would be measured without anyone noticing.
pub fn build_binaries() -> Result<()> {
    let Ok(cargo) = std::env::var("CARGO") else {
        eprintln!("bench: not started by cargo; using the binaries beside the harness as they are");
        return Ok(());
    };
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "redauth-server",
        "-p",
        "redauth-bench",
        "--bins",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    eprintln!("bench: {cmd:?}");
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("building the binaries failed: {status}").into());
    }
    Ok(())
}

/// A child process killed (and reaped) on drop.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
    /// Stop with SIGINT and wait, so a profiler wrapping the server writes its data.
    graceful: bool,
}

impl Running {
    /// With a `--server-prefix`, the wrapper's pid (valgrind runs the server in it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.graceful {
            // No signal API in std without `unsafe`; kill(1) sends SIGINT, which the
            // server treats as a graceful shutdown.
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redauth serve` on a free loopback port with exactly `env` (plus `PATH`) and JSON
/// logs, which the harness reads for the listening address and then discards. The
/// server still formats and writes its access log line per request, as in production.
/// `prefix` runs it under another program (`valgrind --tool=callgrind`, `perf record`).
pub async fn start_redauth(env: &[(String, String)], prefix: &[String]) -> Result<Running> {
    let bin = bin_dir()?.join("redauth");
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    // A reader thread finds the address, then keeps draining stderr so the server never
    // blocks on a full pipe. A log filter that hides the banner must not hang the run.
    let (found, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr);
        let mut seen = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if !matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
                let _ = found.send(Err(format!("redauth exited before listening:\n{seen}")));
                return;
            }
            if line.contains("redauth listening") {
                let addr = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.pointer("/addr")?.as_str()?.parse().ok())
                    .ok_or_else(|| format!("no address in {line}"));
                let _ = found.send(addr);
                break;
            }
            seen.push_str(&line);
        }
        let mut sink = [0u8; 64 * 1024];
        while matches!(lines.read(&mut sink), Ok(n) if n > 0) {}
    });
    let addr: SocketAddr = match listening.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(addr)) => addr,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(match other {
                Ok(Err(e)) => e.into(),
                _ => "redauth did not log `redauth listening` within 120 s \
                      (a RUST_LOG filter must keep info for redauth_server::cli)"
                    .into(),
            });
        }
    };
    let server = Running {
        child,
        addr,
        graceful: !prefix.is_empty(),
    };
    wait_ready(addr, "/readyz", Duration::from_secs(60)).await?;
    Ok(server)
}

/// The P1 baseline, answering every request with a JSON body of `body_bytes`.
pub async fn start_baseline(body_bytes: usize) -> Result<Running> {
    let bin = bin_dir()?.join("bench-baseline");
    let mut child = Command::new(&bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--body-bytes",
            &body_bytes.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("bench-baseline did not start: {line:?}"))?
        .parse()?;
    let server = Running {
        child,
        addr,
        graceful: false,
    };
    wait_ready(addr, "/api/auth/verify", Duration::from_secs(10)).await?;
    Ok(server)
}

/// Polls `path` until it answers 2xx: the process has bound before it prints its
/// address, but readiness (the store ping) comes after.
async fn wait_ready(addr: SocketAddr, path: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let request = client::get(path, &[]);
    loop {
        if let Ok(mut c) = Connection::open(addr).await
            && let Ok(r) = c.send(&request).await
            && (200..300).contains(&r.status)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{addr}{path} never answered 2xx").into());
        }
        // Polling a process we started for readiness.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a `redauth` admin command with `env`, feeding `stdin`.
pub fn redauth_cli(env: &[(String, String)], args: &[&str], stdin: &str) -> Result<String> {
    let bin = bin_dir()?.join("redauth");
    let mut child = Command::new(&bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    child
        .stdin
        .take()
        .ok_or("no stdin pipe")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "redauth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One line of the cache helper's output.
#[derive(Debug, Clone, Copy)]
pub struct RssPoint {
    pub inserted: u64,
    pub entries: u64,
    pub rss_kib: u64,
}

/// Runs `bench-cache-rss`: a cache of `capacity`, RSS read after each checkpoint.
pub fn cache_rss(capacity: u64, checkpoints: &[u64]) -> Result<Vec<RssPoint>> {
    let bin = bin_dir()?.join("bench-cache-rss");
    let list: Vec<String> = checkpoints.iter().map(u64::to_string).collect();
    let out = Command::new(&bin)
        .args([
            "--capacity",
            &capacity.to_string(),
            "--checkpoints",
            &list.join(","),
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("bench-cache-rss failed: {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut points = Vec::new();
    for line in text.lines() {
        let field = |name: &str| -> Result<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| BenchError::from(format!("no {name} in {line:?}")))?
                .parse()
                .map_err(|e| BenchError::from(format!("{name} in {line:?}: {e}")))
        };
        points.push(RssPoint {
            inserted: field("inserted")?,
            entries: field("entries")?,
            rss_kib: field("rss_kib")?,
        });
    }
    Ok(points)
}

/// What `redis-benchmark --csv` reports for one test.
#[derive(Debug, Clone, Copy)]
pub struct RedisBenchmark {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `redis-benchmark -t get -c <clients> -n <requests>` against `port`.
pub fn redis_benchmark_get(port: u16, clients: usize, requests: u64) -> Result<RedisBenchmark> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "get"])
        .args([
            "-c",
            &clients.to_string(),
            "-n",
            &requests.to_string(),
            "--csv",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run redis-benchmark (install redis-tools): {e}"))?;
    if !out.status.success() {
        return Err(format!("redis-benchmark failed: {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = text.lines().map(|l| {
        l.split(',')
            .map(|f| f.trim_matches('"').to_owned())
            .collect::<Vec<_>>()
    });
    let header = rows.next().ok_or("redis-benchmark printed nothing")?;
    let get = rows
        .find(|r| r.first().is_some_and(|t| t == "GET"))
        .ok_or_else(|| format!("no GET row in redis-benchmark output: {text}"))?;
    let column = |name: &str| -> Result<f64> {
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| BenchError::from(format!("no {name} column: {text}")))?;
        get.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BenchError::from(format!("bad {name} value: {text}")))
    };
    Ok(RedisBenchmark {
        per_sec: column("rps")?,
        p50_ms: column("p50_latency_ms")?,
        p99_ms: column("p99_latency_ms")?,
    })
}

/// CPU time (user + system, all threads) process `pid` has used so far, from
/// `/proc/<pid>/stat`. Dividing its growth by the requests served gives a cost per
/// request that other processes on a shared machine cannot inflate, unlike req/s.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux that exposes it through /proc.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident set size of process `pid`, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
