//! The cookie-session cache: cookie sessions this node has read, keyed by cookie-session
//! id, so that a hot `GET /api/auth/session` needs no round trip. It belongs to the
//! cookie side (`redauth_axum::cookie_auth::CookieAuth` owns one), apart from the
//! principal cache of login sessions ([`SessionCache`]).
//!
//! # The seam with the principal cache
//!
//! A cookie session linked to a login session is only as good as that login session.
//! Every way a login session ends (logout, log out everywhere, disable, password
//! change, theft detection, the per-user cap, deletion, a feed message from the node
//! that did any of these) reaches this node as an invalidation of the principal cache,
//! which also owns the rules that keep a revoked principal out: load tickets, distrust
//! from the moment the feed is lost, the maximum age. This cache repeats none of that.
//! It depends on the principal cache instead, in two directions:
//!
//! - **It looks, for correctness.** A linked entry is served only together with the
//!   principal of its login session, looked up in the principal cache at every hit,
//!   and nothing is served while the principal cache is distrusted. Whatever removes
//!   or refuses a principal, here or through the feed, therefore stops its cookie
//!   sessions from being served at that same moment: there is no message this cache
//!   could miss or apply out of order. The next check reads both from the store (one
//!   round trip) and finds the cookie session gone. The lookup is what a check needs
//!   anyway, and it costs a read lock and an `Arc` clone: no allocation, no round trip.
//! - **It is told, for the rest.** The principal cache tells this one
//!   (`DependentCache`) of every invalidation and flush it applies, in the same call
//!   and before announcing it: a user's entries go with `Invalidation::User`, all go
//!   with `Invalidation::All` and when the feed is lost or resubscribes. That frees the
//!   memory at once, and it keeps cookie sessions no login made (no principal to look
//!   at) from being served across a feed loss too. A single login session's end
//!   (`Invalidation::Session`) has nothing to remove here, where entries are keyed by
//!   cookie-session id: looking at the principal covers it.
//!
//! Why not only be told: ending one login session would need an index from login
//! sessions to cookie sessions, and one message handled wrongly would be a revocation
//! not applied. Why not only look: unlinked entries would outlive a feed loss, and
//! entries of ended sessions would hold memory until evicted.
//!
//! Entries share the principal cache's capacity (`REDAUTH_CACHE_CAPACITY`, a separate
//! bound of as many cookie sessions) and maximum age (`REDAUTH_CACHE_MAX_AGE_SECS`),
//! and each is also bounded by its freshness window (`REDAUTH_SESSION_CACHE_SECS`) and
//! the cookie session's expiry. Inserts take no load ticket: a linked entry is never
//! served without a principal, which the ticket rule guards, and an unlinked one has
//! no revocation to race.

use std::sync::{Arc, Weak};

use compact_str::CompactString;

use crate::cache::{Bounded, DependentCache, Entry, SessionCache};
use crate::clock::{Clock, UnixTime};
use crate::cookie_session::CookieSession;
use crate::cookie_store::decoded_link_ids;
use crate::model::Principal;
use crate::service::AuthService;
use crate::store::Invalidation;

/// Cookie sessions as last read from the store, and which cookie session links to
/// which login session. Cloning shares the cache.
#[derive(Clone)]
pub struct CookieSessionCache {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Bounded<CachedCookieSession>,
    links: Bounded<CookieLink>,
    /// The cache this one depends on; see the module documentation.
    principals: SessionCache,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CookieSessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSessionCache")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// A cookie session as last read from the store, trusted until `fresh_until`.
#[derive(Debug, Clone)]
pub struct CachedCookieSession {
    /// The session as read from the store (its data with the link).
    pub session: CookieSession,
    /// The earlier of the session's expiry and the end of the cache window.
    pub fresh_until: UnixTime,
    /// The login session the data links to, read from the data when the entry was
    /// placed, so that a hit finds its principal without parsing the data again.
    login: Option<LoginSessionKey>,
}

#[derive(Debug, Clone)]
struct LoginSessionKey {
    user_id: CompactString,
    session_id: CompactString,
}

/// What a hit hands back: the cookie session, and the principal of the login session
/// it links to (`None` for a cookie session no login made).
#[derive(Debug, Clone)]
pub struct CookieCacheHit {
    /// The cached cookie session.
    pub entry: Arc<CachedCookieSession>,
    /// The cached principal of the login session it links to; `None` only for a cookie
    /// session without a link.
    pub principal: Option<Arc<Principal>>,
}

/// See [`CookieSessionCache::remember_link`].
struct CookieLink {
    cookie_id: CompactString,
    user_id: CompactString,
    session_id: CompactString,
    expires_at: UnixTime,
}

impl CookieSessionCache {
    /// A cache that depends on the principal cache of `service` (see the module
    /// documentation), with its capacity, maximum age and clock.
    pub fn new(service: &AuthService) -> Self {
        Self::depending_on(service.cache())
    }

