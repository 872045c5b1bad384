//! The Lua scripts. Each store operation is one script call: one round trip, and
//! atomic with respect to every other client.
//!
//! Scripts that build keys from a prefix (user lists, a user's sessions) only touch
//! keys in the hash slot of a key they were given, except `FIND_USER_BY_USERNAME` and
//! `LIST_USERS`, which read across slots and need splitting for Redis Cluster, and
//! `CREATE_USER` and `UPDATE_USER`, which check that the holder of an email claim
//! still exists.

use redis::Script;

/// Shared by the scripts that return a principal: the session hash (flat), the user
/// JSON and the definitions of the user's roles (nil where undefined), or nil when
/// the session is missing or dead at `now`. Also the second half of the cookie-session
/// reads that return a principal (`cookie_sessions`).
pub(crate) const PRINCIPAL_FN: &str = r"
local function principal(skey, ukey, rkey, now)
  local s = redis.call('HGETALL', skey)
  if #s == 0 then return nil end
  local f = {}
  for i = 1, #s, 2 do f[s[i]] = s[i + 1] end
  if tonumber(f.abs_exp) <= now or tonumber(f.idle_exp) <= now then return nil end
  local u = redis.call('GET', ukey)
  if not u then return nil end
  local names = cjson.decode(u).roles
  local roles = {}
  if #names > 0 then roles = redis.call('HMGET', rkey, unpack(names)) end
  return {s, u, roles}
end
";

/// Ends a login session: deletes its hash and every cookie session registered on it
/// (field `ck`, see [`crate::keys`]), whatever process or layout configuration runs
/// the script. Returns 1 if the login session existed.
pub(crate) const END_LOGIN_SESSION_FN: &str = r"
local function end_login_session(skey)
  local ck = redis.call('HGET', skey, 'ck')
  if ck then
    for entry in string.gmatch(ck, '[^\n]+') do
      local kind, key, index, id = string.match(entry, '^(%a)\t([^\t]+)\t([^\t]*)\t([^\t]+)$')
      if key then
        redis.call('DEL', key)
        if index ~= '' then
          if kind == 'n' then redis.call('ZREM', index, id) else redis.call('SREM', index, id) end
        end
      end
    end
  end
  return redis.call('DEL', skey)
end
";

/// KEYS: session, user, roles. ARGV: now.
const LOAD_PRINCIPAL: &str = r"
local p = principal(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]))
if not p then return false end
return p
";

/// KEYS: session, user, roles, user's session index[, rate-limit key].
/// ARGV: presented hash, successor hash, now, grace secs, idle secs, channel, sid,
/// client binding, history length, history hash chars, '1' to charge the rate-limit
/// key (then: now ms, interval ms, tolerance ms) or '0'.
/// Returns {1, principal...} rotated, {2, principal...} replayed to the same client,
/// {-2} the previous token from another client within grace (nothing changed),
/// {-1} reuse of a token this session issued (session revoked and announced),
/// {0} unknown, expired, or a token this session never issued (nothing changed),
/// {-3, wait ms} refused by the rate limit (nothing else touched).
const ROTATE_REFRESH: &str = r"
if ARGV[11] == '1' then
  local wait = gcra(KEYS[5], tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), 1)
  if wait > 0 then return {-3, wait} end
end
local s = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'rot_at', 'abs_exp', 'idle_exp', 'bind', 'old')
if not s[1] then return {0} end
local now = tonumber(ARGV[3])
local abs = tonumber(s[4])
if abs <= now or tonumber(s[5]) <= now then
  end_login_session(KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[7])
  return {0}
end
local presented = ARGV[1]
local keep, chars = tonumber(ARGV[9]), tonumber(ARGV[10])
local function revoke()
  end_login_session(KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[7])
  redis.call('PUBLISH', ARGV[6], 'sid:' .. ARGV[7])
  return {-1}
