//! Builds a running service from a [`Config`]: picks the store, loads keys, and wires
//! the pieces together. Shared by `redauth serve`, the admin CLI and the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redauth_core::error::Chain;
use redauth_core::{AuthService, Clock, Secret, Store, StoreError};
use thiserror::Error;

use crate::config::{Config, SecretSource, StoreConfig};
use redauth_axum::{HttpConfig, Redauth};

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Secret(String),
}

/// What the server runs on, for the start-up banner.
#[derive(Debug, Clone)]
pub enum StoreKind {
    Redis,
    Embedded {
        data_dir: PathBuf,
        generated_secret: Option<PathBuf>,
    },
}

pub struct App {
    pub service: Arc<AuthService>,
    pub state: Redauth,
    pub store_kind: StoreKind,
}

/// The file, in the embedded data directory, that holds a generated JWT secret.
pub const GENERATED_SECRET_FILE: &str = "jwt-secret";

/// Opens the configured store and builds the service on it.
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<App, StartError> {
    let (store, store_kind): (Arc<dyn Store>, StoreKind) = match &config.store {
        StoreConfig::Redis(redis) => {
            let store = redauth_redis::RedisStore::connect(redis)
                .map_err(|e| StartError::Store(Chain(&e).to_string()))?;
            (Arc::new(store), StoreKind::Redis)
        }
        StoreConfig::Embedded { data_dir } => (
            open_embedded(data_dir, clock.clone())?,
            StoreKind::Embedded {
                data_dir: data_dir.clone(),
                generated_secret: None,
            },
        ),
    };
    build_on(config, store, store_kind, clock)
}

/// Builds the service on a store the caller opened (tests keep a typed handle).
pub fn build_on(
    config: &Config,
    store: Arc<dyn Store>,
    mut store_kind: StoreKind,
    clock: Arc<dyn Clock>,
) -> Result<App, StartError> {
    let (secret, refresh_secret) = match &config.secrets {
        SecretSource::Single(s) => (s.clone(), None),
        SecretSource::Pair { access, refresh } => (access.clone(), Some(refresh.clone())),
        SecretSource::GeneratedInDataDir => {
            let StoreKind::Embedded {
                data_dir,
                generated_secret,
            } = &mut store_kind
            else {
                return Err(StartError::Secret(
                    "a generated secret needs the embedded store".into(),
                ));
            };
            let (secret, path) = load_or_generate_secret(data_dir)?;
            *generated_secret = Some(path);
            (secret, None)
        }
    };
    // Native cookie-session keys derive from the access secret when none of their own
    // is configured (through HKDF with their own labels).
    let jwt_secret = secret.clone();
    let cookie_store = config
        .session_cookies
        .as_ref()
        .map(|c| store.cookie_session_store(&c.layout))
        .transpose()
        .map_err(|e| StartError::Store(Chain(&e).to_string()))?;
    let clock_for_cookie_sessions = clock.clone();
    let mut builder = AuthService::builder(store, secret)
        .clock(clock)
        .access_tokens(config.access.clone())
        .session_policy(config.sessions.clone())
        .password_policy(config.password_policy)
        .argon2(config.argon2)
        .hash_concurrency(config.hash_concurrency)
        .hash_queue(config.hash_queue)
        .cache_capacity(config.cache_capacity)
        .cache_max_age_secs(config.cache_max_age_secs)
        .brute_force_limits(config.limits);
    if let Some(refresh) = refresh_secret {
        builder = builder.refresh_secret(refresh);
    }
    let service = builder
        .build()
        .map_err(|e| StartError::Secret(e.to_string()))?;
    let cookie_sessions = match (&config.session_cookies, cookie_store) {
        (Some(c), Some(store)) => Some(
            redauth_axum::cookie::build(
                c,
                &service,
                store,
                clock_for_cookie_sessions,
                Some(&jwt_secret),
            )
            .map_err(|e| StartError::Secret(e.to_string()))?,
        ),
        _ => None,
    };
    let state = Redauth {
        cookie_sessions,
        revocation_feed: matches!(store_kind, StoreKind::Redis),
        service: service.clone(),
        http: Arc::new(HttpConfig {
            refresh_cookie_name: config.refresh_cookie_name.clone(),
            cookie_secure: config.cookie_secure,
            client_ip_header: config.client_ip_header.clone(),
            allowed_origins: config.allowed_origins.clone(),
            hsts: config.hsts,
            rate_limited_delay: config.rate_limited_delay,
            app_secret: config.app_secret.clone(),
        }),
    };
    Ok(App {
        service,
        state,
        store_kind,
    })
}

