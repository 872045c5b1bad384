//! redauth's [`Store`] in one local file, for deployments that do not want to run Redis.
//!
//! The file is a [redb](https://www.redb.org) database, chosen because:
//!
//! - it is pure Rust: no C library to build, link or patch alongside redauth;
//! - it is ACID: each store operation is one serializable write transaction (redb admits
//!   one writer at a time) or one snapshot read, which gives the same atomicity the Redis
//!   store gets from running each operation as one Lua script;
//! - it is crash-safe: copy-on-write B-trees and a checksummed commit header mean a crash
//!   or power cut leaves the last committed state, never a torn one, and commits are
//!   fsynced before they return;
//! - it is a single file: backing up or moving the data is copying `redauth.redb` while
//!   redauth is stopped;
//! - it locks that file, so a second redauth process (or a second open in the same
//!   process) pointed at the same directory fails at start instead of both writing.
//!
//! The table layout is in [`tables`]. redb calls block, so every
//! transaction runs on tokio's blocking pool. Expiry is decided by the `now` each call
//! passes in, exactly as in Redis; instead of Redis' key TTLs, dead sessions are deleted
//! when an operation meets them and by [`EmbeddedStore::spawn_sweeper`].
//!
//! There is one process, so there is no revocation feed:
//! [`Store::subscribe_invalidations`] keeps its default and the service's own cache
//! invalidation is all there is.

pub mod cookie_sessions;
pub mod tables;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redauth_core::clock::{Clock, UnixTime};
use redauth_core::cookie_store::{CookieSessionLayout, CookieSessionStore};
use redauth_core::model::SessionId;
use redauth_core::model::{
    email_skeleton, legacy_normalized_username, normalize_username, username_skeleton,
};
use redauth_core::store::{
    EndSessions, LinkedCookieSession, MAX_SESSION_PAGE, PageRequest, PrincipalRecord,
    REFRESH_HISTORY_HASH_CHARS, REFRESH_HISTORY_LEN, RotateOutcome, RotateRequest, SessionCursor,
    SessionPage, UserUpdate,
};
use redauth_core::token::refresh::TokenHash;
use redauth_core::{Role, Session, Store, StoreError, User, ValidationError};
use redb::{
    ConcurrencyMode, Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable,
    WriteTransaction,
};
use tokio::task::JoinHandle;

use crate::tables::{
    DbResult, EMAILS, META, PreviousToken, ROLES, SCHEMA_VERSION, SCHEMA_VERSION_KEY,
    SESSION_EXPIRIES, SESSIONS, SessionRecord, SessionTables, USERNAMES, USERS, decode, encode,
    read_session, read_user,
};

/// The name of the database file inside the data directory.
pub const DATA_FILE: &str = "redauth.redb";

/// Expiry times have one-second resolution, so sweeping more often finds nothing new;
/// it also keeps a zero period (which tokio refuses) from reaching the interval.
const MIN_SWEEP_PERIOD: Duration = Duration::from_secs(1);

