//! Cookie sessions on Redis ([`CookieSessionStore`]), in two layouts. Every operation
//! is one command or one Lua script: one round trip, atomic.
//!
//! ## Native layout (`P` is the store's key prefix, default `redauth:`)
//!
//! | key | type | TTL | written by | deleted by |
//! |---|---|---|---|---|
//! | `Pcs:<id>` | string, JSON envelope `{"uid", "created", "exp", "data"}` (`data` is the serialized session data, `uid` and `exp` may be null) | `SET … EX` to the expiry, in the same command as the value; none without TTL | create, update data, set expiry, rename | delete, rename (old id), delete user, its TTL |
//! | `Pcs-user:<uid>` | sorted set, session id scored by expiry (`+inf`: none) | `EXPIREAT` the highest score; none while a member has no expiry | create, set expiry, rename | pruned of dead ids on create and list; delete, rename, delete user |
//!
//! ## Compat layout (`@ethercorps/sveltekit-redis-session` 1.x)
//!
//! | key | type | TTL | written by | deleted by |
//! |---|---|---|---|---|
//! | `<session prefix>:<id>` (default `sk_ioredis_session:`) | string, the serialized data exactly as the library writes it | `SET … EX maxAge` (the library: `SET` then `EXPIRE`, same TTL) | create, update data (`KEEPTTL`), set expiry, rename; the SvelteKit app | delete, rename, delete user, its TTL; the SvelteKit app |
//! | `<user sessions prefix>:<uid>` (default `sk_ioredis_user_sessions:`) | set of bare ids | none (as the library) | create, rename; the SvelteKit app | delete, rename and list prune ids whose key is gone; delete user |
//!
//! The library never prunes its user sets and deletes sessions without touching them,
//! so members without a key are normal; every reader here skips them, and `list_user`
//! removes them. Compat values record neither the user, the creation time nor the
//! expiry: `load` reports the expiry from the key's `TTL`, and the user id only from
//! the set (or from the data, see `CookieSessionOptions::user_id_pointer`).
//!
//! A cookie-session check reads the session and the principal of the login session its
//! data links to (under [`LINK_KEY`]: user id and login-session id) in one script,
//! `load_with_principal`: the login-session hash, user and role keys are the store's
//! own ([`crate::keys`]), built from the ids in the data. The link key reaches the
//! script as an argument, like every key prefix: the scripts spell no part of the
//! link contract themselves, so it is defined once, in `redauth_core::cookie_store`.
//!
//! Scripts that reach a user index from a session value build its key from a prefix
//! (the index key is not known before the value is read), so on Redis Cluster they
//! would need the two keys in one slot; redauth has no Cluster support yet.

use std::sync::Arc;

use async_trait::async_trait;
use redauth_core::StoreError;
use redauth_core::clock::UnixTime;
use redauth_core::cookie_store::{
    CookieSessionLayout, CookieSessionStore, LINK_KEY, LinkedPrincipal, StoredCookieSession,
    link_ids,
};
use redauth_core::ids::is_valid_id;
use redis::Script;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::scripts::PRINCIPAL_FN;
use crate::{RedisConfig, RedisStore, map_err, parse_principal};

/// Keeps the highest-scored member's expiry on the native user index.
const NATIVE_FIX_INDEX_TTL: &str = r"
local function fix_index_ttl(ukey)
  local top = redis.call('ZRANGE', ukey, -1, -1, 'WITHSCORES')
  if #top == 0 then return end
  if top[2] == 'inf' then redis.call('PERSIST', ukey)
  else redis.call('EXPIREAT', ukey, math.ceil(tonumber(top[2]))) end
end
local function dead(e, now)
  return e.exp ~= cjson.null and tonumber(e.exp) <= now
end
local function put(key, value, ttl)
  if ttl > 0 then redis.call('SET', key, value, 'EX', ttl) else redis.call('SET', key, value) end
end
";

