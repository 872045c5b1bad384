//! The `redauth` command line: `serve` (the default) and the admin commands. Admin
//! commands talk to the store directly through the same service the server uses.
//! Passwords are read from a terminal prompt or from stdin, never from arguments
//! (arguments are visible to every user of the machine in `ps`).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use redauth_core::service::NewUser;
use redauth_core::{AuthError, AuthService, Role, Secret, SystemClock};

use crate::app::{self, StoreKind};
use crate::config::{Config, LogFormat, Settings};

/// `redauth` with no subcommand serves, so the serve flags are accepted both before a
/// subcommand and after `serve` (`redauth --listen …` and `redauth serve --listen …`).
#[derive(Debug, Parser)]
#[command(
    name = "redauth",
    version,
    about = "Redis-backed authentication and session service",
    long_about = "Redis-backed authentication and session service.\n\n\
        With no command it runs the HTTP server (`redauth serve`). Settings come from a TOML \
        file (--config), then environment variables, then flags; see the README's \
        configuration table."
)]
pub struct Cli {
    /// TOML configuration file (environment variables and flags override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Redis URL (overrides REDIS_URL). Prefer the environment when it holds a password.
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Data directory of the embedded store (overrides REDAUTH_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve(ServeArgs),
    /// Create, inspect, disable and delete users.
    #[command(subcommand)]
    User(UserCommand),
    /// Define roles and their permissions.
    #[command(subcommand)]
    Role(RoleCommand),
    /// List and revoke a user's login sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 (overrides REDAUTH_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log line format (overrides REDAUTH_LOG_FORMAT).
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

impl ServeArgs {
    /// `self` where it has a value, else `outer` (the flags given before `serve`).
    fn or(self, outer: ServeArgs) -> ServeArgs {
        ServeArgs {
            listen: self.listen.or(outer.listen),
            log_format: self.log_format.or(outer.log_format),
        }
    }

    fn is_empty(&self) -> bool {
        self.listen.is_none() && self.log_format.is_none()
    }
}

#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from the first line of stdin instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is prompted for (or read with --password-stdin).
    Add {
        /// Login name: unique up to case and look-alike characters.
        username: String,
        /// Contact address, stored with the user.
        #[arg(long)]
        email: String,
        /// Role to grant (repeatable); it must already exist (`redauth role set`).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List every user with id, email, status and roles.
    List,
    /// Show one user and how many live sessions they have.
    Show {
        /// The user's login name.
        username: String,
    },
    /// Set a new password (ends all of the user's sessions).
    Passwd {
        /// The user's login name.
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disable a user and end all their sessions.
    Disable {
        /// The user's login name.
        username: String,
    },
    /// Allow a disabled user to log in again.
    Enable {
        /// The user's login name.
        username: String,
    },
    /// Delete a user and all their sessions.
    Delete {
        /// The user's login name.
        username: String,
    },
    /// Add a role to a user.
    Grant {
        /// The user's login name.
        username: String,
        /// A role defined with `redauth role set`.
        role: String,
    },
    /// Remove a role from a user (refused if it would leave no administrator).
    Revoke {
        /// The user's login name.
        username: String,
        /// The role to remove.
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Define or redefine a role with its permissions.
    Set {
        /// Role name, e.g. admin.
        name: String,
        /// Permissions the role grants, e.g. redauth:admin (the admin API's).
        permissions: Vec<String>,
    },
    /// List every role with its permissions.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List a user's live login sessions (times in UTC, RFC 3339).
    List {
        /// The user's login name.
        username: String,
    },
    /// End one login session of a user.
    Revoke {
        /// The user's login name.
        username: String,
        /// The session id, as `sessions list` shows it. Session ids are base64url and
        /// may start with `-`.
        #[arg(allow_hyphen_values = true)]
        session_id: String,
    },
    /// End every login session of a user (log out everywhere).
    RevokeAll {
        /// The user's login name.
        username: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Start(#[from] app::StartError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Usage(String),
    /// Names the address: "address in use" alone does not say which setting to change.
    #[error("cannot listen on {addr} (REDAUTH_LISTEN, --listen): {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Cli {
    fn flags(&self) -> Settings {
        Settings {
            redis_url: self.redis_url.as_deref().map(Secret::new),
            data_dir: self.data_dir.clone(),
            ..Settings::default()
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let env = |k: &str| std::env::var(k).ok();
    let mut flags = cli.flags();
    let serve_args = match cli.command {
        None => cli.serve,
        Some(Command::Serve(args)) => args.or(cli.serve),
        Some(admin) => {
            if !cli.serve.is_empty() {
                return Err(CliError::Usage(
                    "--listen and --log-format only apply to serve".into(),
                ));
            }
            for unknown in unknown_env_settings() {
                eprintln!("redauth: warning: {unknown}");
            }
            let mut settings = Settings::layered(cli.config.as_deref(), &env, flags)
                .map_err(app::StartError::from)?;
            // Admin commands issue no tokens, so they need no configured JWT secret.
            if settings.jwt_secret.is_none()
                && settings.jwt_access_secret.is_none()
                && settings.jwt_refresh_secret.is_none()
            {
                settings.jwt_secret = Some(Secret::new(crate::app::throwaway_secret()?));
            }
            let config = Config::resolve(settings).map_err(app::StartError::from)?;
            let built = app::build(&config, Arc::new(SystemClock)).await?;
            let stdin = std::io::stdin();
            return run_admin(
                admin,
                &built.service,
                &mut stdin.lock(),
                &mut std::io::stdout(),
            )
            .await;
        }
    };
    flags.listen = serve_args.listen;
    flags.log_format = serve_args.log_format;
    serve(Config::load(cli.config.as_deref(), &env, flags).map_err(app::StartError::from)?).await
}

/// Unknown `REDAUTH_*` names in this process's environment, as warnings.
fn unknown_env_settings() -> Vec<crate::config::UnknownSetting> {
    crate::config::unknown_env_settings(
        std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()),
    )
}

async fn serve(config: Config) -> Result<(), CliError> {
    // Held until serve returns, so queued log lines are flushed on the way out.
    let _log_writer = crate::logging::init(config.log_format);
    for unknown in unknown_env_settings() {
        tracing::warn!("{unknown}");
    }
    let built = app::build(&config, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: config.listen,
            source,
        })?;
    banner(&config, &built.store_kind, listener.local_addr()?);
    app::watch_store_until_ready(built.service.clone(), &built.store_kind);
    redauth_axum::serve::warn_if_file_limit_is_too_low(config.connections.max_connections);
    let router = redauth_axum::router(built.state);
    // Returns once the signal came and connections drained or the shutdown deadline
    // passed; then the store and the log writer are dropped as the process exits 0.
    redauth_axum::serve::serve(listener, router, config.connections, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

fn banner(config: &Config, kind: &StoreKind, addr: SocketAddr) {
    tracing::info!(%addr, "redauth listening");
    match kind {
        StoreKind::Redis => tracing::info!("store: Redis"),
        StoreKind::Embedded {
            data_dir,
            generated_secret,
        } => {
            tracing::warn!(data_dir = %data_dir.display(),
                "store: EMBEDDED single-node file database (development/single-node use). \
                 For production set REDIS_URL (or REDIS_HOST) and JWT_SECRET");
            if let Some(path) = generated_secret {
                tracing::warn!(file = %path.display(), "no JWT secret configured: using the one generated in the data directory");
            }
        }
    }
    if !config.cookie_secure {
        tracing::warn!(
            "cookies are sent without Secure: only acceptable for plain-http local development"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Reads a new password: the first line of `input` with `--password-stdin`, else a
/// terminal prompt asked twice.
fn read_password(source: &PasswordSource, input: &mut dyn BufRead) -> Result<String, CliError> {
    if source.password_stdin {
        let mut line = String::new();
        input.read_line(&mut line)?;
        let pw = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line);
        if pw.is_empty() {
            return Err(CliError::Usage("no password on stdin".into()));
        }
        return Ok(pw.to_owned());
    }
    let first = rpassword::prompt_password("New password: ").map_err(|_| {
        CliError::Usage("no terminal to prompt on; pipe the password with --password-stdin".into())
    })?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    if first != second {
        return Err(CliError::Usage("passwords do not match".into()));
    }
    Ok(first)
}

/// Runs one admin command against the service, writing human-readable output.
pub async fn run_admin(
    command: Command,
    service: &AuthService,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        Command::Serve(_) => return Err(CliError::Usage("serve is not an admin command".into())),
        Command::User(cmd) => match cmd {
            UserCommand::Add {
                username,
                email,
                roles,
                password,
            } => {
                let password = read_password(&password, input)?;
                let user = service
                    .create_user(NewUser {
                        username,
                        email,
                        password,
                        roles,
                    })
                    .await?;
                writeln!(out, "created user {} ({})", user.username, user.id)?;
            }
            UserCommand::List => {
                writeln!(
                    out,
                    "{:<22}  {:<24}  {:<30}  {:<8}  roles",
                    "id", "username", "email", "status"
                )?;
                for u in service.list_users().await? {
                    let status = if u.disabled { "disabled" } else { "active" };
                    writeln!(
                        out,
                        "{:<22}  {:<24}  {:<30}  {:<8}  {}",
                        u.id,
                        u.username,
                        u.email,
                        status,
                        u.roles.join(",")
                    )?;
                }
            }
            UserCommand::Show { username } => {
                let u = service.find_user(&username).await?;
                let sessions = service.list_all_sessions(&u.id).await?;
                writeln!(
                    out,
                    "id:        {}\nusername:  {}\nemail:     {}\nroles:     {}\ndisabled:  {}\nsessions:  {}",
                    u.id,
                    u.username,
                    u.email,
                    u.roles.join(","),
                    u.disabled,
                    sessions.len()
                )?;
            }
            UserCommand::Passwd { username, password } => {
                let u = service.find_user(&username).await?;
                let password = read_password(&password, input)?;
                service.admin_set_password(&u.id, &password).await?;
                writeln!(
                    out,
                    "password changed for {}; all sessions ended",
                    u.username
                )?;
            }
            UserCommand::Disable { username } => {
                let u = service.find_user(&username).await?;
                service.set_disabled(&u.id, true).await?;
                writeln!(out, "disabled {}; all sessions ended", u.username)?;
            }
            UserCommand::Enable { username } => {
                let u = service.find_user(&username).await?;
                service.set_disabled(&u.id, false).await?;
                writeln!(out, "enabled {}", u.username)?;
            }
            UserCommand::Delete { username } => {
                let u = service.find_user(&username).await?;
                service.delete_user(&u.id).await?;
                writeln!(out, "deleted {}", u.username)?;
            }
            UserCommand::Grant { username, role } => {
                let u = service.find_user(&username).await?;
                let u = service.grant_role(&u.id, &role).await?;
                writeln!(out, "{} now has roles: {}", u.username, u.roles.join(","))?;
            }
            UserCommand::Revoke { username, role } => {
                let u = service.find_user(&username).await?;
                let u = service.revoke_role(&u.id, &role).await?;
                writeln!(out, "{} now has roles: {}", u.username, u.roles.join(","))?;
            }
        },
        Command::Role(cmd) => match cmd {
            RoleCommand::Set { name, permissions } => {
                let role = service.put_role(Role { name, permissions }).await?;
                writeln!(out, "role {}: {}", role.name, role.permissions.join(","))?;
            }
            RoleCommand::List => {
                for r in service.list_roles().await? {
                    writeln!(out, "{:<24}  {}", r.name, r.permissions.join(","))?;
                }
            }
        },
        Command::Sessions(cmd) => match cmd {
            SessionsCommand::List { username } => {
                let u = service.find_user(&username).await?;
                writeln!(
                    out,
                    "{:<22}  {:<20}  {:<20}  {:<15}  user agent",
                    "id", "created (UTC)", "expires (UTC)", "ip"
                )?;
                for s in service.list_all_sessions(&u.id).await? {
                    writeln!(
                        out,
                        "{:<22}  {:<20}  {:<20}  {:<15}  {}",
                        s.sid,
                        crate::utc::rfc3339(s.created_at),
                        crate::utc::rfc3339(s.expires_at()),
                        s.ip.as_deref().unwrap_or("-"),
                        s.user_agent.as_deref().unwrap_or("-")
                    )?;
                }
            }
            SessionsCommand::Revoke {
                username,
                session_id,
            } => {
                let u = service.find_user(&username).await?;
                service.revoke_session(&u.id, &session_id).await?;
                writeln!(out, "revoked session {session_id}")?;
            }
            SessionsCommand::RevokeAll { username } => {
                let u = service.find_user(&username).await?;
                let n = service.revoke_all_sessions(&u.id, None).await?;
                writeln!(out, "revoked {n} session(s) of {}", u.username)?;
            }
        },
    }
    Ok(())
}