pub struct EmbeddedStore {
    /// Shared with the blocking tasks, so a request whose future is dropped mid-flight
    /// still finishes (and commits or aborts) its transaction on a live database.
    db: Arc<Database>,
    path: PathBuf,
    /// The brute-force limiter of this single process: handed to the service and
    /// charged by refresh rotation.
    limiter: Arc<redauth_core::rate_limit::MemoryRateLimiter>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) `dir/redauth.redb`.
    ///
    /// Blocking: it reads the whole file to verify its checksums, so call it at start-up
    /// (or inside `spawn_blocking`), not on a request path. Verifying on every open turns
    /// a damaged or edited file into a `Corrupt` error instead of a panic inside redb.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        let path = dir.join(DATA_FILE);
        let shown = path.display();
        create_private_dir(dir).map_err(|e| {
            StoreError::unavailable_because(
                format!("cannot create data directory {}", dir.display()),
                e,
            )
        })?;
        create_private_file(&path).map_err(|e| {
            StoreError::unavailable_because(format!("cannot create data file {shown}"), e)
        })?;
        let db = Database::builder()
            // The default, stated because the "one process per file" guarantee rests on it.
            .set_concurrency_mode(ConcurrencyMode::ExclusiveWriter)
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| match e {
                e @ (DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                    StoreError::unavailable_because(
                        format!("data file {shown} is already in use by another redauth process"),
                        e,
                    )
                }
                e @ DatabaseError::Storage(redb::StorageError::Corrupted(_)) => {
                    StoreError::corrupt_because(format!("data file {shown}"), e)
                }
                other => {
                    StoreError::unavailable_because(format!("cannot open data file {shown}"), other)
                }
            })?;
        init_tables(&db).map_err(|e| e.prefixed(&format!("data file {shown}")))?;
        Ok(Self {
            db: Arc::new(db),
            path,
            limiter: Arc::default(),
        })
    }

    /// The database file this store holds open (and locked).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes every session dead at `now` (`min(absolute, idle) <= now`), login and
    /// cookie sessions alike. Returns how many. Reads already ignore dead sessions; this only reclaims their space, the job
    /// Redis does with key TTLs.
    pub async fn sweep_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.write(move |txn| {
            let mut tables = SessionTables::open(txn)?;
            let logins = tables.remove_expired(now)?;
            let cookies = tables.cookies.remove_expired(now)?;
            Ok(logins + cookies)
        })
        .await
    }

    /// Runs [`Self::sweep_expired`] at once (sessions may have expired while redauth was
    /// down) and then every `every` (at least one second), reading the time from `clock`.
    ///
    /// The task holds the store weakly, upgrading only for the length of one sweep, so
    /// it does not keep the file open (and locked) after everyone else has dropped the
    /// store: it ends at its next tick. Returns `None`, after logging,
    /// when called outside a tokio runtime, where there is nothing to run the task on.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> Option<JoinHandle<()>> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "no tokio runtime: expired sessions will not be swept in the background"
            );
            return None;
        };
        let store = Arc::downgrade(self);
        let every = every.max(MIN_SWEEP_PERIOD);
        Some(runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(store) = store.upgrade() else {
                    break;
                };
                match store.sweep_expired(clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(sessions = n, "swept expired sessions"),
                    Err(e) => tracing::warn!(
                        error = %redauth_core::error::Chain(&e),
                        "sweeping expired sessions failed"
                    ),
                }
            }
        }))
    }

    /// Runs `op` in one write transaction on the blocking pool, committing if it returns
    /// `Ok`. On `Err` the transaction is dropped, which aborts it: nothing is written.
    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = begin_write(&db)?;
            let out = op(&txn)?;
            txn.commit().db()?;
            Ok(out)
        })
        .await
    }

    /// Runs `op` on one snapshot on the blocking pool: it sees no half of any write.
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        blocking(move || op(&db.begin_read().db()?)).await
    }
}

/// A write transaction with two-phase commit. Users choose much of what is written
/// (usernames, user agents), and with the default one-phase commit redb's own docs
/// describe how a workload-controlling attacker who can also crash the process might get
/// a forged commit accepted after restart. The second phase closes that for the price
/// of one more fsync per write (login, refresh, admin change).
fn begin_write(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().db()?;
    txn.set_two_phase_commit(true);
    Ok(txn)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::unavailable_because("embedded database task did not finish", e))?
}

/// The file holds password hashes and refresh-token HMACs: when redauth creates the
/// directory or the file, only its own user may read them. Existing ones are left as the
/// operator set them.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// See [`create_private_dir`]. redb initializes an empty file it is given.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates every table, so that read transactions never meet a missing one, and checks
/// the layout version.
fn init_tables(db: &Database) -> Result<(), StoreError> {
    let txn = begin_write(db)?;
    {
        let mut meta = txn.open_table(META).db()?;
        let found = meta
            .get(SCHEMA_VERSION_KEY)
            .db()?
            .map(|v| v.value().to_owned());
        match found.as_deref() {
            None => {
                meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION).db()?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::corrupt(format!(
                    "layout version {other}, this redauth reads version {SCHEMA_VERSION}"
                )));
            }
        }
        txn.open_table(USERS).db()?;
        txn.open_table(USERNAMES).db()?;
        txn.open_table(EMAILS).db()?;
        txn.open_table(ROLES).db()?;
        txn.open_table(SESSIONS).db()?;
        txn.open_table(SESSION_EXPIRIES).db()?;
        cookie_sessions::create_tables(&txn)?;
    }
    txn.commit().db()
}

