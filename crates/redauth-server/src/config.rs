//! Configuration: one loader for the TOML file (`--config FILE`), environment
//! variables and command-line flags, in increasing order of precedence.
//!
//! [`Settings`] is the raw, all-optional layer; [`Config::resolve`] turns the merged
//! layers into validated values or one [`ConfigError`] naming the offending setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use redauth_core::Secret;
use redauth_core::cookie::{CookieAttributes, SameSite};
use redauth_core::cookie_session::CookieSessionOptions;
use redauth_core::cookie_store::{
    COMPAT_SESSION_PREFIX, COMPAT_USER_SESSIONS_PREFIX, CookieSessionLayout,
};
use redauth_core::password::{Argon2Params, PasswordPolicy};
use redauth_core::rate_limit::RateLimit;
use redauth_core::service::{BruteForceLimits, SessionPolicy};
use redauth_core::token::MIN_SECRET_BYTES;
use redauth_core::token::access::AccessTokenConfig;
use serde::Deserialize;
use thiserror::Error;

pub use redauth_axum::cookie::{CookieSessionConfig, LoginIssues};
use redauth_axum::serve::ConnectionLimits;

/// A setting that is missing or wrong. The message is one line and names the setting
/// the way the user wrote it (environment name, with the TOML key in parentheses).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $env:literal ),* $(,)?) => {
        /// One layer of raw settings. Every field is optional; later layers win.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $( $(#[$doc])* pub $field: Option<$ty>, )*
        }

        impl Settings {
            /// Every setting as (TOML key, environment variable), for docs and errors.
            pub const NAMES: &'static [(&'static str, &'static str)] = &[$((stringify!($field), $env)),*];

            /// `top` wins wherever it has a value.
            pub fn overlay(self, top: Settings) -> Settings {
                Settings { $( $field: top.$field.or(self.$field), )* }
            }

            /// Reads the environment through `get`, so tests can pass a map.
            pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
                Ok(Settings { $( $field: parse_value(concat!($env, " (", stringify!($field), ")"), get($env))?, )* })
            }
        }
    };
}

settings! {
    /// Address to listen on, e.g. `0.0.0.0:8080`.
    listen: String = "REDAUTH_LISTEN",
    redis_url: Secret = "REDIS_URL",
    redis_host: String = "REDIS_HOST",
    redis_port: u16 = "REDIS_PORT",
    redis_username: String = "REDIS_USERNAME",
    redis_password: Secret = "REDIS_PASSWORD",
    redis_tls: bool = "REDIS_TLS",
    redis_ca_file: PathBuf = "REDIS_CA_FILE",
    key_prefix: String = "REDAUTH_KEY_PREFIX",
    data_dir: PathBuf = "REDAUTH_DATA_DIR",
    jwt_secret: Secret = "JWT_SECRET",
    jwt_access_secret: Secret = "JWT_ACCESS_SECRET",
    jwt_refresh_secret: Secret = "JWT_REFRESH_SECRET",
    jwt_issuer: String = "JWT_ISSUER",
    jwt_audience: String = "JWT_AUDIENCE",
    access_ttl_secs: i64 = "REDAUTH_ACCESS_TTL_SECS",
    /// Seconds an access token is still accepted past its expiry (and before its
    /// issue time): the clock skew allowed between redauth and token consumers (0 to 60).
    access_leeway_secs: i64 = "REDAUTH_ACCESS_LEEWAY_SECS",
    refresh_ttl_secs: i64 = "REDAUTH_REFRESH_TTL_SECS",
    idle_ttl_secs: i64 = "REDAUTH_IDLE_TTL_SECS",
    refresh_reuse_grace_secs: i64 = "REDAUTH_REFRESH_REUSE_GRACE_SECS",
    /// Live login sessions per user (1 to 10000); a login past it ends the oldest.
    max_sessions_per_user: u32 = "REDAUTH_MAX_SESSIONS_PER_USER",
    cache_capacity: u64 = "REDAUTH_CACHE_CAPACITY",
    /// Seconds a node serves a cached principal before reading Redis again, whatever
    /// the revocation feed says (1 to 3600).
    cache_max_age_secs: i64 = "REDAUTH_CACHE_MAX_AGE_SECS",
    cookie_secure: bool = "REDAUTH_COOKIE_SECURE",
    refresh_cookie_name: String = "REDAUTH_REFRESH_COOKIE_NAME",
    password_min_chars: usize = "REDAUTH_PASSWORD_MIN_CHARS",
    password_max_chars: usize = "REDAUTH_PASSWORD_MAX_CHARS",
    argon2_memory_kib: u32 = "REDAUTH_ARGON2_MEMORY_KIB",
    argon2_iterations: u32 = "REDAUTH_ARGON2_ITERATIONS",
    argon2_parallelism: u32 = "REDAUTH_ARGON2_PARALLELISM",
    hash_concurrency: usize = "REDAUTH_HASH_CONCURRENCY",
    /// Password checks that may wait for a hashing slot; more get 503 at once.
    hash_queue_max: usize = "REDAUTH_HASH_QUEUE_MAX",
    /// Password checks one client may have queued or running at once.
    hash_queue_per_client: usize = "REDAUTH_HASH_QUEUE_PER_CLIENT",
    /// How long a password check may wait for a hashing slot before 503.
    hash_queue_timeout_ms: u64 = "REDAUTH_HASH_QUEUE_TIMEOUT_MS",
    /// Milliseconds a 429 answer is held before it is sent (0 to 10000; 0 sends at once).
    rate_limited_delay_ms: u64 = "REDAUTH_RATE_LIMITED_DELAY_MS",
    log_format: LogFormat = "REDAUTH_LOG_FORMAT",
    /// Seconds a client has to send a whole request head (1 to 300).
    header_read_timeout_secs: u64 = "REDAUTH_HEADER_READ_TIMEOUT_SECS",
    /// Seconds a kept-alive connection may wait for its next request (1 to 3600).
    idle_timeout_secs: u64 = "REDAUTH_IDLE_TIMEOUT_SECS",
    /// Seconds a request may take before it is answered 503 `timeout` (1 to 600).
    request_timeout_secs: u64 = "REDAUTH_REQUEST_TIMEOUT_SECS",
    /// Open client connections at most; more are closed at once (1 to 1000000).
    max_connections: usize = "REDAUTH_MAX_CONNECTIONS",
    /// Seconds shutdown waits for requests in progress before closing (0 to 300).
    shutdown_timeout_secs: u64 = "REDAUTH_SHUTDOWN_TIMEOUT_SECS",
    /// `<burst>/<seconds>` or `off`: login attempts per client IP.
    login_limit_per_ip: String = "REDAUTH_LOGIN_LIMIT_PER_IP",
    /// `<burst>/<seconds>` or `off`: failed password checks per account and client.
    login_failure_limit_per_account: String = "REDAUTH_LOGIN_FAILURE_LIMIT_PER_ACCOUNT",
    /// `<burst>/<seconds>` or `off`: failed password checks per account, all clients.
    login_failure_limit_per_account_total: String = "REDAUTH_LOGIN_FAILURE_LIMIT_PER_ACCOUNT_TOTAL",
    /// `<burst>/<seconds>` or `off`: wrong current passwords per login session before
    /// the session ends.
    password_failure_limit_per_session: String = "REDAUTH_PASSWORD_FAILURE_LIMIT_PER_SESSION",
    /// Leading bits of an IPv6 address that identify one client (limits, bindings).
    ipv6_prefix_len: u8 = "REDAUTH_IPV6_PREFIX_LEN",
    /// `<burst>/<seconds>` or `off`: refreshes per client IP.
    refresh_limit_per_ip: String = "REDAUTH_REFRESH_LIMIT_PER_IP",
    /// Header set by a trusted reverse proxy with the client IP (`x-real-ip`, or
    /// `x-forwarded-for`, whose last entry is used). Unset: the TCP peer address.
    client_ip_header: String = "REDAUTH_CLIENT_IP_HEADER",
    /// Comma-separated origins allowed to call with credentials (CORS, CSRF).
    allowed_origins: String = "REDAUTH_ALLOWED_ORIGINS",
    /// Send HSTS. Default: on when cookies are `Secure` (i.e. served over HTTPS).
    hsts: bool = "REDAUTH_HSTS",
    /// Shared with the web app in front of redauth (>= 32 bytes): its requests carry
    /// it, and only they may forward the browser's address and user agent and skip
    /// the CSRF guard. Unset: no caller is trusted that way.
    app_secret: Secret = "REDAUTH_APP_SECRET",
    /// Cookie sessions: `off` (default), `native` (redauth's format) or `compat`
    /// (`@ethercorps/sveltekit-redis-session` 1.x, Redis only). See docs/sessions.md.
    session_cookie_mode: SessionCookieMode = "REDAUTH_SESSION_COOKIE_MODE",
    /// What login returns once cookie sessions are on: `tokens`, `session` or `both`.
    login_issues: LoginIssues = "REDAUTH_LOGIN_ISSUES",
    session_cookie_name: String = "REDAUTH_SESSION_COOKIE_NAME",
    session_cookie_path: String = "REDAUTH_SESSION_COOKIE_PATH",
    session_cookie_domain: String = "REDAUTH_SESSION_COOKIE_DOMAIN",
    session_cookie_same_site: SameSite = "REDAUTH_SESSION_COOKIE_SAMESITE",
    session_cookie_signed: bool = "REDAUTH_SESSION_COOKIE_SIGNED",
    session_cookie_encrypted: bool = "REDAUTH_SESSION_COOKIE_ENCRYPTED",
    session_ttl_secs: i64 = "REDAUTH_SESSION_TTL_SECS",
    session_renew: bool = "REDAUTH_SESSION_RENEW",
    session_renew_before_secs: i64 = "REDAUTH_SESSION_RENEW_BEFORE_SECS",
    /// How long a node serves a cookie session from memory before reading it again.
    session_cache_secs: i64 = "REDAUTH_SESSION_CACHE_SECS",
    /// Carry the data of an anonymous cookie session into the session a login makes
    /// (off by default: a planted anonymous session must not reach a victim's).
    session_carry_anonymous_data: bool = "REDAUTH_SESSION_CARRY_ANONYMOUS_DATA",
    /// Native: optional (default: derived from the JWT secret). Compat: the library's
    /// `secret`, shared with the SvelteKit app.
    session_secret: Secret = "REDAUTH_SESSION_SECRET",
    session_compat_prefix: String = "REDAUTH_SESSION_COMPAT_PREFIX",
    session_compat_user_prefix: String = "REDAUTH_SESSION_COMPAT_USER_PREFIX",
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One flat JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(()),
        }
    }
}