/// How often the embedded store deletes expired sessions. Expired sessions are
/// invisible at once; the sweep only reclaims their space.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

fn open_embedded(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StartError> {
    let store = Arc::new(
        redauth_embedded::EmbeddedStore::open(data_dir)
            .map_err(|e| StartError::Store(Chain(&e).to_string()))?,
    );
    store.spawn_sweeper(clock, SWEEP_EVERY);
    Ok(store)
}

/// A random secret for processes that issue no tokens (the admin CLI).
pub fn throwaway_secret() -> Result<String, StartError> {
    use base64::Engine as _;
    let bytes =
        redauth_core::ids::random_bytes::<48>().map_err(|e| StartError::Secret(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Reads the generated secret from the data directory, creating it (mode 0600) on
/// first start. Only used in embedded mode with no secret configured.
pub fn load_or_generate_secret(data_dir: &Path) -> Result<(Secret, PathBuf), StartError> {
    use base64::Engine as _;
    let path = data_dir.join(GENERATED_SECRET_FILE);
    let fail = |what: &str, e: std::io::Error| {
        StartError::Secret(format!("{what} {}: {e}", path.display()))
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= redauth_core::token::MIN_SECRET_BYTES => {
            return Ok((Secret::new(s.trim()), path));
        }
        Ok(_) => {
            return Err(StartError::Secret(format!(
                "{} is too short; delete it to generate a new one",
                path.display()
            )));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail("cannot read", e)),
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir).map_err(|e| fail("cannot create the directory of", e))?;
    let bytes =
        redauth_core::ids::random_bytes::<48>().map_err(|e| StartError::Secret(e.to_string()))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| fail("cannot create", e))?;
    std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(|e| fail("cannot write", e))?;
    Ok((Secret::new(secret), path))
}

/// The commands that create the first administrator.
pub const FIRST_ADMIN_COMMANDS: &str = "redauth role set admin redauth:admin && redauth user add <name> --email <address> --role admin";

/// Checks the store at start. An unreachable store is not fatal: the server starts,
/// `/readyz` answers 503, and this keeps probing with backoff until it answers. Once it
/// does, it logs whether accounts exist, and how to create the first admin only when
/// none does: that cannot be known before the store answers.
pub fn watch_store_until_ready(service: Arc<AuthService>, kind: &StoreKind) {
    let no_accounts_hint = match kind {
        StoreKind::Redis => "no accounts exist yet; create the first admin with",
        StoreKind::Embedded { .. } => {
            "no accounts exist yet; the embedded data file is locked while the server runs, so stop it, then create the first admin with"
        }
    };
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(250);
        let mut reported = false;
        loop {
            match service.ping_store().await {
                Ok(()) => {
                    if reported {
                        tracing::info!("store is reachable again");
                    }
                    report_accounts(&service, no_accounts_hint).await;
                    return;
                }
                Err(e @ (StoreError::Unavailable { .. } | StoreError::Corrupt { .. })) => {
                    if !reported {
                        tracing::error!(error = %Chain(&e), "store unreachable; /readyz answers 503 until it is back, retrying");
                        reported = true;
                    }
                }
                Err(e) => tracing::error!(error = %Chain(&e), "store check failed"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
}

async fn report_accounts(service: &AuthService, no_accounts_hint: &'static str) {
    match service.list_users().await {
        Ok(users) if users.is_empty() => {
            tracing::info!(command = FIRST_ADMIN_COMMANDS, "{no_accounts_hint}")
        }
        Ok(users) => tracing::info!(accounts = users.len(), "store holds accounts"),
        Err(e) => tracing::warn!(error = %e, "could not count the accounts"),
    }
}