/// Redis keeps `ip` and `user_agent` as hash fields where "" means absent, so it reads
/// `Some("")` back as `None`; stored the same way here, both backends return the same.
fn normalize_session(session: &Session) -> Session {
    let mut s = session.clone();
    s.ip = s.ip.filter(|v| !v.is_empty());
    s.user_agent = s.user_agent.filter(|v| !v.is_empty());
    s
}

/// The session with its user and the definitions of the user's roles (undefined ones
/// left out), or `None` if the session is dead at `now` or its user is gone.
fn principal(
    users: &impl ReadableTable<&'static str, &'static str>,
    roles: &impl ReadableTable<&'static str, &'static str>,
    record: SessionRecord,
    now: UnixTime,
) -> Result<Option<PrincipalRecord>, StoreError> {
    if !record.session.is_live(now) {
        return Ok(None);
    }
    let Some(user) = read_user(users, &record.session.user_id)? else {
        return Ok(None);
    };
    let mut held = Vec::new();
    for name in &user.roles {
        if let Some(json) = roles.get(name.as_str()).db()? {
            held.push(decode("role", json.value())?);
        }
    }
    Ok(Some(PrincipalRecord {
        session: record.session,
        user,
        roles: held,
    }))
}

/// The prefix of a token hash kept in a session's history
/// ([`REFRESH_HISTORY_HASH_CHARS`]).
fn short_hash(hash: &str) -> String {
    hash.chars().take(REFRESH_HISTORY_HASH_CHARS).collect()
}

/// The three `usernames` keys a user's name claims: its NFKC form, its look-alike
/// skeleton (as `look:<skeleton>`: usernames cannot contain ':', so it never meets a
/// username) and its pre-NFKC lower-cased form (read by create, released by delete).
fn username_claims(username: &str) -> [String; 3] {
    [
        normalize_username(username),
        format!("look:{}", username_skeleton(username)),
        legacy_normalized_username(username),
    ]
}

/// Whether the `emails` claim `key` may be taken by user `id`: unclaimed, already its
/// own, or held by a user that no longer exists (a claim an older redauth left behind
/// when it deleted the user).
fn email_free(
    emails: &redb::Table<&str, &str>,
    users: &redb::Table<&str, &str>,
    key: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let Some(holder) = emails.get(key).db()? else {
        return Ok(true);
    };
    let holder = holder.value();
    Ok(holder == id || users.get(holder).db()?.is_none())
}

