//! Log output: one JSON object per line (or readable text), written by a background
//! thread so a request never waits on `write(2)`.
//!
//! Every line written while handling a request carries that request's `request_id`.
//! The id travels in a task-local set by the HTTP edge middleware ([`with_request_id`])
//! rather than in a `tracing` span: a span per request, with its fields formatted into
//! the registry, was a quarter of the cost of a cached token check (see
//! docs/performance.md), and the id is the only context lines need.
//!
//! The formatter is ours for the same reason: `tracing-subscriber`'s JSON formatter
//! built a `serde_json` map per event. Lines are flat objects:
//! `{"timestamp","level","target","request_id"?, "message", …fields}`.
//!
//! Lines are never dropped: when the writer thread falls behind by
//! [`BUFFERED_LINES`], logging blocks instead of losing audit lines.
//!
//! Nothing logs passwords, tokens or secrets: handlers never log bodies, models hide
//! their hashes in `Debug`, and secrets print as `[redacted]`.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::io::BufWriter;

use axum::http::HeaderValue;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Lines queued for the writer thread before logging applies backpressure.
pub const BUFFERED_LINES: usize = 64 * 1024;

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// Runs `fut` with `id` as the request id of every line it logs.
pub async fn with_request_id<F: Future>(id: HeaderValue, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Installs the global subscriber. Keep the guard until exit: dropping it flushes the
/// lines still queued.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The writer thread flushes after draining the queue, so a burst is one write.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("redauth-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(Line {
            json: matches!(format, LogFormat::Json),
        })
        .try_init();
    guard
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
        let request_id = REQUEST_ID
            .try_with(|id| id.to_str().map(str::to_owned).ok())
            .ok()
            .flatten();
        if self.json {
            w.write_str("{\"timestamp\":\"")?;
            SystemTime.format_time(&mut w)?;
            write!(w, "\",\"level\":\"{}\",\"target\":", meta.level())?;
            json_string(&mut w, meta.target())?;
            if let Some(id) = &request_id {
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
            REQUEST_ID.sync_scope(HeaderValue::from_static("req-1"), || {
                tracing::warn!(
                    status = 401u16,
                    ok = false,
                    ratio = 0.5,
                    path = "/a\"b\nc",
                    "refresh {}",
                    "reused"
                );
            });
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
            REQUEST_ID.sync_scope(HeaderValue::from_static("req-2"), || {
                tracing::info!(status = 204u16, path = "/x", "request");
            });
        });
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with(" INFO redauth_server::logging::tests: request status=204 path=\"/x\" request_id=req-2"),
            "{}",
            lines[0]
        );
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