end
local code
if s[1] == presented then
  local old = {}
  if s[2] and s[2] ~= '' then table.insert(old, string.sub(s[2], 1, chars)) end
  for h in string.gmatch(s[7] or '', '%S+') do
    if #old >= keep then break end
    table.insert(old, h)
  end
  local idle = math.min(now + tonumber(ARGV[5]), abs)
  redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', presented, 'rot_at', ARGV[3], 'bind', ARGV[8],
    'old', table.concat(old, ' '), 'last_seen', ARGV[3], 'idle_exp', idle)
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('EXPIREAT', KEYS[1], idle)
  code = 1
elseif presented ~= '' and s[2] == presented then
  if s[1] == ARGV[2] and s[6] == ARGV[8] then
    code = 2
  elseif s[1] == ARGV[2] and now - tonumber(s[3]) <= tonumber(ARGV[4]) then
    return {-2}
  else
    return revoke()
  end
else
  local short = string.sub(presented, 1, chars)
  for h in string.gmatch(s[7] or '', '%S+') do
    if h == short then return revoke() end
  end
  return {0}
end
local p = principal(KEYS[1], KEYS[2], KEYS[3], now)
if not p then return {0} end
return {code, p[1], p[2], p[3]}
";

/// KEYS: session, user's session index, user. ARGV: now, sid, absolute expiry, idle
/// expiry, the user's security version the password was checked under, the cap on
/// live sessions, batch, session key prefix, channel, then the session hash as
/// field/value pairs. {0} (nothing written) if the user is gone, disabled or at
/// another version; else {1, ids of the sessions the cap ended...}. The session
/// records the version (`ver`) so that ending the sessions of an older version in
/// several calls (`END_USER_SESSIONS`) never ends this one.
///
/// Bounded work, however large the index: at most `batch` ids dead by absolute expiry
/// (found by score) are pruned; over the cap, at most `cap + batch` of the oldest ids
/// are read. When the index fits that window (always, once a login has enforced the
/// cap) the live count is exact: dead ids in it are pruned, then the oldest live ones
/// other than the new session end until `cap` are left. An index larger than the window
/// (sessions from before the cap, a lowered cap) counts the ids past the window as live
/// without reading them and ends or prunes only the window's: it shrinks by up to
/// `cap + batch` per login. "Oldest" is the lowest score, the absolute expiry: created
/// + the absolute lifetime, so the earliest created while that lifetime is unchanged.
const CREATE_SESSION: &str = r"
local u = redis.call('GET', KEYS[3])
if not u then return {0} end
u = cjson.decode(u)
if u.disabled or (u.security_version or 0) ~= tonumber(ARGV[5]) then return {0} end
local now, cap, batch, prefix = tonumber(ARGV[1]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, batch)) do
  end_login_session(prefix .. sid)
  redis.call('ZREM', KEYS[2], sid)
