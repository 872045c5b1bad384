//! The in-process session cache ("memory store"): principals of live sessions keyed by
//! session id, so a valid access token is checked without a storage round trip.
//!
//! Entries carry their session's expiry and are refused once the [`Clock`] passes it,
//! so an entry never outlives its session, whatever moka's own timer says.
//!
//! Cookie sessions are cached beside principals, keyed by cookie-session id, so a hot
//! `GET /api/auth/session` needs no round trip either. A cookie entry is only trusted
//! together with the principal of the login session it links to: revoking that login
//! session evicts the principal (here and, through the feed, on every node), and the
//! next check re-reads both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::clock::{Clock, UnixTime};
use crate::cookie_session::CookieSession;
use crate::model::Principal;
use crate::store::Invalidation;

#[derive(Clone)]
pub struct SessionCache {
    entries: Cache<String, Arc<Principal>>,
    cookies: Cache<String, Arc<CachedCookieSession>>,
    clock: Arc<dyn Clock>,
    /// Counts invalidations applied, so callers (tests, metrics) can await delivery
    /// of a revocation instead of sleeping.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Tells moka to drop an entry when its session ends, measured on the injected clock
/// at insert time; `get` re-checks against the clock, which is what tests move.
struct UntilSessionEnds(Arc<dyn Clock>);

impl Expiry<String, Arc<Principal>> for UntilSessionEnds {
    fn expire_after_create(&self, _: &String, p: &Arc<Principal>, _: Instant) -> Option<Duration> {
        let secs = (p.session_expires_at - self.0.now()).max(0);
        Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    }

    fn expire_after_update(
        &self,
        k: &String,
        p: &Arc<Principal>,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(k, p, at)
    }
}

/// A cookie session as last read from the store, trusted until `fresh_until`.
#[derive(Debug, Clone)]
pub struct CachedCookieSession {
    pub session: CookieSession,
    /// The earlier of the session's expiry and the end of the cache window.
    pub fresh_until: UnixTime,
}

struct UntilStale(Arc<dyn Clock>);

impl Expiry<String, Arc<CachedCookieSession>> for UntilStale {
    fn expire_after_create(
        &self,
        _: &String,
        c: &Arc<CachedCookieSession>,
        _: Instant,
    ) -> Option<Duration> {
        let secs = (c.fresh_until - self.0.now()).max(0);
        Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    }

