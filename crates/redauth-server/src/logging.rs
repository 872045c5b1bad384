//! Log output: human-readable text or one JSON object per line. Every line written
//! while handling a request carries that request's `request_id` (from the span the
//! HTTP layer opens). Nothing logs passwords, tokens or secrets: handlers never log
//! bodies, models hide their hashes in `Debug`, and secrets print as `[redacted]`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