    pub(crate) fn depending_on(principals: &SessionCache) -> Self {
        let clock = principals.clock().clone();
        let (capacity, max_age) = (principals.capacity(), principals.max_age_secs());
        let born = clock.now();
        let inner = Arc::new(Inner {
            sessions: Bounded::new(capacity, born, max_age),
            links: Bounded::new(capacity, born, max_age),
            principals: principals.clone(),
            clock,
        });
        let dependent: Weak<dyn DependentCache> = Arc::downgrade(&inner) as Weak<Inner>;
        principals.add_dependent(dependent);
        Self { inner }
    }

    /// The cached cookie session `id`, if it is live and fresh at the clock's now, the
    /// principal cache is trusted, and (for a linked one) the principal of its login
    /// session is cached. A cookie session whose principal is gone is a miss: the
    /// caller reads both again.
    pub fn get(&self, id: &str) -> Option<CookieCacheHit> {
        let inner = &self.inner;
        if !inner.principals.is_trusted() {
            return None;
        }
        let now = inner.clock.now();
        let entry = inner.sessions.get(id, now)?;
        let live = entry.session.expires_at.is_none_or(|e| now < e);
        if !(live && now < entry.fresh_until) {
            return None;
        }
        let principal = match &entry.login {
            None => None,
            Some(login) => Some(inner.principals.get(&login.user_id, &login.session_id)?),
        };
        Some(CookieCacheHit { entry, principal })
    }

    /// Caches `session` until `fresh_until` (or its expiry, if earlier). Refused while
    /// the principal cache is distrusted.
    pub fn insert(&self, session: CookieSession, fresh_until: UnixTime) {
        let inner = &self.inner;
        if !inner.principals.is_trusted() {
            return;
        }
        let login = decoded_link_ids(&session.data).map(|(user_id, session_id)| LoginSessionKey {
            user_id: user_id.into(),
            session_id: session_id.into(),
        });
        let fresh_until = session
            .expires_at
            .map_or(fresh_until, |e| e.min(fresh_until));
        inner.sessions.insert(
            Arc::new(CachedCookieSession {
                session,
                fresh_until,
                login,
            }),
            inner.clock.now(),
        );
    }

    /// Forgets cookie session `id` and its link (it ended, or moved to a new id).
    pub fn evict(&self, id: &str) {
        self.inner.sessions.remove(id);
        self.inner.links.remove(id);
    }

    /// Remembers that cookie session `cookie_id` links to the login session
    /// `session_id` of `user_id`, until `expires_at`. Kept apart from the cookie session
    /// itself, so it is known even when cookie sessions are not cached
    /// (`REDAUTH_SESSION_CACHE_SECS=0`): it lets a check that must read the cookie
    /// session anyway read only that, when the principal is cached
    /// ([`Self::linked_principal`]).
    pub fn remember_link(
        &self,
        cookie_id: &str,
        user_id: &str,
        session_id: &str,
        expires_at: UnixTime,
    ) {
        let inner = &self.inner;
        if !inner.principals.is_trusted() {
            return;
        }
        inner.links.insert(
            Arc::new(CookieLink {
                cookie_id: cookie_id.into(),
                user_id: user_id.into(),
                session_id: session_id.into(),
                expires_at,
            }),
            inner.clock.now(),
        );
    }

    /// The cached principal of the login session cookie session `cookie_id` was last
    /// seen linked to. A hint only: the caller still reads the link from the session
    /// data it loads and checks it names this principal.
    pub fn linked_principal(&self, cookie_id: &str) -> Option<Arc<Principal>> {
        let inner = &self.inner;
        if !inner.principals.is_trusted() {
            return None;
        }
        let link = inner.links.get(cookie_id, inner.clock.now())?;
        inner.principals.get(&link.user_id, &link.session_id)
    }

    /// Cookie sessions currently held (expired ones included until evicted), for
    /// tests and metrics.
    pub fn len(&self) -> u64 {
        self.inner.sessions.len()
    }