    fn expire_after_update(
        &self,
        k: &String,
        c: &Arc<CachedCookieSession>,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(k, c, at)
    }
}

impl SessionCache {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        let entries = Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilSessionEnds(clock.clone()))
            .support_invalidation_closures()
            .build();
        let cookies = Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilStale(clock.clone()))
            .support_invalidation_closures()
            .build();
        Self {
            entries,
            cookies,
            clock,
            applied: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// A receiver of the number of invalidations applied so far.
    pub fn invalidations_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The cached principal of `session_id`, if it belongs to `user_id` and is live.
    pub fn get(&self, user_id: &str, session_id: &str) -> Option<Arc<Principal>> {
        let p = self.entries.get(session_id)?;
        let now: UnixTime = self.clock.now();
        (p.user_id == user_id && now < p.session_expires_at).then_some(p)
    }

    pub fn insert(&self, principal: Principal) -> Arc<Principal> {
        let p = Arc::new(principal);
        self.entries.insert(p.session_id.clone(), p.clone());
        p
    }

    /// The cached cookie session `id`, if still fresh and live at the clock's now.
    pub fn get_cookie_session(&self, id: &str) -> Option<Arc<CachedCookieSession>> {
        let c = self.cookies.get(id)?;
        let now = self.clock.now();
        let live = c.session.expires_at.is_none_or(|e| now < e);
        (live && now < c.fresh_until).then_some(c)
    }

    pub fn insert_cookie_session(&self, session: CookieSession, fresh_until: UnixTime) {
        let fresh_until = session
            .expires_at
            .map_or(fresh_until, |e| e.min(fresh_until));
        let id = session.id.clone();
        self.cookies.insert(
            id,
            Arc::new(CachedCookieSession {
                session,
                fresh_until,
            }),
        );
    }

    pub fn evict_cookie_session(&self, id: &str) {
        self.cookies.invalidate(id);
    }

    /// Cookie sessions currently held, for tests and metrics.
    pub fn cookie_sessions_len(&self) -> u64 {
        self.cookies.run_pending_tasks();
        self.cookies.entry_count()
    }

    pub fn invalidate(&self, what: &Invalidation) {
        match what {
            Invalidation::Session(sid) => {
                self.entries.invalidate(sid);
                self.cookies.invalidate(sid);
            }
            Invalidation::User(uid) => {
                let uid = uid.clone();
                let cookie_uid = uid.clone();
                // Only fails if closures were not enabled at build time, which they are.
                let _ = self
                    .entries
                    .invalidate_entries_if(move |_, p| p.user_id == uid);
                let _ = self.cookies.invalidate_entries_if(move |_, c| {
                    c.session.user_id.as_deref() == Some(cookie_uid.as_str())
                });
            }
            Invalidation::All => {
                self.entries.invalidate_all();
                self.cookies.invalidate_all();
            }
        }
        self.applied.send_modify(|n| *n += 1);
    }

    /// Entries currently held (after pending maintenance), for tests and metrics.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn principal(uid: &str, sid: &str, expires: UnixTime) -> Principal {
        Principal {
            user_id: uid.into(),
            username: "u".into(),
            roles: vec![],
            permissions: Default::default(),
            session_id: sid.into(),
            session_expires_at: expires,
        }
    }

    #[test]
    fn entries_never_outlive_their_session() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(100, clock.clone());
        cache.insert(principal("u1", "s1", clock.now() + 60));
        assert!(cache.get("u1", "s1").is_some());
        assert!(cache.get("u2", "s1").is_none(), "another user's session id");
        clock.advance(60);
        assert!(cache.get("u1", "s1").is_none());
    }

    #[test]
    fn invalidation_by_session_user_and_all() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(100, clock.clone());
        let exp = clock.now() + 600;
        for (u, s) in [("u1", "s1"), ("u1", "s2"), ("u2", "s3")] {
            cache.insert(principal(u, s, exp));
        }
        cache.invalidate(&Invalidation::Session("s1".into()));
        assert!(cache.get("u1", "s1").is_none());
        assert!(cache.get("u1", "s2").is_some());
        cache.invalidate(&Invalidation::User("u1".into()));
        assert!(cache.get("u1", "s2").is_none());
        assert!(cache.get("u2", "s3").is_some());
        cache.invalidate(&Invalidation::All);
        assert!(cache.get("u2", "s3").is_none());
    }

    fn cookie(id: &str, uid: Option<&str>, expires: Option<UnixTime>) -> CookieSession {
        CookieSession {
            id: id.into(),
            user_id: uid.map(str::to_owned),
            data: serde_json::json!({}),
            created_at: None,
            expires_at: expires,
        }
    }

    #[test]
    fn cookie_sessions_stay_fresh_only_for_their_window_and_life() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(100, clock.clone());
        let t = clock.now();
        cache.insert_cookie_session(cookie("c1", None, Some(t + 100)), t + 10);
        cache.insert_cookie_session(cookie("c2", None, Some(t + 5)), t + 10);
        cache.insert_cookie_session(cookie("c3", None, None), t + 10);
        assert!(cache.get_cookie_session("c1").is_some());
        clock.advance(5);
        assert!(cache.get_cookie_session("c2").is_none(), "session ended");
        assert!(cache.get_cookie_session("c3").is_some());
        clock.advance(5);
        assert!(cache.get_cookie_session("c1").is_none(), "window over");
        assert!(cache.get_cookie_session("c3").is_none());
    }

    #[test]
    fn cookie_sessions_are_evicted_with_their_id_user_or_everything() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(100, clock.clone());
        let until = clock.now() + 600;
        for (id, uid) in [
            ("a", Some("u1")),
            ("b", Some("u1")),
            ("c", Some("u2")),
            ("d", None),
        ] {
            cache.insert_cookie_session(cookie(id, uid, None), until);
        }
        cache.evict_cookie_session("a");
        assert!(cache.get_cookie_session("a").is_none());
        cache.invalidate(&Invalidation::User("u1".into()));
        assert!(cache.get_cookie_session("b").is_none());
        assert!(cache.get_cookie_session("c").is_some());
        cache.invalidate(&Invalidation::Session("c".into()));
        assert!(cache.get_cookie_session("c").is_none());
        assert!(cache.get_cookie_session("d").is_some());
        cache.invalidate(&Invalidation::All);
        assert!(cache.get_cookie_session("d").is_none());
        assert_eq!(cache.cookie_sessions_len(), 0);
    }

    #[test]
    fn capacity_is_bounded() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(50, clock.clone());
        for i in 0..1_000 {
            cache.insert(principal("u", &format!("s{i}"), clock.now() + 600));
        }
        assert!(cache.len() <= 50, "{}", cache.len());
    }
}
