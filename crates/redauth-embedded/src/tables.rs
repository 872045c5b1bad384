//! Every table in `redauth.redb`, in one place, with the record types stored in them.
//!
//! | table | key | value | written by | deleted by |
//! |---|---|---|---|---|
//! | `meta` | setting name | text (`schema_version` → `1`) | open | never |
//! | `users` | user id | JSON [`User`] | create/update user | delete user |
//! | `usernames` | [`normalize_username`](redauth_core::model::normalize_username) of the username | user id | create user (looked up and inserted in one write transaction: the uniqueness guard) | delete user |
//! | `emails` | [`email_skeleton`](redauth_core::model::email_skeleton) of the email (equal for equal [`normalize_email`](redauth_core::model::normalize_email) forms, so it guards both) | user id | create user (looked up and inserted in one write transaction: the uniqueness and look-alike guard), an email change (moved in the update's transaction); a user's next write, if it predates email claims | delete user, an email change (the old address's) |
//! | `roles` | role name | JSON [`Role`](redauth_core::Role) | put role | never (roles are never deleted) |
//! | `sessions` | `(user id, session id)` | JSON `SessionRecord`: the session plus its refresh-token state | login, refresh | logout, revoke, theft detection, delete user, a login past the user's session cap (the oldest), and whoever finds it dead: login and list (that user's), refresh (that session), the sweeper (all) |
//! | `session_expiries` | `(expiry, user id, session id)` | `()` | with every `sessions` write | with every `sessions` delete |
//! | `cookie_sessions` | cookie session id | JSON `{"uid", "created", "exp", "data"}` (as the Redis native value) | cookie-session create, update, expiry change, rename | delete, rename (old id), delete user, and whoever finds it dead: create and list (that user's), the sweeper (all) |
//! | `cookie_session_users` | `(user id, cookie session id)` | `()` | with every `cookie_sessions` write that has a user | with every such delete |
//! | `cookie_session_expiries` | `(expiry, cookie session id)`, `i64::MAX` for none | `()` | with every `cookie_sessions` write | with every `cookie_sessions` delete |
//!
//! `sessions` keys are tuples, compared element by element, so all sessions of one user
//! are one contiguous key range: the table is its own per-user index (what the
//! `…:sessions` sorted set is in Redis) and there is no second copy to keep in step.
//! Tuples also mean no id can smuggle in a separator and alias another user's key.
//!
//! The three `cookie_session*` tables are written only through
//! `cookie_sessions::CookieTables`, which keeps the two indexes in step with the rows.
//! They were added without a layout version bump: older binaries never open them. So was
//! `emails`: an older binary that deletes a user leaves its claim behind, so a claim
//! whose holder is no longer in `users` counts as free.
//!
//! `session_expiries` stands in for Redis' key TTLs: sorted by the moment each session
//! dies (`min(absolute, idle)`), so the sweeper reads only the dead ones instead of
//! decoding every session. Its rows are only ever changed by `SessionTables`, which
//! writes them together with the session row.
//!
//! Values are JSON of the core models (as in Redis) so that both backends store the same
//! shape; a field added to a model therefore needs `#[serde(default)]` to keep reading
//! existing files.

use redauth_core::clock::UnixTime;
use redauth_core::{Session, StoreError, User};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub(crate) const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
pub(crate) const USERS: TableDefinition<&str, &str> = TableDefinition::new("users");
pub(crate) const USERNAMES: TableDefinition<&str, &str> = TableDefinition::new("usernames");
pub(crate) const EMAILS: TableDefinition<&str, &str> = TableDefinition::new("emails");
pub(crate) const ROLES: TableDefinition<&str, &str> = TableDefinition::new("roles");
pub(crate) const SESSIONS: TableDefinition<(&str, &str), &str> = TableDefinition::new("sessions");
pub(crate) const SESSION_EXPIRIES: TableDefinition<(UnixTime, &str, &str), ()> =
    TableDefinition::new("session_expiries");

pub(crate) const COOKIE_SESSIONS: TableDefinition<&str, &str> =
    TableDefinition::new("cookie_sessions");
pub(crate) const COOKIE_SESSION_USERS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("cookie_session_users");
pub(crate) const COOKIE_SESSION_EXPIRIES: TableDefinition<(UnixTime, &str), ()> =
    TableDefinition::new("cookie_session_expiries");

pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";
/// Bumped when the layout above changes incompatibly, so an old binary refuses a file a
/// newer one rewrote instead of misreading it.
pub(crate) const SCHEMA_VERSION: &str = "1";

/// A login session with the refresh-token state that rotation and reuse detection need
/// (the `cur`, `prev` and `rot_at` fields of the Redis session hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub session: Session,
    /// HMAC of the refresh token that rotates this session now.
    pub current: String,
    /// Set by the first rotation and replaced by each later one.
    pub previous: Option<PreviousToken>,
    /// Shortened hashes of the tokens before `previous`, newest first, at most
    /// [`redauth_core::store::REFRESH_HISTORY_LEN`] (the `old` field in Redis).
    #[serde(default)]
    pub history: Vec<String>,
}

