//! [`RateLimiter`] on Redis: the GCRA step of `redauth_core::rate_limit` as one Lua call,
//! so every node shares one budget per key.
//!
//! Key: `P rl:<kind>:<id>` (string, the arrival time in ms; `PX` until it has drained,
//! so idle keys delete themselves).

use async_trait::async_trait;
use redauth_core::StoreError;
use redauth_core::rate_limit::{Charge, Decision, RateLimit, RateLimiter};
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

/// KEYS: the keys to charge. ARGV: now ms, then interval ms and tolerance ms per key.
/// Charges one unit to every key if all allow it (a look with the cost first), else
/// none; returns the longest wait (0: charged).
const GCRA_ALL: &str = r"
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local interval, tolerance = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local earliest = tat - tolerance
  if earliest > now and earliest - now > wait then wait = earliest - now end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  gcra(key, now, tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]), 1)
end
return 0
";

/// KEYS: the keys to refund. ARGV: now ms, then interval ms per key.
const GCRA_REFUND: &str = r"
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    local back = tat - tonumber(ARGV[i + 1])
    if back > now then
      redis.call('SET', key, string.format('%d', back), 'PX', string.format('%d', back - now))
    else
      redis.call('DEL', key)
    end
  end
end
return 0
";

pub struct RedisRateLimiter {
    con: ConnectionManager,
    keys: crate::keys::Keys,
    script: Script,
    charge_all: Script,
    refund: Script,
}

impl RedisRateLimiter {
    pub(crate) fn new(con: ConnectionManager, keys: &crate::keys::Keys) -> Self {
        Self {
            con,
            keys: keys.clone(),
            script: Script::new(&format!("{GCRA_FN}{GCRA}")),
            charge_all: Script::new(&format!("{GCRA_FN}{GCRA_ALL}")),
            refund: Script::new(GCRA_REFUND),
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

    async fn charge_all(&self, charges: &[Charge], now_ms: i64) -> Result<Decision, StoreError> {
        let mut inv = self.charge_all.prepare_invoke();
        inv.arg(now_ms);
        for c in charges {
            inv.key(self.keys.rate_limit(&c.key))
                .arg(c.limit.interval_ms())
                .arg(c.limit.tolerance_ms());
        }
        let wait_ms: i64 = inv
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(crate::map_err)?;
        Ok(Decision::after_wait(wait_ms))
    }

    async fn refund(&self, charges: &[Charge], now_ms: i64) -> Result<(), StoreError> {
        let mut inv = self.refund.prepare_invoke();
        inv.arg(now_ms);
        for c in charges {
            inv.key(self.keys.rate_limit(&c.key))
                .arg(c.limit.interval_ms());
        }
        let _: i64 = inv
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(crate::map_err)?;
        Ok(())
    }
}
