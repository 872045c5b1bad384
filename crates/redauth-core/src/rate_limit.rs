//! Brute-force limits: GCRA (the generic cell rate algorithm, a leaky bucket kept as a
//! single "theoretical arrival time" per key). A limit allows `burst` attempts at once
//! and then one more every `interval_secs`; a refused attempt learns exactly when it
//! may retry. A key is never locked forever: it drains at the refill rate.
//!
//! The Redis implementation keeps the state in Redis (one Lua call), so every node
//! shares it; [`MemoryRateLimiter`] serves the single-process embedded mode.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::StoreError;

/// One limit: `burst` attempts at once from a drained key, then one more every
/// `interval_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Attempts allowed at once from a drained key (0 counts as 1).
    pub burst: u32,
    /// Seconds to earn back one attempt (0 counts as 1).
    pub interval_secs: u32,
}

impl RateLimit {
    /// The refill interval in milliseconds, the unit of stored arrival times (what the
    /// Redis script is given).
    pub fn interval_ms(&self) -> i64 {
        i64::from(self.interval_secs.max(1)) * 1000
    }

    /// How far ahead of now the arrival time may run before attempts are refused.
    pub fn tolerance_ms(&self) -> i64 {
        self.interval_ms() * i64::from(self.burst.max(1) - 1)
    }

    /// One GCRA step. `tat` is the stored arrival time (None for a fresh key); `cost`
    /// 0 only looks. Returns the decision and the arrival time to store.
    pub fn step(&self, tat: Option<i64>, now_ms: i64, cost: u32) -> (Decision, i64) {
        let tat = tat.unwrap_or(now_ms).max(now_ms);
        let new_tat = tat + self.interval_ms() * i64::from(cost);
        let earliest = new_tat - self.interval_ms() - self.tolerance_ms();
        if cost > 0 && earliest > now_ms {
            let wait_ms = earliest - now_ms;
            return (Decision::after_wait(wait_ms), tat);
        }
        if cost == 0 && tat - now_ms > self.tolerance_ms() {
            let wait_ms = tat - now_ms - self.tolerance_ms();
            return (Decision::after_wait(wait_ms), tat);
        }
        (Decision::Allowed, new_tat)
    }

    /// Gives one charged unit back: the arrival time to store, or `None` when the key
    /// has drained.
    pub fn refund(&self, tat: Option<i64>, now_ms: i64) -> Option<i64> {
        let back = tat?.saturating_sub(self.interval_ms());
        (back > now_ms).then_some(back)
    }
}

/// One unit to charge (or refund) under `limit` to `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The key, such as `login-ip:<network>`; the Redis limiter stores it under
    /// `<prefix>rl:<key>`.
    pub key: String,
    /// The limit the key is held to.
    pub limit: RateLimit,
}

/// A limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Charged (or, for a look with cost 0, would be).
    Allowed,
    /// Refused, and nothing charged.
    Limited {
        /// Whole seconds, rounded up, until one attempt would be allowed: what
        /// `Retry-After` carries.
        retry_after_secs: u64,
    },
}

impl Decision {
    /// Allowed when nothing is left to wait, else limited for `wait_ms` rounded up to
    /// whole seconds (what `Retry-After` carries).
    pub fn after_wait(wait_ms: i64) -> Self {
        if wait_ms <= 0 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after_secs: u64::try_from((wait_ms + 999) / 1000).unwrap_or(u64::MAX),
            }
        }
    }
}

/// Where the GCRA state lives: Redis for every node at once, or process memory
/// ([`MemoryRateLimiter`]); the store provides the one that fits it
/// ([`crate::Store::rate_limiter`]). Times are Unix milliseconds from the caller's clock,
/// so tests move them with a [`crate::ManualClock`].
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Charges `cost` (0 = only look) to `key` under `limit` at `now_ms`.
    async fn check(
        &self,
        key: &str,
        limit: RateLimit,
        cost: u32,
        now_ms: i64,
    ) -> Result<Decision, StoreError>;

    /// Charges one unit to every key in `charges` if every one of them allows it, and
    /// to none otherwise, atomically: however many callers race, no key is ever charged
    /// past its limit. Limited carries the longest wait. Used to *reserve* an attempt
    /// before the expensive work it pays for (a password check), so at most the budget
    /// is ever evaluated.
    async fn charge_all(&self, charges: &[Charge], now_ms: i64) -> Result<Decision, StoreError>;

    /// Gives back one unit to every key in `charges` (an attempt that turned out to be
    /// legitimate: a correct password does not use up the account's budget).
    async fn refund(&self, charges: &[Charge], now_ms: i64) -> Result<(), StoreError>;
}