/// The token the current one replaced. Kept so that a client that retries a refresh
/// (lost response) gets the same successor instead of tripping reuse detection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PreviousToken {
    pub hash: String,
    /// Anchors the grace window: replays never move it.
    pub rotated_at: UnixTime,
    /// The client binding of the rotation that replaced it: only that client gets the
    /// successor again.
    #[serde(default)]
    pub binding: String,
}

/// redb errors as [`StoreError`]: damage to the file is `Corrupt` (retrying cannot help),
/// everything else (I/O, a full disk, a closed database) `Unavailable`.
pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TableDoesNotExist(_) => StoreError::corrupt_because("embedded database", e),
        _ => StoreError::unavailable_because("embedded database", e),
    }
}

/// `?` on redb results inside store operations, which all return [`StoreError`].
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_err)
    }
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt_because(format!("stored {what}"), e))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt_because("JSON encoding", e))
}

pub(crate) fn read_user(
    users: &impl ReadableTable<&'static str, &'static str>,
    id: &str,
) -> Result<Option<User>, StoreError> {
    users
        .get(id)
        .db()?
        .map(|json| decode("user", json.value()))
        .transpose()
}

pub(crate) fn read_session(
    sessions: &impl ReadableTable<(&'static str, &'static str), &'static str>,
    user_id: &str,
    session_id: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    sessions
        .get((user_id, session_id))
        .db()?
        .map(|json| decode("session", json.value()))
        .transpose()
}

/// `sessions` and `session_expiries` opened together in a write transaction: the only
/// way session rows are written or deleted, so the two tables cannot drift apart.
pub(crate) struct SessionTables<'txn> {
    sessions: Table<'txn, (&'static str, &'static str), &'static str>,
    expiries: Table<'txn, (UnixTime, &'static str, &'static str), ()>,
    /// Removing a login session removes the cookie sessions linked to it.
    pub cookies: crate::cookie_sessions::CookieTables<'txn>,
}

impl<'txn> SessionTables<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            sessions: txn.open_table(SESSIONS).db()?,
            expiries: txn.open_table(SESSION_EXPIRIES).db()?,
            cookies: crate::cookie_sessions::CookieTables::open(txn)?,
        })
    }

    pub fn get(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        read_session(&self.sessions, user_id, session_id)
    }

    /// Inserts or replaces a session, moving its expiry row if the expiry changed.
    pub fn put(&mut self, record: &SessionRecord) -> Result<(), StoreError> {
        let s = &record.session;
        let (uid, sid) = (s.user_id.as_str(), s.sid.as_str());
        let old = self
            .sessions
            .insert((uid, sid), encode(record)?.as_str())
            .db()?
            .map(|json| decode::<SessionRecord>("session", json.value()))
            .transpose()?;
        if let Some(old) = old {
            self.expiries
                .remove((old.session.expires_at(), uid, sid))
                .db()?;
        }
        self.expiries.insert((s.expires_at(), uid, sid), ()).db()?;
        Ok(())
    }

    /// Deletes a session, its expiry row and the cookie sessions linked to it. True if
    /// it was stored.
    pub fn remove(&mut self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        self.cookies.remove_linked_to(user_id, session_id)?;
        let old = self
            .sessions
            .remove((user_id, session_id))
            .db()?
            .map(|json| decode::<SessionRecord>("session", json.value()))
            .transpose()?;
        match old {
            Some(old) => {
                self.expiries
                    .remove((old.session.expires_at(), user_id, session_id))
                    .db()?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Every stored session of a user, dead or alive, in session id order.
    pub fn of_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in self.sessions.range((user_id, "")..).db()? {
            let (key, json) = entry.db()?;
            if key.value().0 != user_id {
                break;
            }
            out.push(decode("session", json.value())?);
        }
        Ok(out)
    }

    /// Deletes every session dead at `now` (expiry at or before it). Returns how many.
    pub fn remove_expired(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        let mut due = Vec::new();
        for entry in self.expiries.range((UnixTime::MIN, "", "")..).db()? {
            let (key, _) = entry.db()?;
            let (expires_at, uid, sid) = key.value();
            if expires_at > now {
                break;
            }
            due.push((expires_at, uid.to_owned(), sid.to_owned()));
        }
        let mut removed = 0;
        for (expires_at, uid, sid) in due {
            match self.get(&uid, &sid)? {
                Some(record) if !record.session.is_live(now) => {
                    self.remove(&uid, &sid)?;
                    removed += 1;
                }
                // A row that disagrees with its session (or outlived it) must not delete
                // a live session: drop the stray row and keep the true one.
                Some(record) => {
                    self.expiries
                        .remove((expires_at, uid.as_str(), sid.as_str()))
                        .db()?;
                    self.expiries
                        .insert(
                            (record.session.expires_at(), uid.as_str(), sid.as_str()),
                            (),
                        )
                        .db()?;
                }
                None => {
                    self.expiries
                        .remove((expires_at, uid.as_str(), sid.as_str()))
                        .db()?;
                }
            }
        }
        Ok(removed)
    }
}
