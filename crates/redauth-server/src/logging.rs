//! Log output: one JSON object per line (or readable text), appended to a buffer that a
//! background thread writes out in batches, so a request never waits on `write(2)` and
//! never wakes another thread.
//!
//! Every line written while handling a request carries that request's `request_id`.
//! The id travels in a task-local set by the HTTP edge middleware
//! ([`redauth_axum::request_id`]) rather than in a `tracing` span.
//!
//! The formatter is ours for the same reason: `tracing-subscriber`'s JSON formatter
//! built a `serde_json` map per event. Lines are flat objects:
//! `{"timestamp","level","target","request_id"?, "message", …fields}`.
//!
//! Lines reach stderr within [`FLUSH_INTERVAL`], sooner when [`FLUSH_BYTES`] are
//! waiting. They are never dropped: past [`MAX_BUFFERED_BYTES`] the logging thread
//! writes the batch itself (backpressure) rather than lose audit lines.
//!
//! Nothing logs passwords, tokens or secrets: handlers never log bodies, models hide
//! their hashes in `Debug`, and secrets print as `[redacted]`.

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Longest a line waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// A buffer this full is written out at once.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// A buffer this full is written by the thread that logs (the writer fell behind).
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;

/// Installs the global subscriber. Keep the guard until exit: dropping it writes the
/// lines still buffered.
pub fn init(format: LogFormat) -> FlushOnDrop {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = BatchWriter::spawn(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(Line {
            json: matches!(format, LogFormat::Json),
        })
        .try_init();
    guard
}

/// Collects whole lines (the formatter hands over each line in one `write`) for the
/// thread started by [`BatchWriter::spawn`].
#[derive(Clone)]
pub struct BatchWriter(Arc<Batch>);

/// The buffer behind a [`BatchWriter`]; writing to `&Batch` appends a line.
pub struct Batch {
    lines: Mutex<Vec<u8>>,
    /// Locked before `lines` is released, so batches reach it in the order they left.
    out: Mutex<Box<dyn Write + Send>>,
    full_or_closing: Condvar,
    closing: AtomicBool,
}

/// Stops the writer thread after it has written everything buffered.
pub struct FlushOnDrop {
    batch: Arc<Batch>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BatchWriter {
    pub fn spawn(out: impl Write + Send + 'static) -> (Self, FlushOnDrop) {
        let batch = Arc::new(Batch {
            lines: Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
            out: Mutex::new(Box::new(out)),
            full_or_closing: Condvar::new(),
            closing: AtomicBool::new(false),
        });
        let shared = batch.clone();
        let thread = std::thread::Builder::new()
            .name("redauth-log".into())
            .spawn(move || {
                let mut spare = Vec::with_capacity(FLUSH_BYTES);
                loop {
                    let lines = lock(&shared.lines);
                    let (mut lines, _) = shared
                        .full_or_closing
                        .wait_timeout_while(lines, FLUSH_INTERVAL, |l| {
                            l.len() < FLUSH_BYTES && !shared.closing.load(Ordering::Acquire)
                        })
                        .unwrap_or_else(PoisonError::into_inner);
                    std::mem::swap(&mut *lines, &mut spare);
                    let closing = shared.closing.load(Ordering::Acquire);
                    let mut out = lock(&shared.out);
                    drop(lines);
                    write_batch(&mut **out, &mut spare);
                    if closing {
                        break;
                    }
                }
            })
            .ok();
        (Self(batch.clone()), FlushOnDrop { batch, thread })
    }
}

/// Writes and empties `batch`. Nowhere to report a failing stderr: the next batch
/// tries again.
fn write_batch(out: &mut dyn Write, batch: &mut Vec<u8>) {
    if !batch.is_empty() {
        let _ = out.write_all(batch).and_then(|()| out.flush());
        batch.clear();
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Write for &Batch {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut lines = lock(&self.lines);
        lines.extend_from_slice(line);
        if lines.len() >= MAX_BUFFERED_BYTES {
            // The writer thread fell behind: write here, holding up every logger.
            let mut batch = std::mem::take(&mut *lines);
            let mut out = lock(&self.out);
            drop(lines);
            write_batch(&mut **out, &mut batch);
        } else if lines.len() >= FLUSH_BYTES {
            self.full_or_closing.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a Batch;

    fn make_writer(&'a self) -> Self::Writer {
        &self.0
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.batch.closing.store(true, Ordering::Release);
        self.batch.full_or_closing.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Formats one event as a JSON object or as `time LEVEL target: message k=v …`.
struct Line {
    json: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let request_id = redauth_axum::request_id::current();
        let request_id = request_id.as_ref().and_then(|id| id.to_str().ok());
        if self.json {
            w.write_str("{\"timestamp\":\"")?;
            SystemTime.format_time(&mut w)?;
            write!(w, "\",\"level\":\"{}\",\"target\":", meta.level())?;
            json_string(&mut w, meta.target())?;
            if let Some(id) = request_id {
                w.write_str(",\"request_id\":")?;
                json_string(&mut w, id)?;
            }
        } else {
            SystemTime.format_time(&mut w)?;
            write!(w, " {:>5} {}:", meta.level(), meta.target())?;
        }
        let mut fields = Fields {
            w: &mut w,
            json: self.json,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        if self.json {
            w.write_str("}\n")
        } else {
            match request_id {
                Some(id) => writeln!(w, " request_id={id}"),
                None => writeln!(w),
            }
        }
    }
}

/// Writes each field as `,"name":value` (JSON) or ` name=value` (text; the message
/// bare). Values that are not numbers or booleans are strings, escaped, so no value
/// can break a line or forge another.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    json: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = if self.json {
            self.w
                .write_char(',')
                .and_then(|()| json_string(self.w, field.name()))
                .and_then(|()| self.w.write_char(':'))
                .and_then(|()| value(self.w))
        } else if field.name() == "message" {
            self.w.write_char(' ').and_then(|()| value(self.w))
        } else {
            write!(self.w, " {}=", field.name()).and_then(|()| value(self.w))
        };
    }

    fn string(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let (json, message) = (self.json, field.name() == "message");
        self.field(field, |w| {
            if json {
                w.write_char('"')?;
                Escaped(w).write_fmt(value)?;
                w.write_char('"')
            } else if message {
                Escaped(w).write_fmt(value)
            } else {
                w.write_char('"')?;
                Escaped(w).write_fmt(value)?;
                w.write_char('"')
            }
        });
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, format_args!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, |w| write!(w, "{value}"));
        } else {
            self.string(field, format_args!("{value}"));
        }
    }
}

fn json_string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what JSON strings require (quote, backslash, control characters) as text
/// passes through, so formatted values are never buffered twice.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            let (clean, tail) = rest.split_at(at);
            self.0.write_str(clean)?;
            let mut chars = tail.chars();
            match chars.next() {
                Some('"') => self.0.write_str("\\\"")?,
                Some('\\') => self.0.write_str("\\\\")?,
                Some('\n') => self.0.write_str("\\n")?,
                Some('\r') => self.0.write_str("\\r")?,
                Some('\t') => self.0.write_str("\\t")?,
                Some(c) => write!(self.0, "\\u{:04x}", u32::from(c))?,
                None => {}
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        json_string(&mut Writer::new(&mut out), s).unwrap();
        out
    }

    /// The lines `emit` logs, formatted by [`Line`] into memory.
    fn lines(json: bool, emit: impl FnOnce()) -> Vec<String> {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .event_format(Line { json })
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_are_flat_objects_with_the_request_id_of_their_task() {
        let lines = lines(true, || {
            redauth_axum::request_id::sync_scope(
                axum::http::HeaderValue::from_static("req-1"),
                || {
                    tracing::warn!(
                        status = 401u16,
                        ok = false,
                        ratio = 0.5,
                        path = "/a\"b\nc",
                        "refresh {}",
                        "reused"
                    );
                },
            );
            tracing::info!(n = -3i64, "outside");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["target"], module_path!());
        assert_eq!(first["request_id"], "req-1");
        assert_eq!(first["message"], "refresh reused");
        assert_eq!(first["status"], 401);
        assert_eq!(first["ok"], false);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["path"], "/a\"b\nc");
        assert!(
            first["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["n"], -3);
        assert!(second.get("request_id").is_none(), "{}", lines[1]);
    }

    #[test]
    fn text_lines_name_fields_and_the_request_id() {
        let lines = lines(false, || {
            redauth_axum::request_id::sync_scope(
                axum::http::HeaderValue::from_static("req-2"),
                || {
                    tracing::info!(status = 204u16, path = "/x", "request");
                },
            );
        });
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with(" INFO redauth_server::logging::tests: request status=204 path=\"/x\" request_id=req-2"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_by_the_time_the_guard_drops() {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let (writer, guard) = BatchWriter::spawn(Sink(out.clone()));
        std::thread::scope(|s| {
            for t in 0..4 {
                let writer = writer.clone();
                s.spawn(move || {
                    for i in 0..5_000 {
                        let line = format!("{t} {i} {}\n", "x".repeat(i % 97));
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(i, next[t], "thread {t}'s lines in order");
            assert_eq!(parts.next().unwrap().len(), i % 97, "line {line} whole");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn escaping_produces_json_that_reads_back_as_the_input() {
        for s in [
            "plain",
            "quote \" and backslash \\",
            "line\nbreak\r\ttab",
            "\u{0}\u{1f}bell\u{7}",
            "ünïcödé ✓",
            "",
        ] {
            let json = escaped(s);
            assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s, "{json}");
            assert!(!json.contains('\n'), "{json}");
        }
    }
}