/// In-process limiter for a single node. Entries are dropped once drained, so memory
/// is bounded by the keys active within one refill period.
#[derive(Debug, Default)]
pub struct MemoryRateLimiter {
    state: Mutex<HashMap<String, i64>>,
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(
        &self,
        key: &str,
        limit: RateLimit,
        cost: u32,
        now_ms: i64,
    ) -> Result<Decision, StoreError> {
        let mut state = self.lock()?;
        if state.len() > 100_000 {
            state.retain(|_, tat| *tat > now_ms);
        }
        let (decision, tat) = limit.step(state.get(key).copied(), now_ms, cost);
        if tat > now_ms {
            state.insert(key.to_owned(), tat);
        } else {
            state.remove(key);
        }
        Ok(decision)
    }

    async fn charge_all(&self, charges: &[Charge], now_ms: i64) -> Result<Decision, StoreError> {
        let mut state = self.lock()?;
        let mut next = Vec::with_capacity(charges.len());
        let mut longest_wait = None;
        for c in charges {
            match c.limit.step(state.get(&c.key).copied(), now_ms, 1) {
                (Decision::Allowed, tat) => next.push((c.key.clone(), tat)),
                (Decision::Limited { retry_after_secs }, _) => {
                    longest_wait = longest_wait.max(Some(retry_after_secs));
                }
            }
        }
        if let Some(retry_after_secs) = longest_wait {
            return Ok(Decision::Limited { retry_after_secs });
        }
        for (key, tat) in next {
            state.insert(key, tat);
        }
        Ok(Decision::Allowed)
    }

    async fn refund(&self, charges: &[Charge], now_ms: i64) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        for c in charges {
            match c.limit.refund(state.get(&c.key).copied(), now_ms) {
                Some(tat) => state.insert(c.key.clone(), tat),
                None => state.remove(&c.key),
            };
        }
        Ok(())
    }
}

impl MemoryRateLimiter {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, i64>>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::unavailable("rate limiter poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let limit = RateLimit {
            burst: 3,
            interval_secs: 10,
        };
        let mut tat = None;
        let mut at = |now_ms: i64, cost: u32| {
            let (d, t) = limit.step(tat, now_ms, cost);
            if d == Decision::Allowed {
                tat = Some(t);
            }
            d
        };
        assert_eq!(at(0, 1), Decision::Allowed);
        assert_eq!(at(0, 1), Decision::Allowed);
        assert_eq!(at(0, 1), Decision::Allowed);
        assert_eq!(
            at(0, 1),
            Decision::Limited {
                retry_after_secs: 10
            }
        );
        assert_eq!(
            at(0, 0),
            Decision::Limited {
                retry_after_secs: 10
            },
            "peeking sees the limit too"
        );
        assert_eq!(
            at(5_000, 1),
            Decision::Limited {
                retry_after_secs: 5
            }
        );
        assert_eq!(at(10_000, 1), Decision::Allowed, "one refilled");
        assert_eq!(
            at(10_000, 1),
            Decision::Limited {
                retry_after_secs: 10
            }
        );
        assert_eq!(
            at(40_000, 0),
            Decision::Allowed,
            "drained: never locked forever"
        );
    }

    #[tokio::test]
    async fn memory_limiter_keeps_keys_apart_and_forgets_drained_ones() {
        let l = MemoryRateLimiter::default();
        let limit = RateLimit {
            burst: 1,
            interval_secs: 60,
        };
        assert_eq!(l.check("a", limit, 1, 0).await.unwrap(), Decision::Allowed);
        assert!(matches!(
            l.check("a", limit, 1, 0).await.unwrap(),
            Decision::Limited { .. }
        ));
        assert_eq!(l.check("b", limit, 1, 0).await.unwrap(), Decision::Allowed);
        assert_eq!(
            l.check("a", limit, 1, 60_000).await.unwrap(),
            Decision::Allowed
        );
        assert_eq!(
            l.check("a", limit, 0, 200_000).await.unwrap(),
            Decision::Allowed
        );
        assert!(l.state.lock().unwrap().get("c").is_none());
    }
}
