//! The Lua scripts. Each store operation is one script call: one round trip, and
//! atomic with respect to every other client.
//!
//! Scripts that build keys from a prefix (user lists, a user's sessions) only touch
//! keys in the hash slot of a key they were given, except `FIND_USER_BY_USERNAME` and
//! `LIST_USERS`, which read across slots and need splitting for Redis Cluster.

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
/// expiry, the user's security version the password was checked under, then the
/// session hash as field/value pairs. 0 (nothing written) if the user is gone,
/// disabled or at another version.
const CREATE_SESSION: &str = r"
local u = redis.call('GET', KEYS[3])
if not u then return 0 end
u = cjson.decode(u)
if u.disabled or (u.security_version or 0) ~= tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIREAT', KEYS[1], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[2], last[2])
return 1
";

/// KEYS: user's session index. ARGV: now, session key prefix.
/// Returns the live sessions (flat hashes plus a `sid` field); dead ids are pruned
/// from the index and their hashes deleted.
const LIST_SESSIONS: &str = r"
local now = tonumber(ARGV[1])
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local s = redis.call('HGETALL', ARGV[2] .. sid)
  local live = false
  if #s > 0 then
    local f = {}
    for i = 1, #s, 2 do f[s[i]] = s[i + 1] end
    live = tonumber(f.abs_exp) > now and tonumber(f.idle_exp) > now
  end
  if live then
    table.insert(s, 'sid')
    table.insert(s, sid)
    table.insert(out, s)
  else
    end_login_session(ARGV[2] .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
end
return out
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

/// KEYS: user's session index. ARGV: session key prefix. Returns {entry, stored value,
/// ...} of every cookie session registered (`ck`) on the user's login sessions that
/// still exists.
const LINKED_COOKIE_SESSIONS: &str = r"
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
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

/// KEYS: username, user, users set. ARGV: uid, user JSON. 0 if the username is taken
/// by another user (the same user again is a retried create: done).
const CREATE_USER: &str = r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
";

/// KEYS: user, user's session index. ARGV: user JSON (at the new version), channel,
/// uid, the version the write is based on, '1' to end sessions (then: the sid to keep
/// or '', session key prefix) or '0'.
/// Returns {1, sessions ended}, {0} if absent, {-1} if the username changed, {-2} if
/// the stored version is not the expected one (nothing written).
const UPDATE_USER: &str = r"
local old = redis.call('GET', KEYS[1])
if not old then return {0} end
old = cjson.decode(old)
local new = cjson.decode(ARGV[1])
if (old.security_version or 0) ~= tonumber(ARGV[4]) then return {-2} end
if old.username ~= new.username then return {-1} end
redis.call('SET', KEYS[1], ARGV[1])
local n = 0
if ARGV[5] == '1' then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if sid ~= ARGV[6] then
      n = n + end_login_session(ARGV[7] .. sid)
      redis.call('ZREM', KEYS[2], sid)
    end
  end
end
redis.call('PUBLISH', ARGV[2], 'user:' .. ARGV[3])
return {1, n}
";

/// KEYS: user, username, users set, user's session index.
/// ARGV: uid, session key prefix, channel.
const DELETE_USER: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[1])
for _, sid in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do end_login_session(ARGV[2] .. sid) end
redis.call('DEL', KEYS[4])
redis.call('PUBLISH', ARGV[3], 'user:' .. ARGV[1])
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
            create_session: Script::new(CREATE_SESSION),
            list_sessions: ending(LIST_SESSIONS),
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

    pub fn all(&self) -> [&Script; 13] {
        [
            &self.load_principal,
            &self.rotate_refresh,
            &self.create_session,
            &self.list_sessions,
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