/// Environment values for booleans accept `true/false/1/0/yes/no`.
trait ParseSetting: Sized {
    fn parse_setting(s: &str) -> Option<Self>;
}

macro_rules! from_str_setting {
    ($($t:ty),*) => { $( impl ParseSetting for $t {
        fn parse_setting(s: &str) -> Option<Self> { s.parse().ok() }
    } )* };
}
from_str_setting!(
    String,
    Secret,
    PathBuf,
    u8,
    u16,
    u32,
    u64,
    i64,
    usize,
    LogFormat,
    SessionCookieMode,
    LoginIssues,
    SameSite
);

impl ParseSetting for bool {
    fn parse_setting(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }
}

fn parse_value<T: ParseSetting>(name: &str, raw: Option<String>) -> Result<Option<T>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(s) => T::parse_setting(s.trim())
            .map(Some)
            .ok_or_else(|| ConfigError(format!("{name} has an invalid value"))),
    }
}

impl Settings {
    /// The three layers merged: file < environment < flags.
    pub fn layered(
        file: Option<&std::path::Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: Settings,
    ) -> Result<Settings, ConfigError> {
        let base = match file {
            Some(path) => Settings::from_toml_file(path)?,
            None => Settings::default(),
        };
        Ok(base.overlay(Settings::from_env(env)?).overlay(flags))
    }

    pub fn from_toml_file(path: &std::path::Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Settings::from_toml(&text)
            .map_err(|e| ConfigError(format!("config file {}{}", path.display(), e.0)))
    }

    /// Parses a TOML config; an error is `, line L, column C: <what>` (one line), the
    /// place from the parser's span, so a typo in a long file is found at once.
    fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let what = unknown_key_message(e.message())
                .unwrap_or_else(|| e.message().trim().replace('\n', " "));
            match e.span().map(|span| line_and_column(text, span.start)) {
                Some((line, column)) => {
                    ConfigError(format!(", line {line}, column {column}: {what}"))
                }
                None => ConfigError(format!(": {what}")),
            }
        })
    }
}

/// serde's "unknown field `x`, expected one of" lists all 60-odd keys; name the key and
/// the one it probably meant instead.
fn unknown_key_message(message: &str) -> Option<String> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let known = Settings::NAMES.iter().map(|(key, _)| *key);
    Some(match closest(key, known) {
        Some(meant) => format!("unknown setting `{key}`; did you mean `{meant}`?"),
        None => format!("unknown setting `{key}` (the README's configuration table lists them)"),
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count());
    (before.matches('\n').count() + 1, column + 1)
}

/// An environment variable named like a redauth setting (`REDAUTH_…`) that is none:
/// without a warning, a misspelt one is silently ignored and its default used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSetting {
    pub name: String,
    /// The real setting it most likely meant, when one is close.
    pub did_you_mean: Option<&'static str>,
}

impl std::fmt::Display for UnknownSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not a redauth setting and is ignored", self.name)?;
        match self.did_you_mean {
            Some(known) => write!(f, "; did you mean {known}?"),
            None => Ok(()),
        }
    }
}

/// The `REDAUTH_*` names among `names` that no setting reads, sorted, each with the
/// closest real environment name (any setting's, so `REDAUTH_JWT_SECRET` suggests
/// `JWT_SECRET`) when it is within a few typos.
pub fn unknown_env_settings(names: impl IntoIterator<Item = String>) -> Vec<UnknownSetting> {
    let known = || Settings::NAMES.iter().map(|(_, env)| *env);
    let mut unknown: Vec<UnknownSetting> = names
        .into_iter()
        .filter(|n| n.starts_with("REDAUTH_") && !known().any(|k| k == n))
        .map(|name| {
            let unprefixed = name.trim_start_matches("REDAUTH_");
            let did_you_mean = known()
                .find(|k| *k == unprefixed)
                .or_else(|| closest(&name, known()));
            UnknownSetting { name, did_you_mean }
        })
        .collect();
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    unknown
}

/// The candidate nearest to `name`, if within [`MAX_TYPOS`].
fn closest(name: &str, candidates: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, _)| *distance <= MAX_TYPOS)
        .min()
        .map(|(_, c)| c)
}

/// Edits (insertions, deletions, substitutions, swaps of neighbours) up to which an
/// unknown name is taken for a typo of a real one: a dropped, doubled or swapped letter
/// or three, while a name for something else (`REDAUTH_EMBEDDED_PROBE_DIR`) gets no
/// suggestion. The closest real name wins; of equally close ones, the first by name.
const MAX_TYPOS: usize = 3;

/// Which store to run on.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis(redauth_redis::RedisConfig),
    /// No Redis configured: the embedded single-node store in this directory.
    Embedded {
        data_dir: PathBuf,
    },
}

