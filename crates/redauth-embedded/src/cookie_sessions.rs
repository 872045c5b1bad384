//! Cookie sessions in `redauth.redb` ([`CookieSessionStore`]), in redauth's native
//! layout only: the compat layout *is* a set of Redis keys shared with a SvelteKit app,
//! which a local file cannot be. The tables are documented in [`crate::tables`].
//!
//! Each operation is one write transaction (or one snapshot read), so it is atomic as
//! the Redis scripts are. `load_with_principal` reads the cookie session and the
//! principal of the login session it links to from one snapshot. Expiry is judged by the `now` passed in; dead sessions are
//! deleted by whoever meets them and by the sweeper
//! ([`crate::EmbeddedStore::sweep_expired`]).

use std::sync::Arc;

use async_trait::async_trait;
use redauth_core::StoreError;
use redauth_core::clock::UnixTime;
use redauth_core::cookie_store::{
    CookieSessionStore, LinkedPrincipal, StoredCookieSession, link_ids,
};
use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::tables::{
    COOKIE_SESSION_EXPIRIES, COOKIE_SESSION_USERS, COOKIE_SESSIONS, DbResult, ROLES, SESSIONS,
    USERS, decode, encode, read_session,
};
use crate::{begin_write, blocking, principal};

/// A `cookie_sessions` value: the same fields as the Redis native envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    uid: Option<String>,
    created: Option<UnixTime>,
    exp: Option<UnixTime>,
    data: String,
}

impl Record {
    fn from_session(s: &StoredCookieSession) -> Self {
        Self {
            uid: s.user_id.clone(),
            created: s.created_at,
            exp: s.expires_at,
            data: s.data.clone(),
        }
    }

    fn into_session(self, id: &str) -> StoredCookieSession {
        StoredCookieSession {
            id: id.to_owned(),
            user_id: self.uid,
            data: self.data,
            created_at: self.created,
            expires_at: self.exp,
        }
    }

    fn is_live(&self, now: UnixTime) -> bool {
        self.exp.is_none_or(|e| now < e)
    }
}

/// The cookie-session store of an [`crate::EmbeddedStore`]: the same file and lock.
#[derive(Clone)]
pub struct EmbeddedCookieSessionStore {
    pub(crate) db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedCookieSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedCookieSessionStore")
    }
}

/// The three tables opened together: the only way their rows change, so the user and
/// expiry indexes cannot drift from the sessions.
pub(crate) struct CookieTables<'txn> {
    sessions: Table<'txn, &'static str, &'static str>,
    users: Table<'txn, (&'static str, &'static str), ()>,
    expiries: Table<'txn, (UnixTime, &'static str), ()>,
}

/// Sessions without expiry sort last in `cookie_session_expiries`, so the sweeper
/// never reaches them.
fn expiry_key(exp: Option<UnixTime>) -> UnixTime {
    exp.unwrap_or(UnixTime::MAX)
}