end
redis.call('HSET', KEYS[1], 'ver', ARGV[5], unpack(ARGV, 10))
redis.call('EXPIREAT', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local out = {1}
local total = redis.call('ZCARD', KEYS[2])
if total > cap then
  local window = redis.call('ZRANGE', KEYS[2], 0, cap + batch - 1)
  local live = {}
  for _, sid in ipairs(window) do
    local t = redis.call('HMGET', prefix .. sid, 'abs_exp', 'idle_exp')
    if sid == ARGV[2] or (t[1] and tonumber(t[1]) > now and tonumber(t[2]) > now) then
      live[#live + 1] = sid
    else
      end_login_session(prefix .. sid)
      redis.call('ZREM', KEYS[2], sid)
    end
  end
  local excess = #live + (total - #window) - cap
  for _, sid in ipairs(live) do
    if excess <= 0 then break end
    if sid ~= ARGV[2] then
      end_login_session(prefix .. sid)
      redis.call('ZREM', KEYS[2], sid)
      redis.call('PUBLISH', ARGV[9], 'sid:' .. sid)
      out[#out + 1] = sid
      excess = excess - 1
    end
  end
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[2], last[2])
return out
";

/// KEYS: user's session index. ARGV: now, session key prefix, limit, then the cursor's
/// absolute expiry and sid, or nothing for the first page.
/// Returns {sessions (flat hashes plus a `sid` field), score and sid of the last id
/// examined, or '' and '' when the page reached the end}. Reads at most `limit`
/// sessions: the page is the `limit` ids after the cursor's position, found in
/// O(log n) by inserting the cursor if absent, ranking it and removing it again, all
/// inside this atomic call, so the order is Redis' own and Lua compares no strings.
/// Dead ids on the page are pruned, not replaced.
const LIST_SESSIONS: &str = r"
local now, prefix, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local start = 0
if ARGV[4] then
  local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[4], ARGV[5])
  start = redis.call('ZRANK', KEYS[1], ARGV[5])
  if added == 1 then redis.call('ZREM', KEYS[1], ARGV[5]) else start = start + 1 end
end
local window = redis.call('ZRANGE', KEYS[1], start, start + limit, 'WITHSCORES')
local out = {}
local last_score, last_sid = '', ''
for i = 1, math.min(#window / 2, limit) do
  local sid, score = window[2 * i - 1], window[2 * i]
  local s = redis.call('HGETALL', prefix .. sid)
  local live = false
  if #s > 0 then
    local f = {}
    for j = 1, #s, 2 do f[s[j]] = s[j + 1] end
    live = tonumber(f.abs_exp) > now and tonumber(f.idle_exp) > now
  end
  if live then
    table.insert(s, 'sid')
    table.insert(s, sid)
    table.insert(out, s)
  else
    end_login_session(prefix .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
  last_score, last_sid = score, sid
end
if #window / 2 <= limit then last_score, last_sid = '', '' end
return {out, last_score, last_sid}
";

/// KEYS: user's session index. ARGV: session key prefix, sid to keep or '', security
/// version ('' for every session), index position to start at, batch, channel, uid.
/// Ends the sessions among the `batch` ids from `start` that are not kept and were
/// created under a version below the one given (or before sessions recorded theirs),
/// so a login that follows the user write is never ended by it. Announces
/// `user:<uid>` if it ended any. Returns {sessions ended, ids kept, ids examined}.
/// What `UPDATE_USER` and `DELETE_USER` leave of an index larger than one batch.
const END_USER_SESSIONS: &str = r"
local start, batch = tonumber(ARGV[4]), tonumber(ARGV[5])
local window = redis.call('ZRANGE', KEYS[1], start, start + batch - 1)
local n, kept = 0, 0
for _, sid in ipairs(window) do
  local skey = ARGV[1] .. sid
  local ends = sid ~= ARGV[2]
  if ends and ARGV[3] ~= '' then
    local v = redis.call('HGET', skey, 'ver')
    ends = (not v) or tonumber(v) < tonumber(ARGV[3])
  end
  if ends then
    n = n + end_login_session(skey)
    redis.call('ZREM', KEYS[1], sid)
  else
    kept = kept + 1
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[6], 'user:' .. ARGV[7]) end
return {n, kept, #window}
";

/// KEYS: session, user's session index. ARGV: sid, channel, proof hash, '1' if a
/// proof is required (a separate flag, so an empty proof never means "no proof").
const REVOKE_SESSION: &str = r"
if ARGV[4] == '1' then
  local h = redis.call('HMGET', KEYS[1], 'cur', 'prev')
  -- An unrotated session stores prev = '', so an empty proof must never match.
  if ARGV[3] == '' or (h[1] ~= ARGV[3] and h[2] ~= ARGV[3]) then return 0 end
end
local n = end_login_session(KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'sid:' .. ARGV[1])
return n
";

/// KEYS: user's session index. ARGV: session key prefix, index position to start at,
/// batch. Returns {ids examined, entry, stored value, ...} of every cookie session
/// registered (`ck`) on the `batch` login sessions from `start` that still exists.
const LINKED_COOKIE_SESSIONS: &str = r"
local window = redis.call('ZRANGE', KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1)
local out = {#window}
for _, sid in ipairs(window) do
  local ck = redis.call('HGET', ARGV[1] .. sid, 'ck')
  if ck then
    for entry in string.gmatch(ck, '[^\n]+') do
      local key = string.match(entry, '^%a\t([^\t]+)\t')
      local v = key and redis.call('GET', key)
      if v then
        out[#out + 1] = entry
        out[#out + 1] = v
      end
    end
  end
end
return out
";

/// KEYS: cookie session. ARGV: expected value, new value. 1 if replaced (TTL kept).
const REPLACE_COOKIE_VALUE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
";

/// KEYS: username, user, users set, username skeleton, legacy username (the lower-cased
/// key of users made before NFKC; only read), email skeleton. ARGV: uid, user JSON,
/// user key prefix, user key suffix.
/// 1 created (or the same user again: a retried create, done); 0 if the username is
/// taken by another user; 2 if the email is (nothing written). All claims are read
/// before any is written, so a refused create leaves none behind.
const CREATE_USER: &str = r"
local function email_free(key, uid)
  local holder = redis.call('GET', key)
  return (not holder) or holder == uid or redis.call('EXISTS', ARGV[3] .. holder .. ARGV[4]) == 0
end
local look = redis.call('GET', KEYS[4])
if look and look ~= ARGV[1] then return 0 end
local legacy = redis.call('GET', KEYS[5])
if legacy and legacy ~= ARGV[1] then return 0 end
local name = redis.call('GET', KEYS[1])
if name then
  if name == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
  return 0
end
if not email_free(KEYS[6], ARGV[1]) then return 2 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], ARGV[1])
redis.call('SET', KEYS[6], ARGV[1])
return 1
";

/// KEYS: user, user's session index, username skeleton, skeleton of the new email,
/// skeleton of the email the caller believes is stored. ARGV: user JSON (at the new
/// version), channel, uid, the version the write is based on, the email the caller
/// believes is stored, user key prefix, user key suffix, '1' to end sessions (then: the
/// sid to keep or '', session key prefix, batch) or '0'.
/// Returns {1, sessions ended, 1 if ids beyond the batch are left}, {0} if absent,
/// {-1} if the username changed, {-2} if the stored version is not the expected one,
/// {-3, stored email} if the stored email is not the one the caller believed (its
/// skeleton key may be another: the caller retries with the right one), {-4} if the
/// new email's skeleton is claimed by another user (nothing written in any of these).
/// An email change moves the claim: the new skeleton is taken and the old one released
/// (if this user held it) in this one step. An email claim whose holder no longer
/// exists (left by a redauth from before email claims deleting the user) is free. Ends at most `batch` sessions: within the cap (at most
/// `MAX_SESSIONS_PER_USER_LIMIT`, the default batch) that is all of them, atomically
/// with the write; what is left of a larger index (from before the cap) the store ends
/// right after with `END_USER_SESSIONS`.
const UPDATE_USER: &str = r"
local function email_free(key, uid)
  local holder = redis.call('GET', key)
  return (not holder) or holder == uid or redis.call('EXISTS', ARGV[6] .. holder .. ARGV[7]) == 0
end
local old = redis.call('GET', KEYS[1])
if not old then return {0} end
old = cjson.decode(old)
local new = cjson.decode(ARGV[1])
if (old.security_version or 0) ~= tonumber(ARGV[4]) then return {-2} end
if old.username ~= new.username then return {-1} end
if old.email ~= ARGV[5] then return {-3, old.email} end
local moved = KEYS[4] ~= KEYS[5]
if moved and not email_free(KEYS[4], ARGV[3]) then return {-4} end
redis.call('SET', KEYS[1], ARGV[1])
-- A user made before skeletons were kept claims its own on its next write.
redis.call('SET', KEYS[3], ARGV[3], 'NX')
if moved then
  if redis.call('GET', KEYS[5]) == ARGV[3] then redis.call('DEL', KEYS[5]) end
  redis.call('SET', KEYS[4], ARGV[3])
elseif email_free(KEYS[4], ARGV[3]) then
  -- Likewise for a user made before email claims.
  redis.call('SET', KEYS[4], ARGV[3])
end
local n, kept, more = 0, 0, 0
if ARGV[8] == '1' then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[11]) - 1)) do
    if sid ~= ARGV[9] then
      n = n + end_login_session(ARGV[10] .. sid)
      redis.call('ZREM', KEYS[2], sid)
    else
      kept = 1
    end
  end
  if redis.call('ZCARD', KEYS[2]) > kept then more = 1 end
end
redis.call('PUBLISH', ARGV[2], 'user:' .. ARGV[3])
return {1, n, more}
";

/// KEYS: user, username, users set, user's session index, username skeleton, legacy
/// username, email skeleton.
/// ARGV: uid, session key prefix, channel, batch, the email the caller read.
/// 0 if absent; 3 (nothing done) if the stored email is no longer the one read, whose
/// claim key the caller passed: it reads again and retries; 1 done; 2 done but the
/// index had more than `batch` ids: the user is gone (so none of its sessions loads any
/// more) and the store ends the rest with `END_USER_SESSIONS`.
const DELETE_USER: &str = r"
local u = redis.call('GET', KEYS[1])
if not u then return 0 end
if cjson.decode(u).email ~= ARGV[5] then return 3 end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
if redis.call('GET', KEYS[6]) == ARGV[1] then redis.call('DEL', KEYS[6]) end
if redis.call('GET', KEYS[7]) == ARGV[1] then redis.call('DEL', KEYS[7]) end
redis.call('SREM', KEYS[3], ARGV[1])
for _, sid in ipairs(redis.call('ZRANGE', KEYS[4], 0, tonumber(ARGV[4]) - 1)) do
  end_login_session(ARGV[2] .. sid)
  redis.call('ZREM', KEYS[4], sid)
end
redis.call('PUBLISH', ARGV[3], 'user:' .. ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
return 1
";

/// KEYS: username. ARGV: user key prefix, user key suffix. The user JSON or nil.
const FIND_USER_BY_USERNAME: &str = r"
local uid = redis.call('GET', KEYS[1])
if not uid then return false end
return redis.call('GET', ARGV[1] .. uid .. ARGV[2])
";

/// KEYS: users set. ARGV: user key prefix, user key suffix. All user JSONs.
const LIST_USERS: &str = r"
local out = {}
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local u = redis.call('GET', ARGV[1] .. uid .. ARGV[2])
  if u then table.insert(out, u) end
end
return out
";

/// KEYS: roles. ARGV: name, role JSON, channel.
const PUT_ROLE: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'all')
return 1
";

pub struct Scripts {
    pub load_principal: Script,
    pub rotate_refresh: Script,
    pub create_session: Script,
    pub list_sessions: Script,
    pub end_user_sessions: Script,
    pub revoke_session: Script,
    pub create_user: Script,
    pub update_user: Script,
    pub delete_user: Script,
    pub find_user_by_username: Script,
    pub list_users: Script,
    pub put_role: Script,
    pub linked_cookie_sessions: Script,
    pub replace_cookie_value: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let with_principal = |body: &str| Script::new(&format!("{PRINCIPAL_FN}{body}"));
        let ending = |body: &str| Script::new(&format!("{END_LOGIN_SESSION_FN}{body}"));
        Self {
            load_principal: with_principal(LOAD_PRINCIPAL),
            rotate_refresh: Script::new(&format!(
                "{PRINCIPAL_FN}{END_LOGIN_SESSION_FN}{}{ROTATE_REFRESH}",
                crate::rate_limit::GCRA_FN
            )),
            create_session: ending(CREATE_SESSION),
            list_sessions: ending(LIST_SESSIONS),
            end_user_sessions: ending(END_USER_SESSIONS),
            revoke_session: ending(REVOKE_SESSION),
            create_user: Script::new(CREATE_USER),
            update_user: ending(UPDATE_USER),
            delete_user: ending(DELETE_USER),
            find_user_by_username: Script::new(FIND_USER_BY_USERNAME),
            list_users: Script::new(LIST_USERS),
            put_role: Script::new(PUT_ROLE),
            linked_cookie_sessions: Script::new(LINKED_COOKIE_SESSIONS),
            replace_cookie_value: Script::new(REPLACE_COOKIE_VALUE),
        }
    }

    pub fn all(&self) -> [&Script; 14] {
        [
            &self.load_principal,
            &self.rotate_refresh,
            &self.create_session,
            &self.list_sessions,
            &self.end_user_sessions,
            &self.revoke_session,
            &self.create_user,
            &self.update_user,
            &self.delete_user,
            &self.find_user_by_username,
            &self.list_users,
            &self.put_role,
            &self.linked_cookie_sessions,
            &self.replace_cookie_value,
        ]
    }
}