/// Where the JWT secrets come from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Single(Secret),
    Pair {
        access: Secret,
        refresh: Secret,
    },
    /// None configured in embedded mode: generated on first start and kept in the
    /// data directory.
    GeneratedInDataDir,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub secrets: SecretSource,
    /// Issuer, audience, lifetime and leeway of access tokens.
    pub access: AccessTokenConfig,
    pub sessions: SessionPolicy,
    pub cache_capacity: u64,
    pub cache_max_age_secs: i64,
    pub cookie_secure: bool,
    pub refresh_cookie_name: String,
    pub password_policy: PasswordPolicy,
    pub argon2: Argon2Params,
    pub hash_concurrency: usize,
    pub hash_queue: redauth_core::password::HashQueue,
    pub log_format: LogFormat,
    pub limits: BruteForceLimits,
    pub client_ip_header: Option<axum::http::HeaderName>,
    pub allowed_origins: Vec<String>,
    pub hsts: bool,
    /// See [`redauth_axum::HttpConfig::rate_limited_delay`].
    pub rate_limited_delay: Duration,
    /// `REDAUTH_APP_SECRET`, see [`redauth_axum::trusted_app`].
    pub app_secret: Option<Secret>,
    /// `None` when cookie sessions are off.
    pub session_cookies: Option<CookieSessionConfig>,
    pub connections: ConnectionLimits,
}

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl Config {
    /// Merges file < environment < flags and validates the result.
    pub fn load(
        file: Option<&std::path::Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: Settings,
    ) -> Result<Config, ConfigError> {
        Config::resolve(Settings::layered(file, env, flags)?)
    }

    pub fn resolve(s: Settings) -> Result<Config, ConfigError> {
        let connections = resolve_connection_limits(&s)?;
        let listen_raw = s.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_raw.parse().map_err(|_| {
            err(format!(
                "REDAUTH_LISTEN (listen) is not an address like 127.0.0.1:8080: {listen_raw}"
            ))
        })?;
        let key_prefix = s.key_prefix.unwrap_or_else(|| "redauth:".into());
        if key_prefix.is_empty()
            || key_prefix.len() > 64
            || key_prefix.contains(char::is_whitespace)
        {
            return Err(err(
                "REDAUTH_KEY_PREFIX (key_prefix) must be 1 to 64 characters without spaces",
            ));
        }
        let store = resolve_store(
            &s.redis_url,
            &s.redis_host,
            s.redis_port,
            &s.redis_username,
            &s.redis_password,
            s.redis_tls,
            s.redis_ca_file,
            &key_prefix,
            s.data_dir,
        )?;
        let secrets = resolve_secrets(
            s.jwt_secret,
            s.jwt_access_secret,
            s.jwt_refresh_secret,
            &store,
        )?;

        // Every default below comes from the core type it configures.
        let access_defaults = AccessTokenConfig::default();
        let session_defaults = SessionPolicy::default();
        let access_ttl_secs = positive(
            "REDAUTH_ACCESS_TTL_SECS (access_ttl_secs)",
            s.access_ttl_secs,
            access_defaults.ttl_secs,
        )?;
        let absolute = positive(
            "REDAUTH_REFRESH_TTL_SECS (refresh_ttl_secs)",
            s.refresh_ttl_secs,
            session_defaults.absolute_ttl_secs,
        )?;
        let idle = positive(
            "REDAUTH_IDLE_TTL_SECS (idle_ttl_secs)",
            s.idle_ttl_secs,
            session_defaults.idle_ttl_secs.min(absolute),
        )?;
        if idle > absolute {
            return Err(err(
                "REDAUTH_IDLE_TTL_SECS (idle_ttl_secs) must not exceed REDAUTH_REFRESH_TTL_SECS",
            ));
        }
        if access_ttl_secs > absolute {
            return Err(err(
                "REDAUTH_ACCESS_TTL_SECS (access_ttl_secs) must not exceed REDAUTH_REFRESH_TTL_SECS",
            ));
        }
        let access_leeway_secs = within(
            "REDAUTH_ACCESS_LEEWAY_SECS (access_leeway_secs)",
            s.access_leeway_secs,
            access_defaults.leeway_secs,
            0..=60,
        )?;
        let grace = within(
            "REDAUTH_REFRESH_REUSE_GRACE_SECS (refresh_reuse_grace_secs)",
            s.refresh_reuse_grace_secs,
            session_defaults.reuse_grace_secs,
            0..=60,
        )?;
        let max_sessions_per_user = within(
            "REDAUTH_MAX_SESSIONS_PER_USER (max_sessions_per_user)",
            s.max_sessions_per_user,
            session_defaults.max_sessions_per_user,
            1..=redauth_core::store::MAX_SESSIONS_PER_USER_LIMIT,
        )?;
        let cache_capacity = s
            .cache_capacity
            .unwrap_or(redauth_core::cache::DEFAULT_CAPACITY);
        if cache_capacity == 0 {
            return Err(err(
                "REDAUTH_CACHE_CAPACITY (cache_capacity) must be at least 1",
            ));
        }
        let cache_max_age_secs = within(
            "REDAUTH_CACHE_MAX_AGE_SECS (cache_max_age_secs)",
            s.cache_max_age_secs,
            redauth_core::cache::DEFAULT_MAX_AGE_SECS,
            1..=3600,
        )?;
        let password_defaults = PasswordPolicy::default();
        let password_policy = PasswordPolicy {
            min_chars: s.password_min_chars.unwrap_or(password_defaults.min_chars),
            max_chars: s.password_max_chars.unwrap_or(password_defaults.max_chars),
        };
        if password_policy.min_chars < 8
            || password_policy.min_chars > password_policy.max_chars
            || password_policy.max_chars > 1024
        {
            return Err(err(
                "REDAUTH_PASSWORD_MIN_CHARS / REDAUTH_PASSWORD_MAX_CHARS must satisfy 8 <= min <= max <= 1024",
            ));
        }
        let defaults = Argon2Params::default();
        let argon2 = Argon2Params {
            memory_kib: s.argon2_memory_kib.unwrap_or(defaults.memory_kib),
            iterations: s.argon2_iterations.unwrap_or(defaults.iterations),
            parallelism: s.argon2_parallelism.unwrap_or(defaults.parallelism),
        };
        if argon2.iterations == 0
            || argon2.parallelism == 0
            || argon2.memory_kib < 8 * argon2.parallelism
        {
            return Err(err(
                "REDAUTH_ARGON2_* : iterations and parallelism must be >= 1 and memory_kib >= 8 x parallelism",
            ));
        }
        let hash_concurrency = s
            .hash_concurrency
            .unwrap_or_else(redauth_core::password::default_hash_concurrency);
        if hash_concurrency == 0 {
            return Err(err(
                "REDAUTH_HASH_CONCURRENCY (hash_concurrency) must be at least 1",
            ));
        }
        let queue_defaults = redauth_core::password::HashQueue::default();
        let hash_queue = redauth_core::password::HashQueue {
            max_per_client: match s.hash_queue_per_client {
                None => queue_defaults.max_per_client,
                Some(n) if n >= 1 => n,
                Some(_) => {
                    return Err(err(
                        "REDAUTH_HASH_QUEUE_PER_CLIENT (hash_queue_per_client) must be at least 1",
                    ));
                }
            },
            max_waiting: s.hash_queue_max.unwrap_or(queue_defaults.max_waiting),
            max_wait: match s.hash_queue_timeout_ms {
                None => queue_defaults.max_wait,
                Some(ms @ 1..=60_000) => std::time::Duration::from_millis(ms),
                Some(_) => {
                    return Err(err(
                        "REDAUTH_HASH_QUEUE_TIMEOUT_MS (hash_queue_timeout_ms) must be 1 to 60000",
                    ));
                }
            },
        };
        // `__Secure-`: browsers accept a cookie of that name only over HTTPS with
        // `Secure`, so it cannot be planted from a plain-http page or (unlike a bare
        // name) be shadowed by one set without `Secure` from a sibling subdomain.
        let cookie_secure = s.cookie_secure.unwrap_or(true);
        let refresh_cookie_name = s.refresh_cookie_name.unwrap_or_else(|| {
            redauth_axum::HttpConfig::default_refresh_cookie_name(cookie_secure).into()
        });
        if !cookie_secure
            && (refresh_cookie_name.starts_with("__Secure-")
                || refresh_cookie_name.starts_with("__Host-"))
        {
            return Err(err(
                "REDAUTH_REFRESH_COOKIE_NAME (refresh_cookie_name): a __Secure- or __Host- name needs REDAUTH_COOKIE_SECURE=true (browsers drop it otherwise)",
            ));
        }
        // `__Host-` requires `Path=/`; the refresh cookie is scoped to `/api/auth`, so
        // browsers would drop it silently.
        if refresh_cookie_name.starts_with("__Host-") {
            return Err(err(
                "REDAUTH_REFRESH_COOKIE_NAME (refresh_cookie_name): a __Host- name needs Path=/, and the refresh cookie's path is /api/auth (use __Secure-)",
            ));
        }
        if refresh_cookie_name.is_empty()
            || !refresh_cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(err(
                "REDAUTH_REFRESH_COOKIE_NAME (refresh_cookie_name) may contain only letters, digits, '_' and '-'",
            ));
        }
        let defaults = BruteForceLimits::default();
        let limits = BruteForceLimits {
            login_per_ip: rate_limit(
                "REDAUTH_LOGIN_LIMIT_PER_IP (login_limit_per_ip)",
                s.login_limit_per_ip,
                defaults.login_per_ip,
            )?,
            login_failures_per_account: rate_limit(
                "REDAUTH_LOGIN_FAILURE_LIMIT_PER_ACCOUNT (login_failure_limit_per_account)",
                s.login_failure_limit_per_account,
                defaults.login_failures_per_account,
            )?,
            login_failures_per_account_total: rate_limit(
                "REDAUTH_LOGIN_FAILURE_LIMIT_PER_ACCOUNT_TOTAL (login_failure_limit_per_account_total)",
                s.login_failure_limit_per_account_total,
                defaults.login_failures_per_account_total,
            )?,
            password_failures_per_session: rate_limit(
                "REDAUTH_PASSWORD_FAILURE_LIMIT_PER_SESSION (password_failure_limit_per_session)",
                s.password_failure_limit_per_session,
                defaults.password_failures_per_session,
            )?,
            refresh_per_ip: rate_limit(
                "REDAUTH_REFRESH_LIMIT_PER_IP (refresh_limit_per_ip)",
                s.refresh_limit_per_ip,
                defaults.refresh_per_ip,
            )?,
            ipv6_prefix_len: match s.ipv6_prefix_len {
                None => defaults.ipv6_prefix_len,
                Some(len @ 16..=128) => len,
                Some(_) => {
                    return Err(err(
                        "REDAUTH_IPV6_PREFIX_LEN (ipv6_prefix_len) must be 16 to 128",
                    ));
                }
            },
        };
        let client_ip_header = match s.client_ip_header {
            None => None,
            Some(h) => Some(
                axum::http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
                    .map_err(|_| {
                        err("REDAUTH_CLIENT_IP_HEADER (client_ip_header) is not a header name")
                    })?,
            ),
        };
        let allowed_origins = parse_origins(s.allowed_origins.as_deref().unwrap_or(""))?;
        let app_secret = match s.app_secret {
            Some(secret) if secret.expose().len() < MIN_SECRET_BYTES => {
                return Err(err(format!(
                    "REDAUTH_APP_SECRET (app_secret) is too weak: at least {MIN_SECRET_BYTES} bytes"
                )));
            }
            other => other,
        };
        let session_cookies = resolve_session_cookies(
            SessionSettings {
                session_cookie_mode: s.session_cookie_mode,
                login_issues: s.login_issues,
                session_cookie_name: s.session_cookie_name,
                session_cookie_path: s.session_cookie_path,
                session_cookie_domain: s.session_cookie_domain,
                session_cookie_same_site: s.session_cookie_same_site,
                session_cookie_signed: s.session_cookie_signed,
                session_cookie_encrypted: s.session_cookie_encrypted,
                session_ttl_secs: s.session_ttl_secs,
                session_renew: s.session_renew,
                session_renew_before_secs: s.session_renew_before_secs,
                session_cache_secs: s.session_cache_secs,
                session_carry_anonymous_data: s.session_carry_anonymous_data,
                session_secret: s.session_secret,
                session_compat_prefix: s.session_compat_prefix,
                session_compat_user_prefix: s.session_compat_user_prefix,
            },
            cookie_secure,
            &store,
        )?;
        // A session-only login hands out no refresh token, so nothing idles the login
        // session out: the cookie session's own sliding expiry does that job.
        let session_only = session_cookies
            .as_ref()
            .is_some_and(|c| c.login_issues == LoginIssues::Session);
        let idle = if session_only && s.idle_ttl_secs.is_none() {
            absolute
        } else {
            idle
        };
        let rate_limited_delay = match s.rate_limited_delay_ms {
            None => redauth_axum::DEFAULT_RATE_LIMITED_DELAY,
            Some(ms @ 0..=10_000) => Duration::from_millis(ms),
            Some(_) => {
                return Err(err(
                    "REDAUTH_RATE_LIMITED_DELAY_MS (rate_limited_delay_ms) must be 0 to 10000",
                ));
            }
        };
        Ok(Config {
            rate_limited_delay,
            connections,
            session_cookies,
            allowed_origins,
            app_secret,
            hsts: s.hsts.unwrap_or(cookie_secure),
            limits,
            client_ip_header,
            listen,
            store,
            secrets,
            access: AccessTokenConfig {
                issuer: non_empty(
                    "JWT_ISSUER (jwt_issuer)",
                    s.jwt_issuer,
                    &access_defaults.issuer,
                )?,
                audience: non_empty(
                    "JWT_AUDIENCE (jwt_audience)",
                    s.jwt_audience,
                    &access_defaults.audience,
                )?,
                ttl_secs: access_ttl_secs,
                leeway_secs: access_leeway_secs,
            },
            sessions: SessionPolicy {
                absolute_ttl_secs: absolute,
                idle_ttl_secs: idle,
                reuse_grace_secs: grace,
                max_sessions_per_user,
            },
            cache_capacity,
            cache_max_age_secs,
            cookie_secure,
            refresh_cookie_name,
            password_policy,
            argon2,
            hash_concurrency,
            hash_queue,
            log_format: s.log_format.unwrap_or(LogFormat::Text),
        })
    }
}