    /// True when no cookie session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DependentCache for Inner {
    fn invalidated(&self, what: &Invalidation) {
        match what {
            // Keyed by cookie-session id: nothing to find by login session here. Its
            // cookie sessions stop being served because their principal is gone.
            Invalidation::Session(_) => {}
            Invalidation::User(uid) => {
                self.sessions.remove_owned_by(uid);
                self.links.remove_owned_by(uid);
            }
            Invalidation::All => self.flushed(),
        }
    }

    fn flushed(&self) {
        self.sessions.clear();
        self.links.clear();
    }
}

impl Entry for CachedCookieSession {
    fn key(&self) -> &str {
        &self.session.id
    }
    fn owner(&self) -> Option<&str> {
        self.session.user_id.as_deref()
    }
    fn expires_at(&self) -> UnixTime {
        // Already the earlier of the session's end and the cache window.
        self.fresh_until
    }
}

impl Entry for CookieLink {
    fn key(&self) -> &str {
        &self.cookie_id
    }
    fn owner(&self) -> Option<&str> {
        Some(&self.user_id)
    }
    fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::principal;
    use crate::clock::ManualClock;
    use crate::cookie_store::LINK_KEY;
    use crate::store::FeedEvent;

    fn cookie(id: &str, uid: Option<&str>, expires: Option<UnixTime>) -> CookieSession {
        CookieSession {
            id: id.into(),
            user_id: uid.map(str::to_owned),
            data: serde_json::json!({}),
            created_at: None,
            expires_at: expires,
        }
    }

    /// A cookie session linked to login session `sid` of `uid`.
    fn linked(id: &str, uid: &str, sid: &str) -> CookieSession {
        CookieSession {
            data: serde_json::json!({ LINK_KEY: {"user_id": uid, "session_id": sid} }),
            ..cookie(id, Some(uid), None)
        }
    }

    /// A principal cache and a cookie cache depending on it.
    fn caches(capacity: u64, max_age: i64) -> (Arc<ManualClock>, SessionCache, CookieSessionCache) {
        let clock = Arc::new(ManualClock::starting_now());
        let principals = SessionCache::new(capacity, max_age, clock.clone());
        let cookies = CookieSessionCache::depending_on(&principals);
        (clock, principals, cookies)
    }

    fn cache_principal(principals: &SessionCache, uid: &str, sid: &str, expires: UnixTime) {
        principals.insert_loaded(principals.load_ticket(), principal(uid, sid, expires));
    }

    #[test]
    fn cookie_sessions_stay_fresh_only_for_their_window_and_life() {
        let (clock, _principals, cache) = caches(100, 3600);
        let t = clock.now();
        cache.insert(cookie("c1", None, Some(t + 100)), t + 10);
        cache.insert(cookie("c2", None, Some(t + 5)), t + 10);
        cache.insert(cookie("c3", None, None), t + 10);
        assert!(cache.get("c1").is_some());
        clock.advance(5);
        assert!(cache.get("c2").is_none(), "session ended");
        assert!(cache.get("c3").is_some());
        clock.advance(5);
        assert!(cache.get("c1").is_none(), "window over");
        assert!(cache.get("c3").is_none());
    }

    #[test]
    fn cookie_sessions_are_evicted_with_their_id_user_or_everything() {
        let (clock, principals, cache) = caches(100, 3600);
        let until = clock.now() + 600;
        for (id, uid) in [("a", Some("u1")), ("b", Some("u1")), ("d", None)] {
            cache.insert(cookie(id, uid, None), until);
        }
        cache_principal(&principals, "u2", "s-c", until);
        cache.insert(linked("c", "u2", "s-c"), until);
        cache.evict("a");
        assert!(cache.get("a").is_none());
        principals.invalidate(&Invalidation::User("u1".into()));
        assert!(cache.get("b").is_none());
        assert!(cache.get("c").is_some());
        // Ending the login session "c" links to ends it here too.
        principals.invalidate(&Invalidation::Session("s-c".into()));
        assert!(cache.get("c").is_none());
        assert!(cache.get("d").is_some());
        principals.invalidate(&Invalidation::All);
        assert!(cache.get("d").is_none());
        assert_eq!(cache.len(), 0);
    }

