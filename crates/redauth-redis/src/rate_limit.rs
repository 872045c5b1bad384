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

/// KEYS: the limit's key. ARGV: now ms, interval ms, tolerance ms, cost.
/// Returns 0 when allowed, else the milliseconds to wait.
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if cost == 0 then
  if tat - now > tolerance then return tat - now - tolerance end
  return 0
end
local new_tat = tat + interval * cost
local earliest = new_tat - interval - tolerance
if earliest > now then return earliest - now end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))
return 0
";

pub struct RedisRateLimiter {
    con: ConnectionManager,
    prefix: String,
    script: Script,
}

impl RedisRateLimiter {
    pub(crate) fn new(con: ConnectionManager, prefix: &str) -> Self {
        Self {
            con,
            prefix: format!("{prefix}rl:"),
            script: Script::new(GCRA),
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
            .key(format!("{}{key}", self.prefix))
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