/// After `PRINCIPAL_FN`: the principal of the login session that serialized session data
/// links to, as `cookie_store::link_ids` finds the link: `{uid, sid, principal or
/// false}`, or false when the data is not a JSON object holding, under the link key,
/// `user_id` and `session_id` strings, or when reading the principal fails (a key of
/// the wrong type): then the caller reads the principal itself, if it sees a link there
/// at all, and meets the same error only then.
/// ARGV from `base`: now, user key prefix, user key suffix, session key infix, link key
/// (`LINK_KEY`).
const LINKED_FN: &str = r"
local function linked(data, rkey, base)
  local ok, d = pcall(cjson.decode, data)
  if not ok or type(d) ~= 'table' then return false end
  local l = d[ARGV[base + 4]]
  if type(l) ~= 'table' then return false end
  local uid, sid = l.user_id, l.session_id
  if type(uid) ~= 'string' or type(sid) ~= 'string' then return false end
  local u = ARGV[base + 1] .. uid
  local ok, p = pcall(principal, u .. ARGV[base + 3] .. sid, u .. ARGV[base + 2], rkey, tonumber(ARGV[base]))
  if not ok then return false end
  return {uid, sid, p or false}
end
";

/// KEYS: session, roles. ARGV: now, user key prefix, user key suffix, session key
/// infix, link key. Returns {envelope, linked} or nil (missing or dead at now).
const NATIVE_LOAD_WITH_PRINCIPAL: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local e = cjson.decode(v)
if dead(e, tonumber(ARGV[1])) then return false end
return {v, linked(e.data, KEYS[2], 1)}
";

/// Registers a cookie session on the login session its data links to, in the same
/// script that writes it, so that ending the login session (by any process, see
/// `END_LOGIN_SESSION_FN`) ends it too. Convention for the scripts that use it: the
/// last ARGV is the entry to register (`<n|c>\t<cookie key>\t<user index key or
/// ''>\t<id>`) or '', and when it is not '', the last key is the login session's.
/// `nkeys` is the number of keys before that one. Entries whose cookie key is gone are
/// dropped on each registration, and at most 32 are kept.
const REGISTER_LINK_FN: &str = r"
local link_entry = ARGV[#ARGV]
local nkeys = #KEYS
if link_entry ~= '' then nkeys = nkeys - 1 end
local function register_link()
  if link_entry == '' then return end
  local skey = KEYS[#KEYS]
  if redis.call('EXISTS', skey) == 0 then return end
  local key = string.match(link_entry, '^%a\t([^\t]+)\t')
  local kept = {}
  local ck = redis.call('HGET', skey, 'ck')
  if ck then
    for entry in string.gmatch(ck, '[^\n]+') do
      local k = string.match(entry, '^%a\t([^\t]+)\t')
      if k and k ~= key and #kept < 31 and redis.call('EXISTS', k) == 1 then
        table.insert(kept, entry)
      end
    end
  end
  table.insert(kept, link_entry)
  redis.call('HSET', skey, 'ck', table.concat(kept, '\n'))
end
";

/// KEYS: session [, user index] [, linked login session]. ARGV: envelope, ttl (0:
/// none), id, score, now, link entry (`REGISTER_LINK_FN`).
const NATIVE_CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
put(KEYS[1], ARGV[1], tonumber(ARGV[2]))
if nkeys >= 2 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  fix_index_ttl(KEYS[2])
end
register_link()
return 1
";

/// KEYS: session. ARGV: data, now.
const NATIVE_UPDATE_DATA: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local e = cjson.decode(v)
if dead(e, tonumber(ARGV[2])) then return 0 end
e.data = ARGV[1]
redis.call('SET', KEYS[1], cjson.encode(e), 'KEEPTTL')
return 1
";

/// KEYS: session. ARGV: exp ('' for none), ttl (0: none), score, now, user index
/// prefix, id.
const NATIVE_SET_EXPIRY: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local e = cjson.decode(v)
if dead(e, tonumber(ARGV[4])) then return 0 end
if ARGV[1] == '' then e.exp = cjson.null else e.exp = tonumber(ARGV[1]) end
put(KEYS[1], cjson.encode(e), tonumber(ARGV[2]))
if e.uid ~= cjson.null then
  local ukey = ARGV[5] .. e.uid
  redis.call('ZADD', ukey, ARGV[3], ARGV[6])
  fix_index_ttl(ukey)
end
return 1
";

/// KEYS: old session, new session [, linked login session]. ARGV: data, exp ('' for
/// none), ttl, score, now, user index prefix, old id, new id, link entry.
const NATIVE_RENAME: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local e = cjson.decode(v)
if dead(e, tonumber(ARGV[5])) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
e.data = ARGV[1]
if ARGV[2] == '' then e.exp = cjson.null else e.exp = tonumber(ARGV[2]) end
put(KEYS[2], cjson.encode(e), tonumber(ARGV[3]))
redis.call('DEL', KEYS[1])
if e.uid ~= cjson.null then
  local ukey = ARGV[6] .. e.uid
  redis.call('ZREM', ukey, ARGV[7])
  redis.call('ZADD', ukey, ARGV[4], ARGV[8])
  fix_index_ttl(ukey)
end
register_link()
return 1
";

/// KEYS: session. ARGV: user index prefix, id.
const NATIVE_DELETE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
redis.call('DEL', KEYS[1])
local e = cjson.decode(v)
if e.uid ~= cjson.null then redis.call('ZREM', ARGV[1] .. e.uid, ARGV[2]) end
return 1
";

/// KEYS: user index. ARGV: now, session key prefix. Returns {id, envelope, ...}.
const NATIVE_LIST_USER: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', ARGV[2] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
fix_index_ttl(KEYS[1])
return out
";

/// KEYS: user index. ARGV: session key prefix.
const NATIVE_DELETE_USER: &str = r"
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return n
";

/// KEYS: session [, user set] [, linked login session]. ARGV: data, ttl (0: none), id,
/// link entry.
const COMPAT_CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else redis.call('SET', KEYS[1], ARGV[1]) end
if nkeys >= 2 then redis.call('SADD', KEYS[2], ARGV[3]) end
register_link()
return 1
";

/// KEYS: session. Returns {data, ttl} or nil.
const COMPAT_LOAD: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('TTL', KEYS[1])}
";

/// KEYS: session, roles. ARGV as `NATIVE_LOAD_WITH_PRINCIPAL`. Returns {data, ttl,
/// linked} or nil.
const COMPAT_LOAD_WITH_PRINCIPAL: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('TTL', KEYS[1]), linked(v, KEYS[2], 1)}
";

