//! [`RateLimiter`] on Redis: the GCRA step of `redauth_core::rate_limit` as one Lua call,
//! so every node shares one budget per key.
//!
//! Key: `P rl:<kind>:<id>` (string, the arrival time in ms; `PX` until it has drained,
//! so idle keys delete themselves).

use async_trait::async_trait;
use redauth_core::StoreError;
use redauth_core::rate_limit::{Decision, RateLimit, RateLimiter};
use redis::Script;
use redis::aio::ConnectionManager;

/// `gcra(key, now ms, interval ms, tolerance ms, cost)`: the GCRA step of
/// `redauth_core::rate_limit::RateLimit::step`. Returns 0 when allowed (and charged),
/// else the milliseconds to wait. Shared with the refresh-rotation script, which charges
/// the per-IP budget in the same call.
pub(crate) const GCRA_FN: &str = r"
local function gcra(key, now, interval, tolerance, cost)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  if cost == 0 then
    if tat - now > tolerance then return tat - now - tolerance end
    return 0
  end
  local new_tat = tat + interval * cost
  local earliest = new_tat - interval - tolerance
  if earliest > now then return earliest - now end
  redis.call('SET', key, string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))
  return 0
end
";

/// KEYS: the limit's key. ARGV: now ms, interval ms, tolerance ms, cost.
const GCRA: &str = "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))";

pub struct RedisRateLimiter {
    con: ConnectionManager,
    keys: crate::keys::Keys,
    script: Script,
}

impl RedisRateLimiter {
    pub(crate) fn new(con: ConnectionManager, keys: &crate::keys::Keys) -> Self {
        Self {
            con,
            keys: keys.clone(),
            script: Script::new(&format!("{GCRA_FN}{GCRA}")),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        key: &str,
        limit: RateLimit,
        cost: u32,
        now_ms: i64,
    ) -> Result<Decision, StoreError> {
        let wait_ms: i64 = self
            .script
            .key(self.keys.rate_limit(key))
            .arg(now_ms)
            .arg(limit.interval_ms())
            .arg(limit.tolerance_ms())
            .arg(cost)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(crate::map_err)?;
        Ok(Decision::after_wait(wait_ms))
    }
}