    /// The seam: every way a principal leaves the principal cache (an invalidation of
    /// its session, its user or everything, the maximum age, its own expiry) stops the
    /// cookie sessions linked to it from being served, without the cookie cache doing
    /// anything.
    #[test]
    fn a_linked_cookie_session_is_served_only_with_its_principal() {
        let (clock, principals, cache) = caches(100, 60);
        let t = clock.now();
        let whats = [
            Invalidation::Session("s1".into()),
            Invalidation::User("u1".into()),
            Invalidation::All,
        ];
        for what in whats {
            cache_principal(&principals, "u1", "s1", t + 600);
            cache.insert(linked("c1", "u1", "s1"), t + 600);
            let hit = cache.get("c1").expect("cached with its principal");
            let p = hit.principal.expect("linked");
            assert_eq!((&*p.user_id, &*p.session_id), ("u1", "s1"));
            principals.invalidate(&what);
            assert!(cache.get("c1").is_none(), "{what:?}");
        }
        // Never cached: the principal was not loaded on this node.
        cache.insert(linked("c2", "u1", "s2"), t + 600);
        assert!(cache.get("c2").is_none());
        // Another user's login session of the same id does not count.
        cache_principal(&principals, "u9", "s2", t + 600);
        assert!(cache.get("c2").is_none());
        // The principal's own end.
        cache_principal(&principals, "u1", "s3", t + 5);
        cache.insert(linked("c3", "u1", "s3"), t + 600);
        assert!(cache.get("c3").is_some());
        clock.advance(5);
        assert!(cache.get("c3").is_none());
    }

    #[test]
    fn a_lost_feed_flushes_and_distrusts_cookie_sessions_until_it_resubscribes() {
        let (clock, principals, cache) = caches(100, 3600);
        let t = clock.now();
        cache_principal(&principals, "u1", "s1", t + 600);
        cache.insert(linked("c1", "u1", "s1"), t + 60);
        cache.insert(cookie("anon", None, None), t + 60);
        cache.remember_link("c1", "u1", "s1", t + 60);
        assert!(cache.linked_principal("c1").is_some());

        principals.apply_feed_event(FeedEvent::Lost);
        assert!(cache.get("c1").is_none());
        assert!(
            cache.get("anon").is_none(),
            "no login made it, still not served"
        );
        assert!(cache.linked_principal("c1").is_none());
        assert_eq!(cache.len(), 0, "flushed at the moment of loss");
        // Refused while lost.
        cache.insert(cookie("anon2", None, None), t + 60);
        cache.remember_link("c2", "u1", "s1", t + 60);
        assert_eq!(cache.len(), 0);

        principals.apply_feed_event(FeedEvent::Subscribed);
        cache.insert(cookie("anon", None, None), t + 60);
        assert!(cache.get("anon").is_some(), "trusted again");
    }

    #[test]
    fn no_cookie_session_is_served_past_the_maximum_age() {
        let (clock, _principals, cache) = caches(100, 60);
        let t = clock.now();
        cache.insert(cookie("c1", Some("u1"), None), t + 600);
        clock.advance(59);
        assert!(cache.get("c1").is_some());
        clock.advance(1);
        assert!(cache.get("c1").is_none());
    }

    #[test]
    fn expired_entries_are_refused_before_the_hand_reaches_them() {
        let (clock, _principals, cache) = caches(10, 3600);
        let t = clock.now();
        cache.insert(cookie("c", Some("u"), None), t + 5);
        clock.advance(5);
        assert!(cache.get("c").is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn invalidating_a_user_reaches_every_shard() {
        let (clock, principals, cache) = caches(100_000, 3600);
        assert_eq!(cache.inner.sessions.shard_count(), 64);
        let exp = clock.now() + 600;
        for i in 0..2_000 {
            cache.insert(cookie(&format!("c{i}"), Some("u1"), None), exp);
            cache.insert(cookie(&format!("d{i}"), Some("u2"), None), exp);
        }
        principals.invalidate(&Invalidation::User("u1".into()));
        for i in 0..2_000 {
            assert!(cache.get(&format!("c{i}")).is_none(), "c{i}");
            assert!(cache.get(&format!("d{i}")).is_some(), "d{i}");
        }
        assert_eq!(cache.len(), 2_000);
    }

    #[test]
    fn a_dropped_cookie_cache_is_no_longer_told() {
        let (_clock, principals, cache) = caches(100, 3600);
        let weak = Arc::downgrade(&cache.inner);
        drop(cache);
        assert!(
            weak.upgrade().is_none(),
            "the principal cache holds it weakly"
        );
        principals.invalidate(&Invalidation::All);
        let again = CookieSessionCache::depending_on(&principals);
        principals.apply_feed_event(FeedEvent::Lost);
        assert!(again.is_empty());
    }
}