/// Removes the claim `key` if user `id` holds it (another holder keeps it).
fn release_claim(
    claims: &mut redb::Table<&str, &str>,
    key: &str,
    id: &str,
) -> Result<(), StoreError> {
    let held = claims
        .get(key)
        .db()?
        .is_some_and(|owner| owner.value() == id);
    if held {
        claims.remove(key).db()?;
    }
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|txn| txn.open_table(META).db().map(drop)).await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        user.validate()?;
        let user = user.clone();
        self.write(move |txn| {
            let claims = username_claims(&user.username);
            let [normalized, look, _] = &claims;
            let mut names = txn.open_table(USERNAMES).db()?;
            for key in &claims {
                if names.get(key.as_str()).db()?.is_some() {
                    return Err(StoreError::UsernameTaken);
                }
            }
            let mail = email_skeleton(&user.email);
            let mut emails = txn.open_table(EMAILS).db()?;
            let mut users = txn.open_table(USERS).db()?;
            if !email_free(&emails, &users, &mail, &user.id)? {
                return Err(StoreError::EmailTaken);
            }
            names.insert(normalized.as_str(), user.id.as_str()).db()?;
            names.insert(look.as_str(), user.id.as_str()).db()?;
            emails.insert(mail.as_str(), user.id.as_str()).db()?;
            users
                .insert(user.id.as_str(), encode(&user)?.as_str())
                .db()?;
            Ok(())
        })
        .await
    }

    /// The `UPDATE_USER` script of the Redis store, step for step.
    async fn update_user(
        &self,
        user: &User,
        end: EndSessions<'_>,
    ) -> Result<UserUpdate, StoreError> {
        user.validate()?;
        let based_on = user.security_version;
        let next = based_on
            .checked_add(1)
            .ok_or_else(|| StoreError::corrupt("security version overflow"))?;
        let user = User {
            security_version: next,
            ..user.clone()
        };
        let end = match end {
            EndSessions::None => None,
            EndSessions::AllBut(keep) => Some(keep.map(str::to_owned)),
        };
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).db()?;
            let Some(old) = read_user(&users, &user.id)? else {
                return Err(StoreError::NotFound);
            };
            if old.security_version != based_on {
                return Err(StoreError::Conflict);
            }
            // Exact comparison, as in Redis: even a change of case would leave the
            // username claim (keyed by the normalized form) describing another spelling.
            if old.username != user.username {
                return Err(ValidationError::new("username", "cannot be changed").into());
            }
            // The email claim moves with the email; a user made before email claims
            // claims its own on its next write.
            let mut emails = txn.open_table(EMAILS).db()?;
            let (old_mail, new_mail) = (email_skeleton(&old.email), email_skeleton(&user.email));
            let free = email_free(&emails, &users, &new_mail, &user.id)?;
            if old_mail != new_mail {
                if !free {
                    return Err(StoreError::EmailTaken);
                }
                release_claim(&mut emails, &old_mail, &user.id)?;
            }
            if free {
                emails.insert(new_mail.as_str(), user.id.as_str()).db()?;
            }
            drop(emails);
            users
                .insert(user.id.as_str(), encode(&user)?.as_str())
                .db()?;
            drop(users);
            // A user made before skeletons were kept claims its own on its next write.
            let mut names = txn.open_table(USERNAMES).db()?;
            let [_, look, _] = username_claims(&user.username);
            if names.get(look.as_str()).db()?.is_none() {
                names.insert(look.as_str(), user.id.as_str()).db()?;
            }
            drop(names);
            let mut ended = 0;
            if let Some(keep) = end {
                let mut sessions = SessionTables::open(txn)?;
                for record in sessions.of_user(&user.id)? {
                    if keep.as_deref() != Some(record.session.sid.as_str()) {
                        sessions.remove(&user.id, &record.session.sid)?;
                        ended += 1;
                    }
                }
            }
            Ok(UserUpdate {
                security_version: next,
                sessions_ended: ended,
            })
        })
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        self.read(move |txn| read_user(&txn.open_table(USERS).db()?, &id))
            .await
    }

    /// Under the NFKC key, then under the lower-cased key users made before NFKC have.
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let keys = [
            normalize_username(username),
            legacy_normalized_username(username),
        ];
        self.read(move |txn| {
            let names = txn.open_table(USERNAMES).db()?;
            for key in &keys {
                if let Some(id) = names.get(key.as_str()).db()? {
                    return read_user(&txn.open_table(USERS).db()?, id.value());
                }
            }
            Ok(None)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.read(|txn| {
            let users = txn.open_table(USERS).db()?;
            let mut out = Vec::new();
            for entry in users.iter().db()? {
                out.push(decode("user", entry.db()?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut users = txn.open_table(USERS).db()?;
            let Some(user) = read_user(&users, &id)? else {
                return Ok(false);
            };
            users.remove(id.as_str()).db()?;
            let mut names = txn.open_table(USERNAMES).db()?;
            for key in username_claims(&user.username) {
                release_claim(&mut names, &key, &id)?;
            }
            drop(names);
            let mut emails = txn.open_table(EMAILS).db()?;
            release_claim(&mut emails, &email_skeleton(&user.email), &id)?;
            drop(emails);
            let mut sessions = SessionTables::open(txn)?;
            for record in sessions.of_user(&id)? {
                sessions.remove(&id, &record.session.sid)?;
            }
            Ok(true)
        })
        .await
    }

    async fn put_role(&self, role: &Role) -> Result<(), StoreError> {
        role.validate()?;
        let name = role.name.clone();
        let json = encode(role)?;
        self.write(move |txn| {
            txn.open_table(ROLES)
                .db()?
                .insert(name.as_str(), json.as_str())
                .db()?;
            Ok(())
        })
        .await
    }

    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        self.read(|txn| {
            let roles = txn.open_table(ROLES).db()?;
            let mut out = Vec::new();
            for entry in roles.iter().db()? {
                out.push(decode("role", entry.db()?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn create_session(
        &self,
        session: &Session,
        refresh: &TokenHash,
        user_version: u64,
        max_sessions: u32,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        session.validate()?;
        let cap = usize::try_from(max_sessions.max(1)).unwrap_or(usize::MAX);
        let record = SessionRecord {
            session: normalize_session(session),
            current: refresh.0.clone(),
            previous: None,
            history: Vec::new(),
        };
        self.write(move |txn| {
            let current = read_user(&txn.open_table(USERS).db()?, &record.session.user_id)?;
            if !current.is_some_and(|u| !u.disabled && u.security_version == user_version) {
                return Err(StoreError::Conflict);
            }
            let mut sessions = SessionTables::open(txn)?;
            let user_id = &record.session.user_id;
            let mut live = Vec::new();
            for old in sessions.of_user(user_id)? {
                if !old.session.is_live(now) {
                    sessions.remove(user_id, &old.session.sid)?;
                } else if old.session.sid != record.session.sid {
                    live.push(old.session);
                }
            }
            sessions.put(&record)?;
            // The Redis store's order: oldest is the lowest absolute expiry, ties by id.
            // One local transaction, so no batching: the whole excess ends at once.
            live.sort_by(|a, b| (a.absolute_expiry, &a.sid).cmp(&(b.absolute_expiry, &b.sid)));
            let excess = (live.len() + 1).saturating_sub(cap);
            let mut ended = Vec::with_capacity(excess);
            for old in live.into_iter().take(excess) {
                sessions.remove(user_id, &old.sid)?;
                ended.push(old.sid);
            }
            Ok(ended)
        })
        .await
    }

    async fn load_principal(
        &self,
        user_id: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<Option<PrincipalRecord>, StoreError> {
        let (user_id, session_id) = (user_id.to_owned(), session_id.to_owned());
        self.read(move |txn| {
            let sessions = txn.open_table(SESSIONS).db()?;
            let Some(record) = read_session(&sessions, &user_id, &session_id)? else {
                return Ok(None);
            };
            principal(
                &txn.open_table(USERS).db()?,
                &txn.open_table(ROLES).db()?,
                record,
                now,
            )
        })
        .await
    }

    /// The `ROTATE_REFRESH` script of the Redis store, step for step.
    async fn rotate_refresh(&self, req: &RotateRequest) -> Result<RotateOutcome, StoreError> {
        use redauth_core::rate_limit::{Decision, RateLimiter as _};
        if let Some(c) = &req.charge
            && let Decision::Limited { retry_after_secs } =
                self.limiter.check(&c.key, c.limit, 1, c.now_ms).await?
        {
            return Ok(RotateOutcome::RateLimited { retry_after_secs });
        }
        let req = req.clone();
        self.write(move |txn| {
            let (uid, sid, now) = (req.user_id.as_str(), req.session_id.as_str(), req.now);
            let presented = req.presented.0;
            let successor = req.successor.0;
            let mut sessions = SessionTables::open(txn)?;
            let Some(mut record) = sessions.get(uid, sid)? else {
                return Ok(RotateOutcome::Invalid);
            };
            if !record.session.is_live(now) {
                sessions.remove(uid, sid)?;
                return Ok(RotateOutcome::Invalid);
            }
            let rotated = if record.current == presented {
                let s = &mut record.session;
                s.idle_expiry = now.saturating_add(req.idle_secs).min(s.absolute_expiry);
                s.last_seen = now;
                s.refresh_generation = s.refresh_generation.saturating_add(1);
                if let Some(replaced) = record.previous.take() {
                    record.history.insert(0, short_hash(&replaced.hash));
                    record.history.truncate(REFRESH_HISTORY_LEN);
                }
                record.previous = Some(PreviousToken {
                    hash: presented,
                    rotated_at: now,
                    binding: req.client_binding,
                });
                record.current = successor;
                if !record.session.is_live(now) {
                    // A non-positive idle_secs: Redis' EXPIREAT deletes the key at once.
                    sessions.remove(uid, sid)?;
                    return Ok(RotateOutcome::Invalid);
                }
                sessions.put(&record)?;
                true
            } else if let Some(p) = record.previous.as_ref().filter(|p| p.hash == presented) {
                let successor_matches = record.current == successor;
                if !successor_matches || p.binding != req.client_binding {
                    if successor_matches && now.saturating_sub(p.rotated_at) <= req.grace_secs {
                        return Ok(RotateOutcome::ForeignReplay);
                    }
                    sessions.remove(uid, sid)?;
                    return Ok(RotateOutcome::Reused);
                }
                false
            } else if record.history.contains(&short_hash(&presented)) {
                sessions.remove(uid, sid)?;
                return Ok(RotateOutcome::Reused);
            } else {
                return Ok(RotateOutcome::Invalid);
            };
            drop(sessions);
            let found = principal(
                &txn.open_table(USERS).db()?,
                &txn.open_table(ROLES).db()?,
                record,
                now,
            )?;
            Ok(match found {
                Some(p) if rotated => RotateOutcome::Rotated(p),
                Some(p) => RotateOutcome::Replayed(p),
                None => RotateOutcome::Invalid,
            })
        })
        .await
    }

    /// The Redis store's page: the `limit` index entries after the cursor in (absolute
    /// expiry, id) order, dead ones among them pruned, not replaced. The user's sessions
    /// are one key range here, read whole (at most the cap, plus sessions from before
    /// it) inside this process; only the page's are decoded into the answer.
    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError> {
        let user_id = user_id.to_owned();
        let limit = page.limit.clamp(1, MAX_SESSION_PAGE);
        let after = page.after.clone();
        self.write(move |txn| {
            let mut sessions = SessionTables::open(txn)?;
            let mut all: Vec<Session> = sessions
                .of_user(&user_id)?
                .into_iter()
                .map(|r| r.session)
                .collect();
            all.sort_by(|a, b| (a.absolute_expiry, &a.sid).cmp(&(b.absolute_expiry, &b.sid)));
            let mut rest = all
                .into_iter()
                .skip_while(|s| {
                    after.as_ref().is_some_and(|c| {
                        (s.absolute_expiry, s.sid.as_str()) <= (c.absolute_expiry, c.sid.as_str())
                    })
                })
                .peekable();
            let mut live = Vec::new();
            let mut last = None;
            for s in rest.by_ref().take(limit) {
                last = Some(SessionCursor {
                    absolute_expiry: s.absolute_expiry,
                    sid: s.sid.clone(),
                });
                if s.is_live(now) {
                    live.push(s);
                } else {
                    sessions.remove(&user_id, &s.sid)?;
                }
            }
            let next = if rest.peek().is_some() { last } else { None };
            Ok(SessionPage {
                sessions: live,
                next,
            })
        })
        .await
    }

    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        proof: Option<&TokenHash>,
    ) -> Result<bool, StoreError> {
        let (user_id, session_id) = (user_id.to_owned(), session_id.to_owned());
        let proof = proof.map(|p| p.0.clone());
        self.write(move |txn| {
            let mut sessions = SessionTables::open(txn)?;
            if let Some(proof) = proof {
                let Some(record) = sessions.get(&user_id, &session_id)? else {
                    return Ok(false);
                };
                let matches =
                    record.current == proof || record.previous.is_some_and(|p| p.hash == proof);
                if !matches {
                    return Ok(false);
                }
            }
            sessions.remove(&user_id, &session_id)
        })
        .await
    }

    async fn linked_cookie_sessions(
        &self,
        user_id: &str,
    ) -> Result<Vec<LinkedCookieSession>, StoreError> {
        let user_id = user_id.to_owned();
        let found = self
            .write(move |txn| SessionTables::open(txn)?.cookies.linked_of(&user_id))
            .await?;
        Ok(found
            .into_iter()
            .map(|(id, data)| LinkedCookieSession {
                reference: id,
                stored: data.clone(),
                data,
            })
            .collect())
    }

    async fn replace_linked_cookie_data(
        &self,
        cookie: &LinkedCookieSession,
        data: &str,
    ) -> Result<bool, StoreError> {
        let (id, expected, data) = (
            cookie.reference.clone(),
            cookie.stored.clone(),
            data.to_owned(),
        );
        self.write(move |txn| {
            SessionTables::open(txn)?
                .cookies
                .replace_data(&id, &expected, &data)
        })
        .await
    }

    fn rate_limiter(&self) -> Arc<dyn redauth_core::rate_limit::RateLimiter> {
        self.limiter.clone()
    }

    fn cookie_session_store(
        &self,
        layout: &CookieSessionLayout,
    ) -> Result<Arc<dyn CookieSessionStore>, StoreError> {
        match layout {
            CookieSessionLayout::Native => {
                let db = Arc::clone(&self.db);
                Ok(Arc::new(cookie_sessions::EmbeddedCookieSessionStore { db }))
            }
            CookieSessionLayout::Compat { .. } => Err(StoreError::unavailable(
                "the sveltekit-redis-session layout needs Redis (it is keys shared with the SvelteKit app)",
            )),
        }
    }
}