/// KEYS: session. ARGV: ttl (0: none).
const COMPAT_SET_EXPIRY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1])
else redis.call('PERSIST', KEYS[1]) end
return 1
";

/// KEYS: old session, new session [, user set] [, linked login session]. ARGV: data,
/// ttl (0: none), old id, new id, link entry.
const COMPAT_RENAME: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
else redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('DEL', KEYS[1])
if nkeys >= 3 then
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[4])
end
register_link()
return 1
";

/// KEYS: session [, user set]. ARGV: id.
const COMPAT_DELETE: &str = r"
local n = redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('SREM', KEYS[2], ARGV[1]) end
return n
";

/// KEYS: user set. ARGV: session key prefix with its ':'. Returns {id, data, ttl, ...}.
const COMPAT_LIST_USER: &str = r"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
    out[#out + 1] = redis.call('TTL', ARGV[1] .. id)
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
";

/// KEYS: user set. ARGV: session key prefix with its ':'.
const COMPAT_DELETE_USER: &str = r"
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return n
";

struct Scripts {
    native_create: Script,
    native_update_data: Script,
    native_set_expiry: Script,
    native_rename: Script,
    native_delete: Script,
    native_list_user: Script,
    native_delete_user: Script,
    native_load_with_principal: Script,
    compat_create: Script,
    compat_load: Script,
    compat_load_with_principal: Script,
    compat_set_expiry: Script,
    compat_rename: Script,
    compat_delete: Script,
    compat_list_user: Script,
    compat_delete_user: Script,
}

impl Scripts {
    fn new() -> Self {
        let native = |body: &str| Script::new(&format!("{NATIVE_FIX_INDEX_TTL}{body}"));
        let linking =
            |prelude: &str, body: &str| Script::new(&format!("{prelude}{REGISTER_LINK_FN}{body}"));
        let with_principal = |body: &str| {
            Script::new(&format!(
                "{NATIVE_FIX_INDEX_TTL}{PRINCIPAL_FN}{LINKED_FN}{body}"
            ))
        };
        Self {
            native_create: linking(NATIVE_FIX_INDEX_TTL, NATIVE_CREATE),
            native_update_data: native(NATIVE_UPDATE_DATA),
            native_set_expiry: native(NATIVE_SET_EXPIRY),
            native_rename: linking(NATIVE_FIX_INDEX_TTL, NATIVE_RENAME),
            native_delete: native(NATIVE_DELETE),
            native_list_user: native(NATIVE_LIST_USER),
            native_delete_user: native(NATIVE_DELETE_USER),
            native_load_with_principal: with_principal(NATIVE_LOAD_WITH_PRINCIPAL),
            compat_create: linking("", COMPAT_CREATE),
            compat_load: Script::new(COMPAT_LOAD),
            compat_load_with_principal: with_principal(COMPAT_LOAD_WITH_PRINCIPAL),
            compat_set_expiry: Script::new(COMPAT_SET_EXPIRY),
            compat_rename: linking("", COMPAT_RENAME),
            compat_delete: Script::new(COMPAT_DELETE),
            compat_list_user: Script::new(COMPAT_LIST_USER),
            compat_delete_user: Script::new(COMPAT_DELETE_USER),
        }
    }

    fn all(&self) -> [&Script; 16] {
        [
            &self.native_create,
            &self.native_update_data,
            &self.native_set_expiry,
            &self.native_rename,
            &self.native_delete,
            &self.native_list_user,
            &self.native_delete_user,
            &self.native_load_with_principal,
            &self.compat_create,
            &self.compat_load,
            &self.compat_load_with_principal,
            &self.compat_set_expiry,
            &self.compat_rename,
            &self.compat_delete,
            &self.compat_list_user,
            &self.compat_delete_user,
        ]
    }
}

#[derive(Debug, Clone)]
enum Layout {
    Native {
        session_prefix: String,
        user_prefix: String,
    },
    /// Prefixes include the `:` the library joins with.
    Compat {
        session_prefix: String,
        user_prefix: String,
    },
}

/// The native value: the session with its metadata, so one `GET` answers a cookie.
#[derive(Serialize, Deserialize)]
struct Envelope {
    uid: Option<String>,
    created: Option<UnixTime>,
    exp: Option<UnixTime>,
    data: String,
}

/// [`CookieSessionStore`] on Redis; see the module docs for both layouts.
#[derive(Clone)]
pub struct RedisCookieSessionStore {
    con: ConnectionManager,
    layout: Layout,
    /// The keys of users and login sessions, for `load_with_principal`.
    auth_keys: Keys,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisCookieSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCookieSessionStore")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Cookie sessions on this store's connection; the native layout lives under this
    /// store's key prefix.
    pub fn cookie_sessions(&self, layout: &CookieSessionLayout) -> RedisCookieSessionStore {
        RedisCookieSessionStore::new(self.con(), self.keys.prefix(), layout)
    }
}

impl RedisCookieSessionStore {
    /// A store with its own connection, for applications that want cookie sessions
    /// without the rest of redauth. `config.key_prefix` is the native layout's prefix,
    /// and that of the users and login sessions cookie sessions link to.
    pub fn connect(config: &RedisConfig, layout: &CookieSessionLayout) -> Result<Self, StoreError> {
        let store = RedisStore::connect(config)?;
        Ok(store.cookie_sessions(layout))
    }

    fn new(con: ConnectionManager, prefix: &str, layout: &CookieSessionLayout) -> Self {
        let layout = match layout {
            CookieSessionLayout::Native => Layout::Native {
                session_prefix: format!("{prefix}cs:"),
                user_prefix: format!("{prefix}cs-user:"),
            },
            CookieSessionLayout::Compat {
                session_prefix,
                user_sessions_prefix,
            } => Layout::Compat {
                session_prefix: format!("{session_prefix}:"),
                user_prefix: format!("{user_sessions_prefix}:"),
            },
        };
        Self {
            con,
            layout,
            auth_keys: Keys::new(prefix),
            scripts: Arc::new(Scripts::new()),
        }
    }

    /// Loads every script, so later calls are one `EVALSHA` each (round-trip tests).
    pub async fn preload_scripts(&self) -> Result<(), StoreError> {
        for s in self.scripts.all() {
            s.prepare_invoke()
                .load_async(&mut self.con.clone())
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// The Redis key holding session `id` (for tests and operators).
    pub fn session_key(&self, id: &str) -> String {
        match &self.layout {
            Layout::Native { session_prefix, .. } | Layout::Compat { session_prefix, .. } => {
                format!("{session_prefix}{id}")
            }
        }
    }

    /// The Redis key of `user_id`'s index.
    pub fn user_key(&self, user_id: &str) -> String {
        match &self.layout {
            Layout::Native { user_prefix, .. } | Layout::Compat { user_prefix, .. } => {
                format!("{user_prefix}{user_id}")
            }
        }
    }

    fn con(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// Appends what `REGISTER_LINK_FN` needs to a create or rename of cookie session
    /// `id`: the login session its `data` links to (a key) and the entry that lets any
    /// process delete this cookie session when that login session ends (the last
    /// argument, '' when the data names no login session).
    fn link(
        &self,
        inv: &mut redis::ScriptInvocation<'_>,
        id: &str,
        user_id: Option<&str>,
        data: &str,
    ) {
        let entry = link_ids(data)
            .filter(|(uid, sid)| is_valid_id(uid) && is_valid_id(sid))
            .and_then(|(uid, sid)| {
                let (kind, index) = match &self.layout {
                    Layout::Native { .. } => ('n', self.user_key(user_id.unwrap_or(&uid))),
                    Layout::Compat { .. } => {
                        ('c', user_id.map(|u| self.user_key(u)).unwrap_or_default())
                    }
                };
                let key = self.session_key(id);
                let entry = format!("{kind}\t{key}\t{index}\t{id}");
                // Prefixes are configuration; one holding a separator cannot be recorded.
                let clean = [key.as_str(), index.as_str(), id]
                    .iter()
                    .all(|p| !p.contains(['\t', '\n']));
                clean.then(|| (self.auth_keys.session(&uid, &sid), entry))
            });
        match entry {
            Some((login_session, entry)) => {
                inv.key(login_session).arg(entry);
            }
            None => {
                inv.arg("");
            }
        }
    }
}

fn corrupt(e: impl Into<redauth_core::error::BoxError>) -> StoreError {
    StoreError::corrupt_because("cookie session", e)
}

/// Seconds from `now` to `expires_at` for `SET … EX`, 0 for none. A session whose
/// expiry is not after `now` cannot be stored.
fn ttl(expires_at: Option<UnixTime>, now: UnixTime) -> Result<i64, StoreError> {
    match expires_at {
        None => Ok(0),
        Some(e) if e > now => Ok(e - now),
        Some(_) => Err(StoreError::Invalid(redauth_core::ValidationError::new(
            "expires_at",
            "must be after now",
        ))),
    }
}

/// The sorted-set score of an expiry.
fn score(expires_at: Option<UnixTime>) -> String {
    expires_at.map_or_else(|| "+inf".to_owned(), |e| e.to_string())
}

fn from_envelope(id: String, json: &str) -> Result<StoredCookieSession, StoreError> {
    let e: Envelope = serde_json::from_str(json).map_err(corrupt)?;
    Ok(StoredCookieSession {
        id,
        user_id: e.uid,
        data: e.data,
        created_at: e.created,
        expires_at: e.exp,
    })
}

/// The session data inside a native envelope.
pub(crate) fn envelope_data(json: &str) -> Result<String, StoreError> {
    let e: Envelope = serde_json::from_str(json).map_err(corrupt)?;
    Ok(e.data)
}

/// The native envelope `json` with its session data replaced.
pub(crate) fn with_envelope_data(json: &str, data: &str) -> Result<String, StoreError> {
    let mut e: Envelope = serde_json::from_str(json).map_err(corrupt)?;
    e.data = data.to_owned();
    serde_json::to_string(&e).map_err(corrupt)
}

/// The compat expiry as seen at `now`: `TTL` -1 means none.
fn compat_expiry(ttl: i64, now: UnixTime) -> Option<UnixTime> {
    (ttl >= 0).then(|| now + ttl)
}

/// The `linked` part of a `*_LOAD_WITH_PRINCIPAL` reply.
fn parse_linked(v: redis::Value) -> Result<Option<LinkedPrincipal>, StoreError> {
    let parts: Option<Vec<redis::Value>> =
        redis::FromRedisValue::from_redis_value(v).map_err(corrupt)?;
    let Some(parts) = parts else {
        return Ok(None);
    };
    let mut it = parts.into_iter();
    let (Some(uid), Some(sid), Some(p)) = (it.next(), it.next(), it.next()) else {
        return Err(corrupt("linked principal reply has the wrong shape"));
    };
    let user_id: String = redis::FromRedisValue::from_redis_value(uid).map_err(corrupt)?;
    let session_id: String = redis::FromRedisValue::from_redis_value(sid).map_err(corrupt)?;
    let p: Option<Vec<redis::Value>> =
        redis::FromRedisValue::from_redis_value(p).map_err(corrupt)?;
    let record = p
        .map(|parts| parse_principal(&session_id, parts))
        .transpose()?;
    Ok(Some(LinkedPrincipal {
        user_id,
        session_id,
        record,
    }))
}

impl RedisCookieSessionStore {
    /// One `load_with_principal` script call. Read-only, so retried once when the
    /// connection had dropped, as the store's `load_principal` is.
    async fn invoke_load_with_principal(
        &self,
        script: &Script,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<redis::Value>>, StoreError> {
        let call = || {
            let mut inv = script.key(self.session_key(id));
            inv.key(self.auth_keys.roles())
                .arg(now)
                .arg(self.auth_keys.user_key_prefix())
                .arg(Keys::USER_KEY_SUFFIX)
                .arg(Keys::SESSION_KEY_INFIX)
                .arg(LINK_KEY);
            let mut con = self.con();
            async move { inv.invoke_async(&mut con).await }
        };
        match call().await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => call().await,
            other => other,
        }
        .map_err(map_err)
    }
}

#[async_trait]
impl CookieSessionStore for RedisCookieSessionStore {
    async fn create(&self, s: &StoredCookieSession, now: UnixTime) -> Result<bool, StoreError> {
        let ttl = ttl(s.expires_at, now)?;
        let created: i64 = match &self.layout {
            Layout::Native { .. } => {
                let envelope = serde_json::to_string(&Envelope {
                    uid: s.user_id.clone(),
                    created: s.created_at,
                    exp: s.expires_at,
                    data: s.data.clone(),
                })
                .map_err(corrupt)?;
                let mut inv = self.scripts.native_create.key(self.session_key(&s.id));
                if let Some(uid) = &s.user_id {
                    inv.key(self.user_key(uid));
                }
                inv.arg(envelope)
                    .arg(ttl)
                    .arg(&s.id)
                    .arg(score(s.expires_at))
                    .arg(now);
                self.link(&mut inv, &s.id, s.user_id.as_deref(), &s.data);
                inv.invoke_async(&mut self.con()).await
            }
            Layout::Compat { .. } => {
                let mut inv = self.scripts.compat_create.key(self.session_key(&s.id));
                if let Some(uid) = &s.user_id {
                    inv.key(self.user_key(uid));
                }
                inv.arg(&s.data).arg(ttl).arg(&s.id);
                self.link(&mut inv, &s.id, s.user_id.as_deref(), &s.data);
                inv.invoke_async(&mut self.con()).await
            }
        }
        .map_err(map_err)?;
        Ok(created == 1)
    }

    async fn load(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<StoredCookieSession>, StoreError> {
        match &self.layout {
            Layout::Native { .. } => {
                let json: Option<String> = redis::cmd("GET")
                    .arg(self.session_key(id))
                    .query_async(&mut self.con())
                    .await
                    .map_err(map_err)?;
                json.map(|j| from_envelope(id.to_owned(), &j))
                    .transpose()
                    .map(|s| s.filter(|s| s.is_live(now)))
            }
            Layout::Compat { .. } => {
                let reply: Option<(String, i64)> = self
                    .scripts
                    .compat_load
                    .key(self.session_key(id))
                    .invoke_async(&mut self.con())
                    .await
                    .map_err(map_err)?;
                Ok(reply.and_then(|(data, ttl)| {
                    (ttl != -2).then(|| StoredCookieSession {
                        id: id.to_owned(),
                        user_id: None,
                        data,
                        created_at: None,
                        expires_at: compat_expiry(ttl, now),
                    })
                }))
            }
        }
    }

    async fn load_with_principal(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<(StoredCookieSession, Option<LinkedPrincipal>)>, StoreError> {
        let shape = || corrupt("load_with_principal reply has the wrong shape");
        match &self.layout {
            Layout::Native { .. } => {
                let script = &self.scripts.native_load_with_principal;
                let Some(reply) = self.invoke_load_with_principal(script, id, now).await? else {
                    return Ok(None);
                };
                let mut it = reply.into_iter();
                let (Some(v), Some(linked)) = (it.next(), it.next()) else {
                    return Err(shape());
                };
                let json: String = redis::FromRedisValue::from_redis_value(v).map_err(corrupt)?;
                let session = from_envelope(id.to_owned(), &json)?;
                if !session.is_live(now) {
                    return Ok(None);
                }
                Ok(Some((session, parse_linked(linked)?)))
            }
            Layout::Compat { .. } => {
                let script = &self.scripts.compat_load_with_principal;
                let Some(reply) = self.invoke_load_with_principal(script, id, now).await? else {
                    return Ok(None);
                };
                let mut it = reply.into_iter();
                let (Some(v), Some(ttl), Some(linked)) = (it.next(), it.next(), it.next()) else {
                    return Err(shape());
                };
                let data: String = redis::FromRedisValue::from_redis_value(v).map_err(corrupt)?;
                let ttl: i64 = redis::FromRedisValue::from_redis_value(ttl).map_err(corrupt)?;
                if ttl == -2 {
                    return Ok(None);
                }
                let session = StoredCookieSession {
                    id: id.to_owned(),
                    user_id: None,
                    data,
                    created_at: None,
                    expires_at: compat_expiry(ttl, now),
                };
                Ok(Some((session, parse_linked(linked)?)))
            }
        }
    }

    async fn update_data(&self, id: &str, data: &str, now: UnixTime) -> Result<bool, StoreError> {
        match &self.layout {
            Layout::Native { .. } => {
                let n: i64 = self
                    .scripts
                    .native_update_data
                    .key(self.session_key(id))
                    .arg(data)
                    .arg(now)
                    .invoke_async(&mut self.con())
                    .await
                    .map_err(map_err)?;
                Ok(n == 1)
            }
            Layout::Compat { .. } => {
                let ok: Option<String> = redis::cmd("SET")
                    .arg(self.session_key(id))
                    .arg(data)
                    .arg("XX")
                    .arg("KEEPTTL")
                    .query_async(&mut self.con())
                    .await
                    .map_err(map_err)?;
                Ok(ok.is_some())
            }
        }
    }

    async fn set_expiry(
        &self,
        id: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let ttl = ttl(expires_at, now)?;
        let n: i64 = match &self.layout {
            Layout::Native { user_prefix, .. } => {
                self.scripts
                    .native_set_expiry
                    .key(self.session_key(id))
                    .arg(expires_at.map_or_else(String::new, |e| e.to_string()))
                    .arg(ttl)
                    .arg(score(expires_at))
                    .arg(now)
                    .arg(user_prefix)
                    .arg(id)
                    .invoke_async(&mut self.con())
                    .await
            }
            Layout::Compat { .. } => {
                self.scripts
                    .compat_set_expiry
                    .key(self.session_key(id))
                    .arg(ttl)
                    .invoke_async(&mut self.con())
                    .await
            }
        }
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn rename(
        &self,
        old_id: &str,
        new_id: &str,
        user_id: Option<&str>,
        data: &str,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let ttl = ttl(expires_at, now)?;
        let n: i64 = match &self.layout {
            Layout::Native { user_prefix, .. } => {
                let mut inv = self.scripts.native_rename.key(self.session_key(old_id));
                inv.key(self.session_key(new_id))
                    .arg(data)
                    .arg(expires_at.map_or_else(String::new, |e| e.to_string()))
                    .arg(ttl)
                    .arg(score(expires_at))
                    .arg(now)
                    .arg(user_prefix)
                    .arg(old_id)
                    .arg(new_id);
                self.link(&mut inv, new_id, user_id, data);
                inv.invoke_async(&mut self.con()).await
            }
            Layout::Compat { .. } => {
                let mut inv = self.scripts.compat_rename.key(self.session_key(old_id));
                inv.key(self.session_key(new_id));
                if let Some(uid) = user_id {
                    inv.key(self.user_key(uid));
                }
                inv.arg(data).arg(ttl).arg(old_id).arg(new_id);
                self.link(&mut inv, new_id, user_id, data);
                inv.invoke_async(&mut self.con()).await
            }
        }
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn delete(&self, id: &str, user_id: Option<&str>) -> Result<bool, StoreError> {
        let n: i64 = match &self.layout {
            Layout::Native { user_prefix, .. } => {
                self.scripts
                    .native_delete
                    .key(self.session_key(id))
                    .arg(user_prefix)
                    .arg(id)
                    .invoke_async(&mut self.con())
                    .await
            }
            Layout::Compat { .. } => {
                let mut inv = self.scripts.compat_delete.key(self.session_key(id));
                if let Some(uid) = user_id {
                    inv.key(self.user_key(uid));
                }
                inv.arg(id);
                inv.invoke_async(&mut self.con()).await
            }
        }
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn list_user(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<StoredCookieSession>, StoreError> {
        match &self.layout {
            Layout::Native { session_prefix, .. } => {
                let flat: Vec<String> = self
                    .scripts
                    .native_list_user
                    .key(self.user_key(user_id))
                    .arg(now)
                    .arg(session_prefix)
                    .invoke_async(&mut self.con())
                    .await
                    .map_err(map_err)?;
                let mut out = Vec::new();
                let mut it = flat.into_iter();
                while let (Some(id), Some(json)) = (it.next(), it.next()) {
                    let s = from_envelope(id, &json)?;
                    if s.is_live(now) {
                        out.push(s);
                    }
                }
                Ok(out)
            }
            Layout::Compat { session_prefix, .. } => {
                let flat: Vec<redis::Value> = self
                    .scripts
                    .compat_list_user
                    .key(self.user_key(user_id))
                    .arg(session_prefix)
                    .invoke_async(&mut self.con())
                    .await
                    .map_err(map_err)?;
                let mut out = Vec::new();
                let mut it = flat.into_iter();
                while let (Some(id), Some(data), Some(ttl)) = (it.next(), it.next(), it.next()) {
                    let id: String =
                        redis::FromRedisValue::from_redis_value(id).map_err(corrupt)?;
                    let data: String =
                        redis::FromRedisValue::from_redis_value(data).map_err(corrupt)?;
                    let ttl: i64 = redis::FromRedisValue::from_redis_value(ttl).map_err(corrupt)?;
                    out.push(StoredCookieSession {
                        id,
                        user_id: Some(user_id.to_owned()),
                        data,
                        created_at: None,
                        expires_at: compat_expiry(ttl, now),
                    });
                }
                out.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(out)
            }
        }
    }

    async fn delete_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let (script, prefix) = match &self.layout {
            Layout::Native { session_prefix, .. } => {
                (&self.scripts.native_delete_user, session_prefix)
            }
            Layout::Compat { session_prefix, .. } => {
                (&self.scripts.compat_delete_user, session_prefix)
            }
        };
        script
            .key(self.user_key(user_id))
            .arg(prefix)
            .invoke_async(&mut self.con())
            .await
            .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The link to a login session is part of the `CookieSessionStore` contract, defined
    /// once in `redauth_core::cookie_store`: a script that spelled the key itself would
    /// silently stop finding links if it ever changed.
    #[test]
    fn no_script_spells_the_link_key() {
        for body in [
            NATIVE_FIX_INDEX_TTL,
            LINKED_FN,
            NATIVE_LOAD_WITH_PRINCIPAL,
            REGISTER_LINK_FN,
            NATIVE_CREATE,
            NATIVE_UPDATE_DATA,
            NATIVE_SET_EXPIRY,
            NATIVE_RENAME,
            NATIVE_DELETE,
            NATIVE_LIST_USER,
            NATIVE_DELETE_USER,
            COMPAT_CREATE,
            COMPAT_LOAD,
            COMPAT_LOAD_WITH_PRINCIPAL,
            COMPAT_SET_EXPIRY,
            COMPAT_RENAME,
            COMPAT_DELETE,
            COMPAT_LIST_USER,
            COMPAT_DELETE_USER,
        ] {
            assert!(!body.contains(LINK_KEY), "{body}");
        }
    }
}
