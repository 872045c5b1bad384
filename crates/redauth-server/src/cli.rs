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

#[derive(Debug, Parser)]
#[command(
    name = "redauth",
    version,
    about = "Redis-backed authentication and session service"
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
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Inspect and revoke login sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides REDAUTH_LISTEN).
    #[arg(long)]
    pub listen: Option<String>,
    /// `text` or `json` (overrides REDAUTH_LOG_FORMAT).
    #[arg(long)]
    pub log_format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from the first line of stdin instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        username: String,
        #[arg(long)]
        email: String,
        /// Role to grant (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[command(flatten)]
        password: PasswordSource,
    },
    List,
    Show {
        username: String,
    },
    /// Set a new password (ends all of the user's sessions).
    Passwd {
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disable a user and end all their sessions.
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    /// Delete a user and all their sessions.
    Delete {
        username: String,
    },
    Grant {
        username: String,
        role: String,
    },
    Revoke {
        username: String,
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Define or redefine a role with its permissions.
    Set {
        name: String,
        permissions: Vec<String>,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    List {
        username: String,
    },
    Revoke {
        username: String,
        /// Session ids are base64url and may start with `-`.
        #[arg(allow_hyphen_values = true)]
        session_id: String,
    },
    RevokeAll {
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
    match cli.command {
        None => {
            serve(Config::load(cli.config.as_deref(), &env, flags).map_err(app::StartError::from)?)
                .await
        }
        Some(Command::Serve(args)) => {
            flags.listen = args.listen;
            flags.log_format = match args.log_format.as_deref() {
                None => None,
                Some("json") => Some(LogFormat::Json),
                Some("text") => Some(LogFormat::Text),
                Some(other) => {
                    return Err(CliError::Usage(format!(
                        "--log-format must be text or json, not {other}"
                    )));
                }
            };
            serve(Config::load(cli.config.as_deref(), &env, flags).map_err(app::StartError::from)?)
                .await
        }
        Some(admin) => {
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
            run_admin(
                admin,
                &built.service,
                &mut stdin.lock(),
                &mut std::io::stdout(),
            )
            .await
        }
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    // Held until serve returns, so queued log lines are flushed on the way out.
    let _log_writer = crate::logging::init(config.log_format);
    let built = app::build(&config, Arc::new(SystemClock)).await?;
    app::watch_store_until_ready(built.service.clone());
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    banner(&config, &built.store_kind, listener.local_addr()?);
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
    let first_admin = "redauth role set admin redauth:admin && redauth user add <name> --email <address> --role admin";
    match kind {
        StoreKind::Redis => tracing::info!(
            command = first_admin,
            "no accounts exist by default; create the first admin with"
        ),
        StoreKind::Embedded { .. } => tracing::info!(
            command = first_admin,
            "no accounts exist by default; the embedded data file is locked while the server runs, so stop it, then create the first admin with"
        ),
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
                    "{:<22}  {:>12}  {:>12}  {:<15}  user agent",
                    "id", "created", "expires", "ip"
                )?;
                for s in service.list_all_sessions(&u.id).await? {
                    writeln!(
                        out,
                        "{:<22}  {:>12}  {:>12}  {:<15}  {}",
                        s.sid,
                        s.created_at,
                        s.expires_at(),
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