/// The listener's timeouts and connection cap; defaults from [`ConnectionLimits`].
fn resolve_connection_limits(s: &Settings) -> Result<ConnectionLimits, ConfigError> {
    let defaults = ConnectionLimits::default();
    let max_connections = s.max_connections.unwrap_or(defaults.max_connections);
    if !(1..=1_000_000).contains(&max_connections) {
        return Err(err(
            "REDAUTH_MAX_CONNECTIONS (max_connections) must be 1 to 1000000",
        ));
    }
    Ok(ConnectionLimits {
        header_read_timeout: seconds_in(
            "REDAUTH_HEADER_READ_TIMEOUT_SECS (header_read_timeout_secs)",
            s.header_read_timeout_secs,
            defaults.header_read_timeout,
            1..=300,
        )?,
        idle_timeout: seconds_in(
            "REDAUTH_IDLE_TIMEOUT_SECS (idle_timeout_secs)",
            s.idle_timeout_secs,
            defaults.idle_timeout,
            1..=3600,
        )?,
        request_timeout: seconds_in(
            "REDAUTH_REQUEST_TIMEOUT_SECS (request_timeout_secs)",
            s.request_timeout_secs,
            defaults.request_timeout,
            1..=600,
        )?,
        max_connections,
        shutdown_timeout: seconds_in(
            "REDAUTH_SHUTDOWN_TIMEOUT_SECS (shutdown_timeout_secs)",
            s.shutdown_timeout_secs,
            defaults.shutdown_timeout,
            0..=300,
        )?,
    })
}

fn seconds_in(
    name: &str,
    v: Option<u64>,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(secs) if range.contains(&secs) => Ok(Duration::from_secs(secs)),
        Some(_) => Err(err(format!(
            "{name} must be {} to {} seconds",
            range.start(),
            range.end()
        ))),
    }
}

/// `https://host[:port]` entries, exactly as browsers send them in `Origin`.
fn parse_origins(list: &str) -> Result<Vec<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && !o.trim_end_matches('/').ends_with("://")
                && !o.ends_with('/')
                && o.split_once("://").is_some_and(|(_, rest)| !rest.contains('/') && !rest.contains('*'));
            if ok {
                Ok(o.to_owned())
            } else {
                Err(err(format!(
                    "REDAUTH_ALLOWED_ORIGINS (allowed_origins): {o} is not an origin like https://app.example.com (no path, no wildcard)"
                )))
            }
        })
        .collect()
}

/// `<burst>/<seconds>` (e.g. `10/60`: 10 at once, then one per minute) or `off`.
fn rate_limit(
    name: &str,
    v: Option<String>,
    default: Option<RateLimit>,
) -> Result<Option<RateLimit>, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    if v.trim() == "off" {
        return Ok(None);
    }
    let parsed = v
        .trim()
        .split_once('/')
        .and_then(|(b, s)| Some((b.parse::<u32>().ok()?, s.parse::<u32>().ok()?)));
    match parsed {
        Some((burst, interval_secs)) if burst > 0 && interval_secs > 0 => Ok(Some(RateLimit {
            burst,
            interval_secs,
        })),
        _ => Err(err(format!(
            "{name} must be <burst>/<seconds> with both above 0, or off"
        ))),
    }
}

/// `v`, else `default`; an error naming the setting and its range when outside it, so
/// the range is written once, in the call.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    v: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError> {
    let v = v.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(err(format!(
            "{name} must be {} to {}",
            range.start(),
            range.end()
        )))
    }
}

fn positive(name: &str, v: Option<i64>, default: i64) -> Result<i64, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) if v > 0 => Ok(v),
        Some(_) => Err(err(format!("{name} must be a positive number of seconds"))),
    }
}

fn non_empty(name: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    match v {
        None => Ok(default.to_owned()),
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(err(format!("{name} must not be empty"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn resolve_store(
    url: &Option<Secret>,
    host: &Option<String>,
    port: Option<u16>,
    username: &Option<String>,
    password: &Option<Secret>,
    tls: Option<bool>,
    ca_file: Option<PathBuf>,
    key_prefix: &str,
    data_dir: Option<PathBuf>,
) -> Result<StoreConfig, ConfigError> {
    let url = match (url, host) {
        (Some(_), Some(_)) => {
            return Err(err(
                "set either REDIS_URL or REDIS_HOST/REDIS_PORT, not both",
            ));
        }
        (Some(url), None) => {
            if port.is_some() || username.is_some() || password.is_some() || tls.is_some() {
                return Err(err(
                    "REDIS_URL already says port, user, password and TLS; do not combine it with REDIS_PORT/REDIS_USERNAME/REDIS_PASSWORD/REDIS_TLS",
                ));
            }
            let u = url.expose();
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                return Err(err(
                    "REDIS_URL (redis_url) must start with redis:// or rediss://",
                ));
            }
            url.clone()
        }
        (None, Some(host)) => {
            if host.is_empty() || host.contains(['/', '@', ' ']) {
                return Err(err(
                    "REDIS_HOST (redis_host) must be a host name or address",
                ));
            }
            let scheme = if tls.unwrap_or(false) {
                "rediss"
            } else {
                "redis"
            };
            let auth = match (username, password) {
                (Some(u), Some(p)) => {
                    format!("{}:{}@", userinfo_escape(u), userinfo_escape(p.expose()))
                }
                (None, Some(p)) => format!(":{}@", userinfo_escape(p.expose())),
                (Some(_), None) => {
                    return Err(err("REDIS_USERNAME is set but REDIS_PASSWORD is not"));
                }
                (None, None) => String::new(),
            };
            Secret::new(format!("{scheme}://{auth}{host}:{}/", port.unwrap_or(6379)))
        }
        (None, None) => {
            if port.is_some()
                || username.is_some()
                || password.is_some()
                || tls.is_some()
                || ca_file.is_some()
            {
                return Err(err(
                    "REDIS_PORT/REDIS_USERNAME/REDIS_PASSWORD/REDIS_TLS are set but REDIS_HOST is not",
                ));
            }
            return Ok(StoreConfig::Embedded {
                data_dir: data_dir.unwrap_or_else(|| PathBuf::from("./data")),
            });
        }
    };
    if ca_file.is_some() && !url.expose().starts_with("rediss://") {
        return Err(err(
            "REDIS_CA_FILE (redis_ca_file) needs TLS: use rediss:// or REDIS_TLS=true",
        ));
    }
    let mut redis = redauth_redis::RedisConfig::new(url.expose(), key_prefix);
    redis.ca_file = ca_file;
    Ok(StoreConfig::Redis(redis))
}

/// Percent-encodes everything but unreserved characters, for the user-info part of a URL.
fn userinfo_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn resolve_secrets(
    single: Option<Secret>,
    access: Option<Secret>,
    refresh: Option<Secret>,
    store: &StoreConfig,
) -> Result<SecretSource, ConfigError> {
    let strong = |name: &str, s: &Secret| {
        let n = s.expose().len();
        if n < MIN_SECRET_BYTES {
            Err(err(format!(
                "{name} is too weak: HS256 needs at least {MIN_SECRET_BYTES} bytes, got {n}"
            )))
        } else {
            Ok(())
        }
    };
    match (single, access, refresh) {
        (Some(s), None, None) => {
            strong("JWT_SECRET", &s)?;
            Ok(SecretSource::Single(s))
        }
        (None, Some(a), Some(r)) => {
            strong("JWT_ACCESS_SECRET", &a)?;
            strong("JWT_REFRESH_SECRET", &r)?;
            if a == r {
                return Err(err(
                    "JWT_ACCESS_SECRET and JWT_REFRESH_SECRET must differ (or set only JWT_SECRET)",
                ));
            }
            Ok(SecretSource::Pair {
                access: a,
                refresh: r,
            })
        }
        (Some(_), _, _) => Err(err(
            "set either JWT_SECRET or JWT_ACCESS_SECRET + JWT_REFRESH_SECRET, not both",
        )),
        (None, Some(_), None) => Err(err(
            "JWT_ACCESS_SECRET is set but JWT_REFRESH_SECRET is not",
        )),
        (None, None, Some(_)) => Err(err(
            "JWT_REFRESH_SECRET is set but JWT_ACCESS_SECRET is not",
        )),
        (None, None, None) => match store {
            StoreConfig::Embedded { .. } => Ok(SecretSource::GeneratedInDataDir),
            StoreConfig::Redis(_) => Err(err(
                "JWT_SECRET is not set: with Redis a secret of at least 32 bytes is required (e.g. `openssl rand -base64 48`)",
            )),
        },
    }
}

/// The native session cookie's name, before any `__Host-` prefix.
const NATIVE_SESSION_COOKIE: &str = "redauth_session";

/// Which cookie-session format the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionCookieMode {
    Off,
    Native,
    Compat,
}

impl FromStr for SessionCookieMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "off" => Ok(Self::Off),
            "native" => Ok(Self::Native),
            "compat" => Ok(Self::Compat),
            _ => Err(()),
        }
    }
}

