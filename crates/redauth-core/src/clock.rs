//! Time as a parameter. Every expiry decision in redauth reads a [`Clock`], so tests can
//! move time forward instantly instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch. Signed so that differences never underflow.
pub type UnixTime = i64;

/// The source of "now" for all core logic.
pub trait Clock: Send + Sync + 'static {
    /// The current time in whole seconds since the Unix epoch: what every expiry in the
    /// core is compared with.
    fn now(&self) -> UnixTime;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to. It starts at the real current time because
/// Redis still applies real TTLs to keys; a clock in the distant past or future would
/// make those TTLs expire keys immediately or never.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at the real current time, standing still there until [`Self::advance`].
    pub fn starting_now() -> Self {
        Self(AtomicI64::new(SystemClock.now()))
    }

    /// Moves the clock `seconds` forward (backward if negative, for clock-skew tests),
    /// for every holder of this clock at once.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}
