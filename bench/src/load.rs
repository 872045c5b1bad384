//! The load generator: a fixed number of keep-alive connections, each sending its next
//! request as soon as the previous response arrived (closed loop), or on a fixed
//! schedule (the latency probe of P4). Only responses that arrive inside the measured
//! window (after the warm-up, before the stop) are counted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::Connection;
use crate::procs;
use crate::{BenchError, Result};

/// What one connection sends, and what counts as a correct answer.
pub trait Requests: Send + 'static {
    /// The next request, complete with headers.
    fn request(&mut self) -> &[u8];
    /// Sees the response to the last request; `false` if it was not the expected one.
    fn accept(&mut self, status: u16, body: &[u8]) -> bool;
}

/// The same request every time, answered by one expected status.
pub struct Fixed {
    pub request: Vec<u8>,
    pub status: u16,
}

impl Requests for Fixed {
    fn request(&mut self) -> &[u8] {
        &self.request
    }

    fn accept(&mut self, status: u16, _: &[u8]) -> bool {
        status == self.status
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// Counts and latencies of the measured window.
pub struct Outcome {
    pub ok: u64,
    /// Responses in the window that `Requests::accept` refused.
    pub refused: u64,
    /// Every request sent, warm-up included (to relate to server-side counters).
    pub sent: u64,
    pub measured: Duration,
    /// Nanoseconds.
    pub latency: Histogram<u64>,
    /// CPU time the watched server process used during the window, if one was watched.
    pub server_cpu: Option<Duration>,
}

/// Latencies from 1 µs to 100 s at 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
        .map_err(|e| BenchError::from(format!("histogram: {e}")))
}

impl Outcome {
    fn empty(measured: Duration) -> Result<Self> {
        Ok(Self {
            ok: 0,
            refused: 0,
            sent: 0,
            measured,
            latency: histogram()?,
            server_cpu: None,
        })
    }

    /// Adds another outcome measured over its own window (the windows add up).
    pub fn merge(&mut self, other: &Outcome) -> Result<()> {
        self.ok += other.ok;
        self.refused += other.refused;
        self.sent += other.sent;
        self.measured += other.measured;
        self.server_cpu = match (self.server_cpu, other.server_cpu) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.latency
            .add(&other.latency)
            .map_err(|e| BenchError::from(format!("histogram: {e}")))
    }

    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// Server CPU time per counted response.
    pub fn cpu_per_request(&self) -> Option<Duration> {
        Some(self.server_cpu? / u32::try_from(self.ok.max(1)).unwrap_or(u32::MAX))
    }

    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.latency.value_at_quantile(q))
    }
}

/// Runs one connection per entry of `sources`, each in a closed loop.
pub async fn closed_loop<R: Requests>(
    addr: SocketAddr,
    sources: Vec<R>,
    window: Window,
) -> Result<Outcome> {
    run(addr, sources, window, None, None).await
}

/// [`closed_loop`], also measuring the CPU time server process `pid` spends in the window.
pub async fn closed_loop_watching<R: Requests>(
    addr: SocketAddr,
    sources: Vec<R>,
    window: Window,
    pid: u32,
) -> Result<Outcome> {
    run(addr, sources, window, None, Some(pid)).await
}

/// Like [`closed_loop`], but the connections together send `rate` requests per second
/// on a fixed schedule. A response slower than the schedule delays the next sends;
/// the histogram is corrected for the requests that would have waited meanwhile
/// (coordinated omission), so a stall shows in the tail as users would feel it.
pub async fn fixed_rate<R: Requests>(
    addr: SocketAddr,
    sources: Vec<R>,
    rate: f64,
    window: Window,
) -> Result<Outcome> {
    let per_connection = rate / sources.len().max(1) as f64;
    let interval = Duration::from_secs_f64(1.0 / per_connection.max(1e-3));
    run(addr, sources, window, Some(interval), None).await
}

async fn run<R: Requests>(
    addr: SocketAddr,
    sources: Vec<R>,
    window: Window,
    interval: Option<Duration>,
    watch: Option<u32>,
) -> Result<Outcome> {
    // Connect everything first, so connection setup is never measured.
    let mut connections = Vec::with_capacity(sources.len());
    for source in sources {
        connections.push((Connection::open(addr).await?, source));
    }
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let stop = measure_from + window.measure;
    let n = connections.len().max(1) as f64;
    let mut tasks = Vec::with_capacity(connections.len());
    for (i, (conn, source)) in connections.into_iter().enumerate() {
        // Spread scheduled connections over one interval instead of firing together.
        let first = interval.map_or(start, |iv| start + iv.mul_f64(i as f64 / n));
        tasks.push(tokio::spawn(drive(
            conn,
            source,
            first,
            measure_from,
            stop,
            interval,
            window.measure,
        )));
    }
    let cpu = watch.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let before = procs::cpu_time(pid);
            tokio::time::sleep_until(stop.into()).await;
            Some(procs::cpu_time(pid)?.saturating_sub(before?))
        })
    });
    let mut total = Outcome::empty(window.measure)?;
    if let Some(cpu) = cpu {
        total.server_cpu = cpu
            .await
            .map_err(|e| BenchError::from(format!("cpu task: {e}")))?;
    }
    for task in tasks {
        let one = task
            .await
            .map_err(|e| BenchError::from(format!("load task: {e}")))??;
        total.ok += one.ok;
        total.refused += one.refused;
        total.sent += one.sent;
        total
            .latency
            .add(&one.latency)
            .map_err(|e| BenchError::from(format!("histogram: {e}")))?;
    }
    Ok(total)
}

async fn drive<R: Requests>(
    mut conn: Connection,
    mut source: R,
    first: Instant,
    measure_from: Instant,
    stop: Instant,
    interval: Option<Duration>,
    measured: Duration,
) -> Result<Outcome> {
    let mut out = Outcome::empty(measured)?;
    let mut next_send = first;
    loop {
        if interval.is_some() && next_send > Instant::now() {
            tokio::time::sleep_until(next_send.into()).await;
        }
        let sent_at = Instant::now();
        if sent_at >= stop {
            break;
        }
        let response = conn.send(source.request()).await?;
        let accepted = source.accept(response.status, response.body);
        let done = Instant::now();
        out.sent += 1;
        // Throughput is completions inside the window, whenever they started: with
        // second-long login latencies, counting only requests started in the window
        // would miss the first second of completions.
        if done >= measure_from && done <= stop {
            if accepted {
                out.ok += 1;
                let nanos = u64::try_from((done - sent_at).as_nanos()).unwrap_or(u64::MAX);
                match interval {
                    Some(iv) => out
                        .latency
                        .record_correct(nanos, u64::try_from(iv.as_nanos()).unwrap_or(u64::MAX)),
                    None => out.latency.record(nanos),
                }
                .map_err(|e| BenchError::from(format!("histogram: {e}")))?;
            } else {
                out.refused += 1;
            }
        }
        if let Some(iv) = interval {
            next_send += iv;
        }
    }
    Ok(out)
}