/// The cookie-session part of [`Settings`], moved out for [`resolve_session_cookies`].
struct SessionSettings {
    session_cookie_mode: Option<SessionCookieMode>,
    login_issues: Option<LoginIssues>,
    session_cookie_name: Option<String>,
    session_cookie_path: Option<String>,
    session_cookie_domain: Option<String>,
    session_cookie_same_site: Option<SameSite>,
    session_cookie_signed: Option<bool>,
    session_cookie_encrypted: Option<bool>,
    session_ttl_secs: Option<i64>,
    session_renew: Option<bool>,
    session_renew_before_secs: Option<i64>,
    session_cache_secs: Option<i64>,
    session_carry_anonymous_data: Option<bool>,
    session_secret: Option<Secret>,
    session_compat_prefix: Option<String>,
    session_compat_user_prefix: Option<String>,
}

fn resolve_session_cookies(
    mut s: SessionSettings,
    cookie_secure: bool,
    store: &StoreConfig,
) -> Result<Option<CookieSessionConfig>, ConfigError> {
    let mode = s.session_cookie_mode.unwrap_or(SessionCookieMode::Off);
    if mode == SessionCookieMode::Off {
        let stray = [
            ("REDAUTH_LOGIN_ISSUES", s.login_issues.is_some()),
            (
                "REDAUTH_SESSION_COOKIE_NAME",
                s.session_cookie_name.is_some(),
            ),
            (
                "REDAUTH_SESSION_COOKIE_PATH",
                s.session_cookie_path.is_some(),
            ),
            (
                "REDAUTH_SESSION_COOKIE_DOMAIN",
                s.session_cookie_domain.is_some(),
            ),
            (
                "REDAUTH_SESSION_COOKIE_SAMESITE",
                s.session_cookie_same_site.is_some(),
            ),
            (
                "REDAUTH_SESSION_COOKIE_SIGNED",
                s.session_cookie_signed.is_some(),
            ),
            (
                "REDAUTH_SESSION_COOKIE_ENCRYPTED",
                s.session_cookie_encrypted.is_some(),
            ),
            ("REDAUTH_SESSION_TTL_SECS", s.session_ttl_secs.is_some()),
            ("REDAUTH_SESSION_RENEW", s.session_renew.is_some()),
            (
                "REDAUTH_SESSION_RENEW_BEFORE_SECS",
                s.session_renew_before_secs.is_some(),
            ),
            ("REDAUTH_SESSION_CACHE_SECS", s.session_cache_secs.is_some()),
            (
                "REDAUTH_SESSION_CARRY_ANONYMOUS_DATA",
                s.session_carry_anonymous_data.is_some(),
            ),
            ("REDAUTH_SESSION_SECRET", s.session_secret.is_some()),
            (
                "REDAUTH_SESSION_COMPAT_PREFIX",
                s.session_compat_prefix.is_some(),
            ),
            (
                "REDAUTH_SESSION_COMPAT_USER_PREFIX",
                s.session_compat_user_prefix.is_some(),
            ),
        ];
        if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(err(format!(
                "{name} is set but REDAUTH_SESSION_COOKIE_MODE (session_cookie_mode) is off"
            )));
        }
        return Ok(None);
    }
    let compat = mode == SessionCookieMode::Compat;
    if compat && matches!(store, StoreConfig::Embedded { .. }) {
        return Err(err(
            "REDAUTH_SESSION_COOKIE_MODE=compat shares keys with a SvelteKit app in Redis: set REDIS_URL",
        ));
    }
    let secret = s.session_secret.take();
    match (&secret, compat) {
        (Some(secret), _) if secret.expose().len() < MIN_SECRET_BYTES => {
            return Err(err(format!(
                "REDAUTH_SESSION_SECRET (session_secret) is too weak: at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        (None, true) => {
            return Err(err(
                "REDAUTH_SESSION_SECRET (session_secret) is required in compat mode: the SvelteKit app's `secret`",
            ));
        }
        _ => {}
    }
    let encrypted = s.session_cookie_encrypted.unwrap_or(false);
    if compat && encrypted {
        return Err(err(
            "REDAUTH_SESSION_COOKIE_ENCRYPTED needs native mode: the SvelteKit library cannot read sealed cookies",
        ));
    }
    if !compat && (s.session_compat_prefix.is_some() || s.session_compat_user_prefix.is_some()) {
        return Err(err(
            "REDAUTH_SESSION_COMPAT_PREFIX / REDAUTH_SESSION_COMPAT_USER_PREFIX only apply to compat mode",
        ));
    }
    let layout = if compat {
        let prefix = |name: &str, v: Option<String>, default: &str| {
            let v = v.unwrap_or_else(|| default.to_owned());
            if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                Err(err(format!(
                    "{name} must be 1 to 128 printable characters without spaces"
                )))
            } else {
                Ok(v)
            }
        };
        CookieSessionLayout::Compat {
            session_prefix: prefix(
                "REDAUTH_SESSION_COMPAT_PREFIX (session_compat_prefix)",
                s.session_compat_prefix.take(),
                COMPAT_SESSION_PREFIX,
            )?,
            user_sessions_prefix: prefix(
                "REDAUTH_SESSION_COMPAT_USER_PREFIX (session_compat_user_prefix)",
                s.session_compat_user_prefix.take(),
                COMPAT_USER_SESSIONS_PREFIX,
            )?,
        }
    } else {
        CookieSessionLayout::Native
    };
    let path = s.session_cookie_path.take().unwrap_or_else(|| "/".into());
    let domain = s.session_cookie_domain.take();
    // The library's defaults for what both formats share; redauth's own where they
    // differ (cookie name, renewal).
    let library = CookieSessionOptions::default();
    let name = s.session_cookie_name.take().unwrap_or_else(|| {
        if compat {
            library.cookie.name.clone()
        } else if cookie_secure && path == "/" && domain.is_none() {
            CookieAttributes::host_prefixed(NATIVE_SESSION_COOKIE).name
        } else {
            NATIVE_SESSION_COOKIE.into()
        }
    });
    let cookie = CookieAttributes {
        name,
        path,
        domain,
        http_only: true,
        secure: cookie_secure,
        // Lax for redauth's own cookie: a user following a link from another site to
        // the app arrives logged in (Strict would drop the cookie on that navigation).
        // State-changing requests stay guarded by the CSRF check. Compat keeps the
        // library's Strict, so both sides set the same bytes.
        same_site: s.session_cookie_same_site.unwrap_or(if compat {
            SameSite::Strict
        } else {
            SameSite::Lax
        }),
    };
    cookie.validate().map_err(|e| {
        err(format!(
            "REDAUTH_SESSION_COOKIE_* (with REDAUTH_COOKIE_SECURE): {e}"
        ))
    })?;
    let ttl_secs = positive(
        "REDAUTH_SESSION_TTL_SECS (session_ttl_secs)",
        s.session_ttl_secs,
        library.ttl_secs,
    )?;
    let renew_before_secs = positive(
        "REDAUTH_SESSION_RENEW_BEFORE_SECS (session_renew_before_secs)",
        s.session_renew_before_secs,
        library.renew_before_secs,
    )?;
    let cache_secs = s.session_cache_secs.unwrap_or(60);
    if !(0..=3600).contains(&cache_secs) {
        return Err(err(
            "REDAUTH_SESSION_CACHE_SECS (session_cache_secs) must be 0 to 3600",
        ));
    }
    Ok(Some(CookieSessionConfig {
        compat,
        login_issues: s.login_issues.unwrap_or(LoginIssues::Both),
        cookie,
        signed: s.session_cookie_signed.unwrap_or(true),
        encrypted,
        ttl_secs,
        // redauth's own sessions slide by default; compat ones keep the library's.
        renew: s
            .session_renew
            .unwrap_or(!compat || library.renew_before_expire),
        renew_before_secs,
        cache_secs,
        carry_anonymous_data: s.session_carry_anonymous_data.unwrap_or(false),
        secret,
        layout,
    }))
}

#[cfg(test)]
mod session_cookie_tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210";

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> =
            [("REDIS_URL", "redis://localhost"), ("JWT_SECRET", SECRET)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        Config::load(None, &|k| map.get(k).cloned(), Settings::default())
    }

    fn sessions(vars: &[(&str, &str)]) -> CookieSessionConfig {
        load(vars).unwrap().session_cookies.unwrap()
    }

    #[test]
    fn off_by_default_and_stray_settings_are_refused() {
        assert!(load(&[]).unwrap().session_cookies.is_none());
        let e = load(&[("REDAUTH_SESSION_TTL_SECS", "60")]).unwrap_err();
        assert!(e.0.contains("REDAUTH_SESSION_TTL_SECS is set"), "{e}");
        let e = load(&[("REDAUTH_LOGIN_ISSUES", "session")]).unwrap_err();
        assert!(e.0.contains("REDAUTH_LOGIN_ISSUES"), "{e}");
        let e = load(&[("REDAUTH_SESSION_COOKIE_MODE", "on")]).unwrap_err();
        assert!(e.0.contains("REDAUTH_SESSION_COOKIE_MODE"), "{e}");
    }

    #[test]
    fn native_defaults() {
        let c = sessions(&[("REDAUTH_SESSION_COOKIE_MODE", "native")]);
        assert!(!c.compat);
        assert_eq!(
            c.cookie,
            CookieAttributes {
                same_site: SameSite::Lax,
                ..CookieAttributes::host_prefixed("redauth_session")
            },
            "Lax: a link from another site to the app keeps the user logged in"
        );
        assert_eq!(c.login_issues, LoginIssues::Both);
        assert!(c.signed && !c.encrypted && c.renew);
        assert_eq!(
            (c.ttl_secs, c.renew_before_secs, c.cache_secs),
            (86_400, 1_800, 60)
        );
        assert!(c.secret.is_none(), "derived from the JWT secret");
        assert_eq!(c.layout, CookieSessionLayout::Native);
    }

    #[test]
    fn every_native_setting_is_read() {
        let c = sessions(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "native"),
            ("REDAUTH_LOGIN_ISSUES", "session"),
            ("REDAUTH_SESSION_COOKIE_NAME", "app_sid"),
            ("REDAUTH_SESSION_COOKIE_PATH", "/app"),
            ("REDAUTH_SESSION_COOKIE_DOMAIN", "example.com"),
            ("REDAUTH_SESSION_COOKIE_SAMESITE", "lax"),
            ("REDAUTH_SESSION_COOKIE_SIGNED", "false"),
            ("REDAUTH_SESSION_COOKIE_ENCRYPTED", "true"),
            ("REDAUTH_SESSION_TTL_SECS", "3600"),
            ("REDAUTH_SESSION_RENEW", "false"),
            ("REDAUTH_SESSION_RENEW_BEFORE_SECS", "600"),
            ("REDAUTH_SESSION_CACHE_SECS", "0"),
            ("REDAUTH_SESSION_SECRET", OTHER),
        ]);
        assert_eq!(c.login_issues, LoginIssues::Session);
        assert_eq!(c.cookie.name, "app_sid");
        assert_eq!(c.cookie.path, "/app");
        assert_eq!(c.cookie.domain.as_deref(), Some("example.com"));
        assert_eq!(c.cookie.same_site, SameSite::Lax);
        assert!(!c.signed && c.encrypted && !c.renew);
        assert_eq!(
            (c.ttl_secs, c.renew_before_secs, c.cache_secs),
            (3600, 600, 0)
        );
        assert_eq!(c.secret.unwrap().expose(), OTHER);
    }

    #[test]
    fn session_only_login_makes_the_login_session_idle_as_long_as_it_lives() {
        let c = load(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "native"),
            ("REDAUTH_LOGIN_ISSUES", "session"),
        ])
        .unwrap();
        assert_eq!(c.sessions.idle_ttl_secs, c.sessions.absolute_ttl_secs);
        let explicit = load(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "native"),
            ("REDAUTH_LOGIN_ISSUES", "session"),
            ("REDAUTH_IDLE_TTL_SECS", "600"),
        ])
        .unwrap();
        assert_eq!(explicit.sessions.idle_ttl_secs, 600);
        let both = load(&[("REDAUTH_SESSION_COOKIE_MODE", "native")]).unwrap();
        assert_eq!(both.sessions.idle_ttl_secs, 3 * 24 * 3600);
    }

    #[test]
    fn insecure_local_http_drops_the_host_prefix() {
        let c = sessions(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "native"),
            ("REDAUTH_COOKIE_SECURE", "false"),
        ]);
        assert_eq!(c.cookie.name, "redauth_session");
        assert!(!c.cookie.secure);
        let e = load(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "native"),
            ("REDAUTH_COOKIE_SECURE", "false"),
            ("REDAUTH_SESSION_COOKIE_NAME", "__Host-s"),
        ])
        .unwrap_err();
        assert!(e.0.contains("__Host-"), "{e}");
    }

    #[test]
    fn compat_defaults_are_the_librarys() {
        let c = sessions(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "compat"),
            ("REDAUTH_SESSION_SECRET", OTHER),
        ]);
        assert!(c.compat);
        assert_eq!(c.cookie, CookieAttributes::default());
        assert!(!c.renew, "the library does not renew unless asked");
        assert_eq!(c.layout, CookieSessionLayout::compat_defaults());
        let p = sessions(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "compat"),
            ("REDAUTH_SESSION_SECRET", OTHER),
            ("REDAUTH_SESSION_COMPAT_PREFIX", "app_s"),
            ("REDAUTH_SESSION_COMPAT_USER_PREFIX", "app_u"),
        ]);
        assert_eq!(
            p.layout,
            CookieSessionLayout::Compat {
                session_prefix: "app_s".into(),
                user_sessions_prefix: "app_u".into()
            }
        );
    }

    #[test]
    fn invalid_session_settings_name_the_setting() {
        let compat = ("REDAUTH_SESSION_COOKIE_MODE", "compat");
        let native = ("REDAUTH_SESSION_COOKIE_MODE", "native");
        let secret = ("REDAUTH_SESSION_SECRET", OTHER);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[compat], "REDAUTH_SESSION_SECRET"),
            (&[compat, ("REDAUTH_SESSION_SECRET", "short")], "too weak"),
            (&[native, ("REDAUTH_SESSION_SECRET", "short")], "too weak"),
            (
                &[compat, secret, ("REDAUTH_SESSION_COOKIE_ENCRYPTED", "true")],
                "ENCRYPTED",
            ),
            (
                &[native, ("REDAUTH_SESSION_COMPAT_PREFIX", "x")],
                "compat mode",
            ),
            (
                &[compat, secret, ("REDAUTH_SESSION_COMPAT_PREFIX", "a b")],
                "REDAUTH_SESSION_COMPAT_PREFIX",
            ),
            (
                &[compat, secret, ("REDAUTH_SESSION_COMPAT_USER_PREFIX", "")],
                "REDAUTH_SESSION_COMPAT_USER_PREFIX",
            ),
            (
                &[native, ("REDAUTH_SESSION_TTL_SECS", "0")],
                "REDAUTH_SESSION_TTL_SECS",
            ),
            (
                &[native, ("REDAUTH_SESSION_RENEW_BEFORE_SECS", "-1")],
                "REDAUTH_SESSION_RENEW_BEFORE_SECS",
            ),
            (
                &[native, ("REDAUTH_SESSION_CACHE_SECS", "7200")],
                "REDAUTH_SESSION_CACHE_SECS",
            ),
            (
                &[native, ("REDAUTH_SESSION_COOKIE_SAMESITE", "sometimes")],
                "REDAUTH_SESSION_COOKIE_SAMESITE",
            ),
            (
                &[native, ("REDAUTH_SESSION_COOKIE_NAME", "a;b")],
                "REDAUTH_SESSION_COOKIE_",
            ),
            (
                &[native, ("REDAUTH_SESSION_COOKIE_PATH", "app")],
                "REDAUTH_SESSION_COOKIE_",
            ),
            (
                &[native, ("REDAUTH_LOGIN_ISSUES", "cookies")],
                "REDAUTH_LOGIN_ISSUES",
            ),
            (
                &[native, ("REDAUTH_SESSION_RENEW", "maybe")],
                "REDAUTH_SESSION_RENEW",
            ),
            (
                &[native, ("REDAUTH_SESSION_COOKIE_SIGNED", "maybe")],
                "REDAUTH_SESSION_COOKIE_SIGNED",
            ),
        ];
        for (vars, name) in cases {
            let e = load(vars).unwrap_err();
            assert!(e.0.contains(name), "{vars:?}: {e}");
        }
    }

    #[test]
    fn compat_needs_redis() {
        let map: HashMap<&str, &str> = [
            ("REDAUTH_SESSION_COOKIE_MODE", "compat"),
            ("REDAUTH_SESSION_SECRET", OTHER),
        ]
        .into_iter()
        .collect();
        let e = Config::load(
            None,
            &|k| map.get(k).map(|v| v.to_string()),
            Settings::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("REDIS_URL"), "{e}");
    }

    #[test]
    fn the_session_secret_stays_out_of_debug_output() {
        let c = load(&[
            ("REDAUTH_SESSION_COOKIE_MODE", "compat"),
            ("REDAUTH_SESSION_SECRET", OTHER),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains(OTHER));
    }

    #[test]
    fn toml_spelling() {
        let s: Settings = toml::from_str(
            "session_cookie_mode = \"native\"\nlogin_issues = \"session\"\nsession_cookie_same_site = \"none\"\n",
        )
        .unwrap();
        assert_eq!(s.session_cookie_mode, Some(SessionCookieMode::Native));
        assert_eq!(s.login_issues, Some(LoginIssues::Session));
        assert_eq!(s.session_cookie_same_site, Some(SameSite::None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, &|k| map.get(k).cloned(), Settings::default())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// Issue 11, item 8: with `Secure` cookies the refresh cookie is `__Secure-`
    /// prefixed (it cannot be planted from plain http or shadowed from a sibling
    /// subdomain without `Secure`); a prefixed name without `Secure` is refused.
    #[test]
    fn the_refresh_cookie_is_secure_prefixed_when_cookies_are_secure() {
        assert_eq!(
            load(&[]).unwrap().refresh_cookie_name,
            "__Secure-redauth_refresh"
        );
        assert_eq!(
            load(&[("REDAUTH_COOKIE_SECURE", "false")])
                .unwrap()
                .refresh_cookie_name,
            "redauth_refresh"
        );
        let e = load(&[
            ("REDAUTH_COOKIE_SECURE", "false"),
            ("REDAUTH_REFRESH_COOKIE_NAME", "__Secure-mine"),
        ])
        .unwrap_err();
        assert!(e.0.contains("REDAUTH_REFRESH_COOKIE_NAME"), "{}", e.0);
        // `__Host-` needs `Path=/`, which the refresh cookie never has: browsers would
        // drop it without a word, so it is refused even with `Secure`.
        let e = load(&[("REDAUTH_REFRESH_COOKIE_NAME", "__Host-mine")]).unwrap_err();
        assert!(e.0.contains("Path=/"), "{}", e.0);
    }

    #[test]
    fn defaults_without_redis_are_embedded_with_generated_secret() {
        let c = load(&[]).unwrap();
        assert!(matches!(c.store, StoreConfig::Embedded { .. }));
        assert!(matches!(c.secrets, SecretSource::GeneratedInDataDir));
        assert_eq!(c.access.ttl_secs, 900);
        assert_eq!(c.sessions.absolute_ttl_secs, 7 * 24 * 3600);
        assert!(c.cookie_secure);
        assert_eq!(
            c.password_policy,
            PasswordPolicy {
                min_chars: 12,
                max_chars: 128
            }
        );
    }

    /// `var` defaults to `default`, takes each of `ok` and refuses each of `bad` with
    /// `message`; `read` picks the resolved value.
    fn assert_bounded(
        var: &str,
        default: &str,
        ok: &[&str],
        bad: &[&str],
        message: &str,
        read: fn(&Config) -> String,
    ) {
        assert_eq!(read(&load(&[]).unwrap()), default, "{var} default");
        for ok in ok {
            assert_eq!(read(&load(&[(var, ok)]).unwrap()), *ok, "{var}={ok}");
        }
        for bad in bad {
            assert_eq!(load(&[(var, bad)]).unwrap_err().0, message, "{var}={bad}");
        }
    }

    #[test]
    fn access_leeway_defaults_to_5_seconds_and_accepts_0_to_60() {
        assert_bounded(
            "REDAUTH_ACCESS_LEEWAY_SECS",
            "5",
            &["0", "60"],
            &["-1", "61"],
            "REDAUTH_ACCESS_LEEWAY_SECS (access_leeway_secs) must be 0 to 60",
            |c| c.access.leeway_secs.to_string(),
        );
    }

    #[test]
    fn max_sessions_per_user_defaults_to_100_and_accepts_1_to_10000() {
        assert_bounded(
            "REDAUTH_MAX_SESSIONS_PER_USER",
            "100",
            &["1", "10000"],
            &["0", "10001"],
            "REDAUTH_MAX_SESSIONS_PER_USER (max_sessions_per_user) must be 1 to 10000",
            |c| c.sessions.max_sessions_per_user.to_string(),
        );
        assert!(load(&[("REDAUTH_MAX_SESSIONS_PER_USER", "-1")]).is_err());
        let from_file: Settings = toml::from_str("max_sessions_per_user = 7").unwrap();
        assert_eq!(
            Config::resolve(from_file)
                .unwrap()
                .sessions
                .max_sessions_per_user,
            7
        );
    }

    #[test]
    fn cache_max_age_defaults_to_a_minute_and_accepts_one_second_to_an_hour() {
        assert_bounded(
            "REDAUTH_CACHE_MAX_AGE_SECS",
            "60",
            &["1", "3600"],
            &["0", "-1", "3601"],
            "REDAUTH_CACHE_MAX_AGE_SECS (cache_max_age_secs) must be 1 to 3600",
            |c| c.cache_max_age_secs.to_string(),
        );
        let from_file: Settings = toml::from_str("cache_max_age_secs = 15").unwrap();
        assert_eq!(Config::resolve(from_file).unwrap().cache_max_age_secs, 15);
    }

    #[test]
    fn connection_limits_default_and_name_the_setting_when_out_of_range() {
        assert_eq!(load(&[]).unwrap().connections, ConnectionLimits::default());
        let c = load(&[
            ("REDAUTH_HEADER_READ_TIMEOUT_SECS", "2"),
            ("REDAUTH_IDLE_TIMEOUT_SECS", "3"),
            ("REDAUTH_REQUEST_TIMEOUT_SECS", "4"),
            ("REDAUTH_MAX_CONNECTIONS", "5"),
            ("REDAUTH_SHUTDOWN_TIMEOUT_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(
            c.connections,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(4),
                max_connections: 5,
                shutdown_timeout: Duration::ZERO,
            }
        );
        let cases: &[(&str, &str, &str)] = &[
            (
                "REDAUTH_HEADER_READ_TIMEOUT_SECS",
                "0",
                "REDAUTH_HEADER_READ_TIMEOUT_SECS (header_read_timeout_secs) must be 1 to 300 seconds",
            ),
            (
                "REDAUTH_IDLE_TIMEOUT_SECS",
                "3601",
                "REDAUTH_IDLE_TIMEOUT_SECS (idle_timeout_secs) must be 1 to 3600 seconds",
            ),
            (
                "REDAUTH_REQUEST_TIMEOUT_SECS",
                "0",
                "REDAUTH_REQUEST_TIMEOUT_SECS (request_timeout_secs) must be 1 to 600 seconds",
            ),
            (
                "REDAUTH_MAX_CONNECTIONS",
                "0",
                "REDAUTH_MAX_CONNECTIONS (max_connections) must be 1 to 1000000",
            ),
            (
                "REDAUTH_SHUTDOWN_TIMEOUT_SECS",
                "301",
                "REDAUTH_SHUTDOWN_TIMEOUT_SECS (shutdown_timeout_secs) must be 0 to 300 seconds",
            ),
            (
                "REDAUTH_SHUTDOWN_TIMEOUT_SECS",
                "-1",
                "REDAUTH_SHUTDOWN_TIMEOUT_SECS (shutdown_timeout_secs) has an invalid value",
            ),
        ];
        for (var, value, message) in cases {
            let e = load(&[(var, value)]).unwrap_err();
            assert_eq!(e.0, *message, "{var}={value}");
        }
        let from_file: Settings =
            toml::from_str("header_read_timeout_secs = 4\nmax_connections = 100\n").unwrap();
        let c = Config::resolve(from_file).unwrap();
        assert_eq!(c.connections.header_read_timeout, Duration::from_secs(4));
        assert_eq!(c.connections.max_connections, 100);
    }

    #[test]
    fn redis_requires_a_strong_secret() {
        let e = load(&[("REDIS_URL", "redis://localhost:6379")]).unwrap_err();
        assert!(e.0.contains("JWT_SECRET is not set"), "{e}");
        let e = load(&[("REDIS_URL", "redis://localhost"), ("JWT_SECRET", "short")]).unwrap_err();
        assert!(
            e.0.contains("JWT_SECRET is too weak") && e.0.contains("got 5"),
            "{e}"
        );
        let c = load(&[("REDIS_URL", "redis://localhost"), ("JWT_SECRET", SECRET)]).unwrap();
        assert!(matches!(c.secrets, SecretSource::Single(_)));
    }

    #[test]
    fn secret_pair_rules() {
        let base = ("REDIS_URL", "redis://localhost");
        let other = "fedcba9876543210fedcba9876543210";
        assert!(matches!(
            load(&[
                base,
                ("JWT_ACCESS_SECRET", SECRET),
                ("JWT_REFRESH_SECRET", other)
            ])
            .unwrap()
            .secrets,
            SecretSource::Pair { .. }
        ));
        let e = load(&[base, ("JWT_ACCESS_SECRET", SECRET)]).unwrap_err();
        assert!(e.0.contains("JWT_REFRESH_SECRET is not"), "{e}");
        let e = load(&[base, ("JWT_SECRET", SECRET), ("JWT_ACCESS_SECRET", SECRET)]).unwrap_err();
        assert!(e.0.contains("not both"), "{e}");
        let e = load(&[
            base,
            ("JWT_ACCESS_SECRET", SECRET),
            ("JWT_REFRESH_SECRET", SECRET),
        ])
        .unwrap_err();
        assert!(e.0.contains("must differ"), "{e}");
    }

    #[test]
    fn redis_from_parts_escapes_credentials_and_selects_tls() {
        let c = load(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_USERNAME", "redauth"),
            ("REDIS_PASSWORD", "p@ss:w/rd"),
            ("REDIS_TLS", "true"),
            ("JWT_SECRET", SECRET),
        ])
        .unwrap();
        let StoreConfig::Redis(r) = c.store else {
            panic!()
        };
        assert_eq!(
            r.url.expose(),
            "rediss://redauth:p%40ss%3Aw%2Frd@cache.internal:6380/"
        );
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("REDAUTH_ACCESS_TTL_SECS", "soon")],
                "REDAUTH_ACCESS_TTL_SECS",
            ),
            (
                &[("REDAUTH_ACCESS_TTL_SECS", "-5")],
                "REDAUTH_ACCESS_TTL_SECS",
            ),
            (&[("REDAUTH_LISTEN", "nowhere")], "REDAUTH_LISTEN"),
            (&[("REDIS_TLS", "maybe"), ("REDIS_HOST", "x")], "REDIS_TLS"),
            (&[("REDIS_PORT", "1")], "REDIS_HOST"),
            (&[("REDIS_URL", "http://x")], "REDIS_URL"),
            (
                &[("REDAUTH_IDLE_TTL_SECS", "999999999")],
                "REDAUTH_IDLE_TTL_SECS",
            ),
            (
                &[("REDAUTH_PASSWORD_MIN_CHARS", "4")],
                "REDAUTH_PASSWORD_MIN_CHARS",
            ),
            (&[("REDAUTH_CACHE_CAPACITY", "0")], "REDAUTH_CACHE_CAPACITY"),
            (
                &[("REDAUTH_CACHE_MAX_AGE_SECS", "0")],
                "REDAUTH_CACHE_MAX_AGE_SECS",
            ),
            (
                &[("REDAUTH_CACHE_MAX_AGE_SECS", "3601")],
                "REDAUTH_CACHE_MAX_AGE_SECS",
            ),
            (
                &[("REDAUTH_CACHE_MAX_AGE_SECS", "soon")],
                "REDAUTH_CACHE_MAX_AGE_SECS",
            ),
            (&[("REDAUTH_LOG_FORMAT", "xml")], "REDAUTH_LOG_FORMAT"),
            (
                &[("REDAUTH_REFRESH_REUSE_GRACE_SECS", "3600")],
                "REDAUTH_REFRESH_REUSE_GRACE_SECS",
            ),
        ];
        for (vars, name) in cases {
            let e = load(vars).unwrap_err();
            assert!(e.0.contains(name), "{vars:?}: {e}");
            assert!(!e.0.contains('\n'));
        }
    }

    #[test]
    fn file_env_flags_precedence_and_unknown_keys() {
        let dir = std::env::temp_dir().join(format!(
            "redauth-cfg-{}",
            redauth_core::ids::random_id().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("redauth.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1111\"\naccess_ttl_secs = 60\ncache_capacity = 7\n",
        )
        .unwrap();
        let env = |k: &str| (k == "REDAUTH_ACCESS_TTL_SECS").then(|| "120".to_string());
        let flags = Settings {
            listen: Some("127.0.0.1:2222".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &env, flags).unwrap();
        assert_eq!(c.listen.port(), 2222, "flag beats file");
        assert_eq!(c.access.ttl_secs, 120, "env beats file");
        assert_eq!(c.cache_capacity, 7, "file beats default");

        std::fs::write(&file, "jwt_secrt = \"typo\"\n").unwrap();
        let e = Config::load(Some(&file), &|_| None, Settings::default()).unwrap_err();
        assert!(e.0.contains("jwt_secrt"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn toml_errors_say_where_in_characters() {
        let at = |text: &str| Settings::from_toml(text).unwrap_err().0;
        assert_eq!(
            at("jwt_issuer = \"é\"\n\tlsten = 1\n"),
            ", line 2, column 2: unknown setting `lsten`; did you mean `listen`?"
        );
        let e = at("jwt_issuer = \"ééé\" x\n");
        assert!(e.starts_with(", line 1, column 20: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn unknown_redauth_variables_are_found_with_their_likely_meaning() {
        let names = [
            "REDAUTH_LISTEN",
            "REDAUTH_LISTN",
            "REDAUTH_REDIS_URL",
            "REDAUTH_EMBEDDED_PROBE_DIR",
            "JWT_SECRT",
            "PATH",
        ];
        let found = unknown_env_settings(names.iter().map(|n| n.to_string()));
        let found: Vec<_> = found
            .iter()
            .map(|u| (u.name.as_str(), u.did_you_mean))
            .collect();
        assert_eq!(
            found,
            [
                ("REDAUTH_EMBEDDED_PROBE_DIR", None),
                ("REDAUTH_LISTN", Some("REDAUTH_LISTEN")),
                ("REDAUTH_REDIS_URL", Some("REDIS_URL")),
            ]
        );
    }

    #[test]
    fn app_secret_is_optional_and_at_least_32_bytes() {
        assert!(load(&[]).unwrap().app_secret.is_none());
        let c = load(&[("REDAUTH_APP_SECRET", "0123456789abcdef0123456789abcdef")]).unwrap();
        assert_eq!(
            c.app_secret.as_ref().map(Secret::expose),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let e = load(&[("REDAUTH_APP_SECRET", "short")]).unwrap_err();
        assert!(e.0.contains("REDAUTH_APP_SECRET"), "{e}");
    }

    #[test]
    fn allowed_origins_and_hsts() {
        let c = load(&[(
            "REDAUTH_ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:5173",
        )])
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            vec!["https://app.example.com", "http://localhost:5173"]
        );
        assert!(c.hsts, "on by default with Secure cookies");
        assert!(!load(&[("REDAUTH_COOKIE_SECURE", "false")]).unwrap().hsts);
        for bad in [
            "*",
            "https://*.example.com",
            "https://app.example.com/",
            "app.example.com",
            "https://a.com/path",
        ] {
            let e = load(&[("REDAUTH_ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert!(e.0.contains("REDAUTH_ALLOWED_ORIGINS"), "{bad}: {e}");
        }
    }

    #[test]
    fn rate_limits_parse_or_name_the_setting() {
        let c = load(&[
            ("REDAUTH_LOGIN_LIMIT_PER_IP", "5/30"),
            ("REDAUTH_REFRESH_LIMIT_PER_IP", "off"),
        ])
        .unwrap();
        assert_eq!(
            c.limits.login_per_ip,
            Some(RateLimit {
                burst: 5,
                interval_secs: 30
            })
        );
        assert_eq!(c.limits.refresh_per_ip, None);
        assert_eq!(
            c.limits.login_failures_per_account,
            BruteForceLimits::default().login_failures_per_account
        );
        for bad in ["5", "0/10", "5/0", "a/b", "5/10/2"] {
            let e = load(&[("REDAUTH_LOGIN_FAILURE_LIMIT_PER_ACCOUNT", bad)]).unwrap_err();
            assert!(
                e.0.contains("REDAUTH_LOGIN_FAILURE_LIMIT_PER_ACCOUNT"),
                "{bad}: {e}"
            );
        }
        let c = load(&[("REDAUTH_CLIENT_IP_HEADER", "X-Forwarded-For")]).unwrap();
        assert_eq!(c.client_ip_header.unwrap().as_str(), "x-forwarded-for");
        assert!(load(&[("REDAUTH_CLIENT_IP_HEADER", "bad header")]).is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = load(&[
            ("REDIS_URL", "redis://:hunter2pass@localhost"),
            ("JWT_SECRET", SECRET),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains(SECRET) && !dbg.contains("hunter2pass"),
            "{dbg}"
        );
    }
}