impl<'txn> CookieTables<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            sessions: txn.open_table(COOKIE_SESSIONS).db()?,
            users: txn.open_table(COOKIE_SESSION_USERS).db()?,
            expiries: txn.open_table(COOKIE_SESSION_EXPIRIES).db()?,
        })
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.sessions
            .get(id)
            .db()?
            .map(|json| decode("cookie session", json.value()))
            .transpose()
    }

    fn live(&self, id: &str, now: UnixTime) -> Result<Option<Record>, StoreError> {
        Ok(self.get(id)?.filter(|r| r.is_live(now)))
    }

    /// Inserts or replaces, keeping both indexes in step.
    fn put(&mut self, id: &str, record: &Record) -> Result<(), StoreError> {
        self.remove(id)?;
        self.sessions.insert(id, encode(record)?.as_str()).db()?;
        if let Some(uid) = &record.uid {
            self.users.insert((uid.as_str(), id), ()).db()?;
        }
        self.expiries
            .insert((expiry_key(record.exp), id), ())
            .db()?;
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Result<bool, StoreError> {
        let old = self
            .sessions
            .remove(id)
            .db()?
            .map(|json| decode::<Record>("cookie session", json.value()))
            .transpose()?;
        let Some(old) = old else {
            return Ok(false);
        };
        if let Some(uid) = &old.uid {
            self.users.remove((uid.as_str(), id)).db()?;
        }
        self.expiries.remove((expiry_key(old.exp), id)).db()?;
        Ok(true)
    }

    /// Ids in a user's index, in id order.
    fn ids_of(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for entry in self.users.range((user_id, "")..).db()? {
            let (key, _) = entry.db()?;
            let (uid, id) = key.value();
            if uid != user_id {
                break;
            }
            out.push(id.to_owned());
        }
        Ok(out)
    }

    /// Deletes the cookie sessions whose data links to login session `session_id` of
    /// `user_id` (`cookie_store::link_ids`): ending a login session ends them, in the
    /// same transaction, whichever process ends it (the `ck` registry of the Redis
    /// store; here one file holds both, so the user's index is enough to find them).
    pub(crate) fn remove_linked_to(
        &mut self,
        user_id: &str,
        session_id: &str,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for id in self.ids_of(user_id)? {
            let linked = self.get(&id)?.and_then(|r| link_ids(&r.data));
            if linked.is_some_and(|(uid, sid)| uid == user_id && sid == session_id)
                && self.remove(&id)?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The cookie sessions of `user_id` whose data links to one of the user's login
    /// sessions: `(id, data)`.
    pub(crate) fn linked_of(&self, user_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for id in self.ids_of(user_id)? {
            if let Some(r) = self.get(&id)?
                && link_ids(&r.data).is_some_and(|(uid, _)| uid == user_id)
            {
                out.push((id, r.data));
            }
        }
        Ok(out)
    }

    /// Replaces the data of cookie session `id` if it still is `expected`.
    pub(crate) fn replace_data(
        &mut self,
        id: &str,
        expected: &str,
        data: &str,
    ) -> Result<bool, StoreError> {
        match self.get(id)? {
            Some(mut r) if r.data == expected => {
                r.data = data.to_owned();
                self.put(id, &r)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes the user's sessions that are dead at `now`.
    fn prune_user(&mut self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
        for id in self.ids_of(user_id)? {
            if self.live(&id, now)?.is_none() {
                self.remove(&id)?;
            }
        }
        Ok(())
    }

    /// Deletes every session dead at `now`. Returns how many.
    pub(crate) fn remove_expired(&mut self, now: UnixTime) -> Result<u64, StoreError> {
        let mut due = Vec::new();
        for entry in self.expiries.range((UnixTime::MIN, "")..).db()? {
            let (key, _) = entry.db()?;
            let (exp, id) = key.value();
            if exp > now {
                break;
            }
            due.push(id.to_owned());
        }
        let mut removed = 0;
        for id in due {
            if self.live(&id, now)?.is_none() && self.remove(&id)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    CookieTables::open(txn).map(drop)
}

impl EmbeddedCookieSessionStore {
    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut CookieTables<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = begin_write(&db)?;
            let out = {
                let mut tables = CookieTables::open(&txn)?;
                op(&mut tables)?
            };
            txn.commit().db()?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl CookieSessionStore for EmbeddedCookieSessionStore {
    async fn create(&self, s: &StoredCookieSession, now: UnixTime) -> Result<bool, StoreError> {
        let s = s.clone();
        self.write(move |t| {
            if let Some(uid) = &s.user_id {
                t.prune_user(uid, now)?;
            }
            if t.live(&s.id, now)?.is_some() {
                return Ok(false);
            }
            t.put(&s.id, &Record::from_session(&s))?;
            Ok(true)
        })
        .await
    }

    async fn load(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<StoredCookieSession>, StoreError> {
        let id = id.to_owned();
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(COOKIE_SESSIONS).db()?;
            let Some(json) = table.get(id.as_str()).db()? else {
                return Ok(None);
            };
            let record: Record = decode("cookie session", json.value())?;
            Ok(record.is_live(now).then(|| record.into_session(&id)))
        })
        .await
    }

    async fn load_with_principal(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<(StoredCookieSession, Option<LinkedPrincipal>)>, StoreError> {
        let id = id.to_owned();
        let db = Arc::clone(&self.db);
        blocking(move || {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(COOKIE_SESSIONS).db()?;
            let Some(json) = table.get(id.as_str()).db()? else {
                return Ok(None);
            };
            let record: Record = decode("cookie session", json.value())?;
            if !record.is_live(now) {
                return Ok(None);
            }
            // A principal that cannot be read (a corrupt row) is left to the caller, which
            // reads it again only if it sees a link in the data, as it did before.
            let linked = link_ids(&record.data).and_then(|(user_id, session_id)| {
                let found = (|| {
                    let sessions = txn.open_table(SESSIONS).db()?;
                    match read_session(&sessions, &user_id, &session_id)? {
                        None => Ok(None),
                        Some(s) => principal(
                            &txn.open_table(USERS).db()?,
                            &txn.open_table(ROLES).db()?,
                            s,
                            now,
                        ),
                    }
                })();
                found.ok().map(|record| LinkedPrincipal {
                    user_id,
                    session_id,
                    record,
                })
            });
            Ok(Some((record.into_session(&id), linked)))
        })
        .await
    }

    async fn update_data(&self, id: &str, data: &str, now: UnixTime) -> Result<bool, StoreError> {
        let (id, data) = (id.to_owned(), data.to_owned());
        self.write(move |t| {
            let Some(mut record) = t.live(&id, now)? else {
                return Ok(false);
            };
            record.data = data;
            t.put(&id, &record)?;
            Ok(true)
        })
        .await
    }

    async fn set_expiry(
        &self,
        id: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |t| {
            let Some(mut record) = t.live(&id, now)? else {
                return Ok(false);
            };
            record.exp = expires_at;
            t.put(&id, &record)?;
            Ok(true)
        })
        .await
    }

    async fn rename(
        &self,
        old_id: &str,
        new_id: &str,
        _user_id: Option<&str>,
        data: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (old_id, new_id, data) = (old_id.to_owned(), new_id.to_owned(), data.to_owned());
        self.write(move |t| {
            let Some(mut record) = t.live(&old_id, now)? else {
                return Ok(false);
            };
            if t.live(&new_id, now)?.is_some() {
                return Ok(false);
            }
            t.remove(&old_id)?;
            record.data = data;
            record.exp = expires_at;
            t.put(&new_id, &record)?;
            Ok(true)
        })
        .await
    }

    async fn delete(&self, id: &str, _user_id: Option<&str>) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |t| t.remove(&id)).await
    }

    async fn list_user(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<StoredCookieSession>, StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |t| {
            t.prune_user(&user_id, now)?;
            let mut out = Vec::new();
            for id in t.ids_of(&user_id)? {
                if let Some(record) = t.live(&id, now)? {
                    out.push(record.into_session(&id));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |t| {
            let mut n = 0;
            for id in t.ids_of(&user_id)? {
                if t.remove(&id)? {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}
