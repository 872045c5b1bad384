//! The in-process session cache ("memory store"): principals of live sessions keyed by
//! session id, so a valid access token is checked without a storage round trip.
//!
//! Entries carry their session's expiry and are refused once the [`Clock`] passes it,
//! so an entry never outlives its session. Nor is any entry trusted longer than the
//! cache's maximum age (`REDAUTH_CACHE_MAX_AGE_SECS`) after it was placed: whatever
//! went wrong with the revocation feed, a node re-reads Redis at least that often.
//!
//! # Trust: load tickets and the feed
//!
//! Redis is the source of truth and the feed tells this cache what to drop. Two races
//! could let a revoked principal back in, and the cache closes both:
//!
//! - A slow load. A miss reads the store; if the revocation's invalidation is applied
//!   while that read is in flight, a plain insert afterwards would cache what Redis no
//!   longer holds. So a load takes a [`LoadTicket`] before it reads, and
//!   [`SessionCache::insert_loaded`] caches only if no invalidation (of any kind) and
//!   no feed loss happened since: every invalidation bumps an epoch under a write
//!   lock; an insert compares it under the read lock, so it lands either before the
//!   bump (and the removal that follows takes it out) or sees the bump.
//! - A lost feed. Messages published while the subscription is down (or silently
//!   dead) are gone. From the moment the feed reports [`FeedEvent::Lost`] the cache is
//!   flushed and distrusted: `get` answers nothing and inserts are refused, until
//!   [`FeedEvent::Subscribed`] (flushed again, then trusted). Distrust is one atomic
//!   flag read by `get`: the hot path takes no lock for it.
//!
//! Cookie sessions have a cache of their own ([`crate::cookie_cache`]), owned by the
//! cookie side. It *depends* on this one rather than repeating its rules: a cached
//! cookie session is served only together with the principal here of the login session
//! it links to, only while this cache is trusted, and this cache tells it
//! (`DependentCache`) of every invalidation and flush it applies. The reasons are in
//! that module.
//!
//! # Why a purpose-built cache
//!
//! The cache must hold a million sessions in a few hundred bytes each (benchmark P5:
//! at most 256 MiB of RSS for 1,000,000 sessions). A general-purpose cache (moka, used
//! before) spent about 420 B of bookkeeping per entry on access and write order
//! deques, per-entry timers and a key stored twice. What redauth needs is simpler:
//! a hard bound on the number of entries, eviction that keeps hot sessions, and expiry
//! that is checked on read anyway. So `Bounded`, the one implementation behind both
//! principals and cookie sessions (crate-visible for [`crate::cookie_cache`]), is:
//!
//! - a power-of-two number of shards (one for small capacities), each a lock around a
//!   slab of slots (an `Arc` to the entry, a tag of its owner's hash, and one atomic
//!   word holding the reference bit and when the entry was placed, for the maximum
//!   age: 16 B) and a `hashbrown::HashTable<u32>` of slot numbers that hashes the entry's
//!   own key, so the key is stored once, inside the entry (about 10 B per entry);
//! - one atomic count over all shards, reserved before an entry is placed, so `len()`
//!   never exceeds the capacity, even with many threads inserting at once;
//! - CLOCK (second chance) eviction: a hit sets the slot's reference bit (an atomic,
//!   so reads share a read lock); once the cache is full an insert moves its shard's
//!   hand over the slab, clearing set bits, and takes the first slot whose bit was
//!   clear, or whose entry has expired, whatever its bit;
//! - no background thread: expired entries are refused on read and are the first to
//!   go when the hand meets them.
//!
//! Principals are kept small too (see [`Principal`]): ids and username are held inline,
//! and roles and permissions are interned here, so all sessions with the same role set
//! share one [`Access`].
//!
//! Measured with `bench-cache-rss`: 1,000,000 realistic sessions in about 135 MiB of
//! RSS, 139 B each: 112 B for the `Arc<Principal>` allocation, the rest slot and index
//! (moka with the previous `Principal`: 1,072 MiB, 1,121 B each).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use hashbrown::HashTable;

use crate::clock::{Clock, UnixTime};
use crate::model::{Access, Principal};
use crate::store::{FeedEvent, Invalidation};

/// How long an entry is served, at most, when nothing else is configured: a bound on
/// how long a revocation can go unnoticed if everything else fails.
pub const DEFAULT_MAX_AGE_SECS: i64 = 60;

/// Sessions cached per process when nothing else is configured: about 14 MiB at the
/// measured 139 B an entry, and more live sessions than most deployments have, so the
/// hot path rarely misses.
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// The principal cache of one process: principals of live login sessions, keyed by
/// session id, shared by every clone. The rules it keeps (expiry, maximum age, load
/// tickets, distrust while the feed is lost) are in the module documentation. An
/// [`AuthService`](crate::AuthService) builds and owns one; embedders observe it through
/// [`AuthService::cache_status`](crate::AuthService::cache_status).
#[derive(Clone)]
pub struct SessionCache {
    entries: Arc<Bounded<Principal>>,
    access: Arc<Interner>,
    clock: Arc<dyn Clock>,
    gate: Arc<Gate>,
    /// Counts invalidations applied (flushes for feed losses and resubscriptions
    /// included), so callers (tests, metrics) can await delivery of a revocation
    /// instead of sleeping.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    dependents: Arc<Dependents>,
}

/// Orders invalidations against loads in flight, and holds whether the feed is
/// trusted. See the module documentation.
struct Gate {
    /// Bumped (under the write lock) by every invalidation and change of feed state;
    /// compared (under the read lock) by [`SessionCache::insert_loaded`].
    epoch: RwLock<u64>,
    /// False from the moment the feed is known lost until it has resubscribed. An
    /// atomic, so `get` checks it without a lock.
    trusted: AtomicBool,
}

impl Gate {
    fn bump(&self) -> u64 {
        let mut epoch = self.epoch.write().unwrap_or_else(PoisonError::into_inner);
        *epoch = epoch.wrapping_add(1);
        *epoch
    }

    fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }
}

/// A cache whose entries are only as good as the principals here (the cookie-session
/// cache): told of everything that drops principals, in the same call that drops them,
/// before [`SessionCache::invalidations_applied`] announces it and, on a resubscription,
/// before trust returns. So whoever awaits the announcement finds both caches updated,
/// and nothing placed in a dependent while the feed was lost survives into trust.
pub(crate) trait DependentCache: Send + Sync {
    /// `what` was applied to the principals.
    fn invalidated(&self, what: &Invalidation);
    /// Every principal was dropped: the feed was lost, or has resubscribed.
    fn flushed(&self);
}

/// Held weakly: a dependent lives as long as its owner (a `CookieAuth`), not as long as
/// the service whose principals it depends on.
#[derive(Default)]
struct Dependents(RwLock<Vec<Weak<dyn DependentCache>>>);

impl Dependents {
    fn add(&self, dependent: Weak<dyn DependentCache>) {
        let mut all = self.0.write().unwrap_or_else(PoisonError::into_inner);
        all.retain(|d| d.strong_count() > 0);
        all.push(dependent);
    }

    fn tell(&self, what: impl Fn(&dyn DependentCache)) {
        let all = self.0.read().unwrap_or_else(PoisonError::into_inner);
        for dependent in all.iter().filter_map(Weak::upgrade) {
            what(&*dependent);
        }
    }
}

/// Proof of when a load started: taken with [`SessionCache::load_ticket`] before the
/// store is read, spent by [`SessionCache::insert_loaded`]. Deliberately not `Clone`:
/// one ticket, one load.
#[derive(Debug)]
#[must_use = "a load ticket is spent by insert_loaded"]
pub struct LoadTicket(u64);

/// What the principal cache is doing, read-only: for `/readyz`, metrics and tests,
/// none of which has any business changing it (see `AuthService::cache_status`).
#[derive(Debug, Clone)]
pub struct CacheStatus {
    /// False while the revocation feed is lost: nothing is served from memory, every
    /// check reads the store.
    pub trusted: bool,
    /// Principals held (expired ones included until evicted); never above the capacity.
    pub entries: u64,
    /// How many invalidations have been applied (feed losses and resubscriptions
    /// included). A receiver, so that a test awaits a revocation's delivery instead of
    /// sleeping; `*borrow()` is the count now.
    pub invalidations_applied: tokio::sync::watch::Receiver<u64>,
}

impl SessionCache {
    /// A cache of at most `capacity` principals, none of them served more than
    /// `max_age_secs` after it was placed (0 or less: nothing is served). Starts
    /// trusted: a store without a feed (the embedded one) never reports a loss, and one
    /// with a feed reports [`FeedEvent::Lost`] as soon as it is subscribed to.
    pub fn new(capacity: u64, max_age_secs: i64, clock: Arc<dyn Clock>) -> Self {
        let born = clock.now();
        Self {
            entries: Arc::new(Bounded::new(capacity, born, max_age_secs)),
            access: Arc::new(Interner::default()),
            clock,
            gate: Arc::new(Gate {
                epoch: RwLock::new(0),
                trusted: AtomicBool::new(true),
            }),
            applied: Arc::new(tokio::sync::watch::channel(0).0),
            dependents: Arc::default(),
        }
    }

    /// A receiver of the number of invalidations applied so far.
    pub fn invalidations_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Whether the cache serves entries: false while the feed is lost.
    pub fn is_trusted(&self) -> bool {
        self.gate.trusted()
    }

    /// A snapshot for `/readyz`, metrics and tests: what
    /// [`AuthService::cache_status`](crate::AuthService::cache_status) returns.
    pub fn status(&self) -> CacheStatus {
        CacheStatus {
            trusted: self.is_trusted(),
            entries: self.len(),
            invalidations_applied: self.invalidations_applied(),
        }
    }

    /// Registers a cache that depends on these principals. It is told of invalidations
    /// and flushes from now on, until it is dropped.
    pub(crate) fn add_dependent(&self, dependent: Weak<dyn DependentCache>) {
        self.dependents.add(dependent);
    }

    /// The capacity, maximum age and clock, which a dependent cache shares.
    pub(crate) fn capacity(&self) -> u64 {
        u64::try_from(self.entries.capacity).unwrap_or(u64::MAX)
    }

    pub(crate) fn max_age_secs(&self) -> i64 {
        self.entries.max_age
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The cached principal of `session_id`, if it belongs to `user_id`, is live, is
    /// younger than the maximum age, and the feed is trusted.
    pub fn get(&self, user_id: &str, session_id: &str) -> Option<Arc<Principal>> {
        if !self.gate.trusted() {
            return None;
        }
        let now: UnixTime = self.clock.now();
        let p = self.entries.get(session_id, now)?;
        (p.user_id == user_id && now < p.session_expires_at).then_some(p)
    }

    /// Taken before reading the store.
    pub fn load_ticket(&self) -> LoadTicket {
        LoadTicket(
            *self
                .gate
                .epoch
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Caches `principal` only if no invalidation (of any kind) was applied and the
    /// feed was not lost since `ticket` was taken; always returns the (interned) Arc so
    /// the caller can answer its request. What it read was right when it was read; it
    /// just may not be cached, because a revocation may have overtaken it.
    pub fn insert_loaded(&self, ticket: LoadTicket, principal: Principal) -> Arc<Principal> {
        let p = self.intern(principal);
        let now = self.clock.now();
        let epoch = self
            .gate
            .epoch
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the read lock: an invalidation cannot bump the epoch (nor a loss clear
        // the trust) between this check and the placement.
        if *epoch == ticket.0 && self.gate.trusted() {
            self.entries.insert(p.clone(), now);
        }
        drop(epoch);
        p
    }

    fn intern(&self, mut principal: Principal) -> Arc<Principal> {
        principal.access = self.access.intern(principal.access);
        Arc::new(principal)
    }

    /// Drops what `what` names, here and in every dependent cache. Loads in flight
    /// since before this call will not be cached (see [`Self::insert_loaded`]).
    pub fn invalidate(&self, what: &Invalidation) {
        // Bump first, remove after: an `insert_loaded` that saw the old epoch placed
        // its entry before the bump (it held the read lock), so the removal below
        // takes it out; one that comes later sees the new epoch and places nothing.
        self.gate.bump();
        match what {
            Invalidation::Session(sid) => self.entries.remove(sid),
            Invalidation::User(uid) => self.entries.remove_owned_by(uid),
            Invalidation::All => self.entries.clear(),
        }
        self.dependents.tell(|d| d.invalidated(what));
        self.applied.send_modify(|n| *n += 1);
    }

    /// Applies what the store's revocation feed reports (the service subscribes this
    /// to [`crate::Store::subscribe_invalidations`]).
    pub fn apply_feed_event(&self, event: FeedEvent) {
        match event {
            FeedEvent::Invalidate(what) => self.invalidate(&what),
            FeedEvent::Lost => {
                {
                    // Distrust and bump together: a load that checks under the read
                    // lock sees both or neither.
                    let mut epoch = self
                        .gate
                        .epoch
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    *epoch = epoch.wrapping_add(1);
                    self.gate.trusted.store(false, Ordering::Release);
                }
                self.flush();
                self.applied.send_modify(|n| *n += 1);
            }
            FeedEvent::Subscribed => {
                // Anything placed while lost (a plain `insert` racing the loss) goes
                // before trust returns; tickets from before are void.
                self.gate.bump();
                self.flush();
                self.gate.trusted.store(true, Ordering::Release);
                // Announced once trusted, so whoever awaits it sees the final state.
                self.applied.send_modify(|n| *n += 1);
            }
        }
    }

    fn flush(&self) {
        self.entries.clear();
        self.dependents.tell(|d| d.flushed());
    }

    /// Principals currently held (expired ones included until evicted), for tests and
    /// metrics. Never more than the capacity.
    pub fn len(&self) -> u64 {
        self.entries.len()
    }

    /// True when [`Self::len`] is 0 (an expired entry still counts until it is evicted).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`Bounded`] needs to know about the values it holds.
pub(crate) trait Entry: Send + Sync {
    /// The key it is found by. The index hashes it from here, so it is stored once.
    fn key(&self) -> &str;
    /// The user it belongs to, for [`Invalidation::User`].
    fn owner(&self) -> Option<&str>;
    /// The first moment at which it must no longer be served.
    fn expires_at(&self) -> UnixTime;
}

impl Entry for Principal {
    fn key(&self) -> &str {
        &self.session_id
    }
    fn owner(&self) -> Option<&str> {
        Some(&self.user_id)
    }
    fn expires_at(&self) -> UnixTime {
        self.session_expires_at
    }
}

/// At most this many shards: enough that inserts on many cores rarely meet.
const MAX_SHARDS: u64 = 64;
/// One shard per this many entries of capacity (rounded down to a power of two), so
/// a small cache has one shard and its eviction order is exactly CLOCK's.
const MIN_SHARD_ENTRIES: u64 = 1024;
/// How often an insert into a full cache whose own shard is empty (only possible
/// while entries are unevenly spread) retries after evicting in another shard.
const INSERT_ATTEMPTS: usize = 4;

/// A bounded map from [`Entry::key`] to `Arc<T>` with CLOCK eviction. See the module
/// documentation for why it is built this way.
pub(crate) struct Bounded<T> {
    shards: Box<[RwLock<Shard<T>>]>,
    /// Entries held in all shards, reserved before an entry is placed and released
    /// after one is removed: never above `capacity`.
    len: AtomicUsize,
    capacity: usize,
    hasher: RandomState,
    /// The clock's time when the cache was made: slots store when they were placed as
    /// seconds since then, in 31 bits beside the reference bit, so the maximum age
    /// costs no bytes per entry.
    born: UnixTime,
    /// Seconds after its placement at which an entry is no longer served.
    max_age: i64,
}

/// The largest placement time a slot's stamp holds (31 bits: 68 years after `born`).
const MAX_STAMP: i64 = (u32::MAX >> 1) as i64;

struct Shard<T> {
    slots: Vec<Slot<T>>,
    /// Slot numbers, hashed by the key of the entry in the slot.
    index: HashTable<u32>,
    /// Empty slots below `slots.len()`, left by removals.
    free: Vec<u32>,
    /// Entries in this shard.
    len: usize,
    /// The CLOCK hand: the next slot to consider for eviction.
    hand: usize,
}

struct Slot<T> {
    entry: Option<Arc<T>>,
    /// Low bits of the hash of the entry's owner, so removing a user's entries
    /// compares integers and reads only the entries that match.
    owner_tag: u32,
    /// Bit 0: set by a hit, cleared by the passing hand (a second chance). Bits 1 to
    /// 31: when the entry was placed, in seconds since [`Bounded::born`].
    stamp: AtomicU32,
}

const REFERENCED: u32 = 1;

impl<T: Entry> Bounded<T> {
    pub(crate) fn new(capacity: u64, born: UnixTime, max_age: i64) -> Self {
        // Slot numbers are u32; a cache that large would need terabytes anyway.
        let capacity = capacity.min(u64::from(u32::MAX));
        let planned = (capacity / MIN_SHARD_ENTRIES).clamp(1, MAX_SHARDS);
        // The largest power of two not above `planned`, so shard = hash bits & mask.
        let shards = 1usize << (u64::BITS - 1 - planned.leading_zeros());
        Self {
            shards: (0..shards)
                .map(|_| {
                    RwLock::new(Shard {
                        slots: Vec::new(),
                        index: HashTable::new(),
                        free: Vec::new(),
                        len: 0,
                        hand: 0,
                    })
                })
                .collect(),
            len: AtomicUsize::new(0),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            hasher: RandomState::new(),
            born,
            max_age,
        }
    }

    /// `now` as a slot's placement time (without the reference bit).
    fn stamp_at(&self, now: UnixTime) -> u32 {
        // In 0..=MAX_STAMP, so the cast is lossless and the shift drops nothing.
        (now.saturating_sub(self.born).clamp(0, MAX_STAMP) as u32) << 1
    }

    /// Whether an entry whose slot has `stamp` may no longer be served at `now`:
    /// older than the maximum age, or placed "in the future" (the clock stepped back,
    /// or the stamp saturated), where its age cannot be told and distrust is safe.
    fn too_old(&self, stamp: u32, now: UnixTime) -> bool {
        let placed = i64::from(stamp >> 1);
        let since_born = now.saturating_sub(self.born);
        let age = since_born.saturating_sub(placed);
        age < 0 || age >= self.max_age || placed >= MAX_STAMP
    }

    /// Whether the entry in `slot` is not to be served at `now`.
    fn stale(&self, entry: &T, stamp: u32, now: UnixTime) -> bool {
        now >= entry.expires_at() || self.too_old(stamp, now)
    }

    pub(crate) fn len(&self) -> u64 {
        u64::try_from(self.len.load(Ordering::Acquire)).unwrap_or(u64::MAX)
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn owner_tag(&self, owner: Option<&str>) -> u32 {
        // Truncation intended: a tag only filters, every match is confirmed.
        owner.map_or(0, |o| self.hash(o) as u32)
    }

    /// The shard of a key's hash. Uses bits that hashbrown does not (it takes the low
    /// bits for the bucket and the top seven as the control byte), so keys within a
    /// shard stay well spread in its table.
    fn shard_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    fn read(&self, shard: usize) -> Option<RwLockReadGuard<'_, Shard<T>>> {
        let lock = self.shards.get(shard)?;
        Some(lock.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write(&self, shard: usize) -> Option<RwLockWriteGuard<'_, Shard<T>>> {
        let lock = self.shards.get(shard)?;
        Some(lock.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// The entry under `key` unless it has expired at `now`; marks it referenced.
    pub(crate) fn get(&self, key: &str, now: UnixTime) -> Option<Arc<T>> {
        let hash = self.hash(key);
        let shard = self.read(self.shard_of(hash))?;
        let slot = shard.slot_of(hash, key)?;
        let entry = slot.entry.as_ref()?;
        let stamp = slot.stamp.load(Ordering::Relaxed);
        if self.stale(entry, stamp, now) {
            return None;
        }
        // Only write when it changes, so hot entries do not bounce a cache line.
        if stamp & REFERENCED == 0 {
            slot.stamp.fetch_or(REFERENCED, Ordering::Relaxed);
        }
        Some(entry.clone())
    }

    /// Stores `value` under its key, replacing the entry there if any; when the cache
    /// is full, evicts one entry of the key's shard first. Stores nothing if the
    /// capacity is 0.
    pub(crate) fn insert(&self, value: Arc<T>, now: UnixTime) {
        let hash = self.hash(value.key());
        let owner_tag = self.owner_tag(value.owner());
        let stamp = self.stamp_at(now);
        let home = self.shard_of(hash);
        for _ in 0..INSERT_ATTEMPTS {
            let Some(mut shard) = self.write(home) else {
                return;
            };
            if let Some(i) = shard.find(hash, value.key()) {
                if let Some(slot) = shard.slots.get_mut(i) {
                    slot.entry = Some(value);
                    slot.owner_tag = owner_tag;
                    // A new value is a new placement; a hot entry stays hot.
                    let referenced = *slot.stamp.get_mut() & REFERENCED;
                    *slot.stamp.get_mut() = stamp | referenced;
                }
                return;
            }
            let reserved = self
                .len
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.capacity).then_some(n + 1)
                })
                .is_ok();
            if reserved {
                if !shard.place(hash, value, owner_tag, stamp, &self.hasher) {
                    // Cannot happen (slot numbers fit u32); give the reservation back.
                    self.len.fetch_sub(1, Ordering::AcqRel);
                }
                return;
            }
            // Full: the new entry takes the place of one the hand picks in this shard.
            if let Some(victim) = shard.victim(|e, st| self.stale(e, st, now)) {
                let old = shard.take(victim, &self.hasher);
                shard.len += 1;
                shard.put(victim, hash, value, owner_tag, stamp, &self.hasher);
                drop(shard);
                drop(old);
                return;
            }
            // Full, and this shard holds nothing: make room elsewhere and try again.
            drop(shard);
            if !self.evict_one_elsewhere(home, now) {
                return;
            }
        }
    }

    /// Evicts one entry from a shard other than `home`; false if all are empty.
    fn evict_one_elsewhere(&self, home: usize, now: UnixTime) -> bool {
        let n = self.shards.len();
        for step in 1..n {
            let Some(mut shard) = self.write((home + step) % n) else {
                continue;
            };
            if let Some(victim) = shard.victim(|e, st| self.stale(e, st, now)) {
                let old = shard.take(victim, &self.hasher);
                shard.free_slot(victim);
                self.len.fetch_sub(1, Ordering::AcqRel);
                drop(shard);
                drop(old);
                return true;
            }
        }
        false
    }

    pub(crate) fn remove(&self, key: &str) {
        let hash = self.hash(key);
        let Some(mut shard) = self.write(self.shard_of(hash)) else {
            return;
        };
        let Some(i) = shard.find(hash, key) else {
            return;
        };
        let old = shard.take(i, &self.hasher);
        shard.free_slot(i);
        self.len.fetch_sub(1, Ordering::AcqRel);
        drop(shard);
        drop(old);
    }

    /// Removes every entry whose owner is `owner`, in all shards.
    pub(crate) fn remove_owned_by(&self, owner: &str) {
        let tag = self.owner_tag(Some(owner));
        for i in 0..self.shards.len() {
            let Some(mut shard) = self.write(i) else {
                continue;
            };
            let matching: Vec<usize> = (shard.slots.iter().enumerate())
                .filter(|(_, slot)| {
                    slot.owner_tag == tag
                        && (slot.entry.as_ref()).is_some_and(|e| e.owner() == Some(owner))
                })
                .map(|(at, _)| at)
                .collect();
            let mut old = Vec::with_capacity(matching.len());
            for at in matching {
                old.push(shard.take(at, &self.hasher));
                shard.free_slot(at);
                self.len.fetch_sub(1, Ordering::AcqRel);
            }
            drop(shard);
            drop(old);
        }
    }

    pub(crate) fn clear(&self) {
        for i in 0..self.shards.len() {
            let Some(mut shard) = self.write(i) else {
                continue;
            };
            let old = std::mem::take(&mut shard.slots);
            shard.index = HashTable::new();
            shard.free = Vec::new();
            shard.hand = 0;
            self.len.fetch_sub(shard.len, Ordering::AcqRel);
            shard.len = 0;
            drop(shard);
            drop(old);
        }
    }

    #[cfg(test)]
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

impl<T: Entry> Shard<T> {
    fn find(&self, hash: u64, key: &str) -> Option<usize> {
        let slots = &self.slots;
        let i = self.index.find(hash, |&i| {
            slots
                .get(i as usize)
                .and_then(|s| s.entry.as_ref())
                .is_some_and(|e| e.key() == key)
        })?;
        Some(*i as usize)
    }

    fn slot_of(&self, hash: u64, key: &str) -> Option<&Slot<T>> {
        self.slots.get(self.find(hash, key)?)
    }

    /// Puts a new entry in a free slot or a new one; false if slot numbers ran out.
    fn place(
        &mut self,
        hash: u64,
        value: Arc<T>,
        owner_tag: u32,
        stamp: u32,
        hasher: &RandomState,
    ) -> bool {
        let i = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                if u32::try_from(self.slots.len()).is_err() {
                    return false;
                }
                self.slots.push(Slot {
                    entry: None,
                    owner_tag: 0,
                    stamp: AtomicU32::new(0),
                });
                self.slots.len() - 1
            }
        };
        self.len += 1;
        self.put(i, hash, value, owner_tag, stamp, hasher);
        true
    }

    /// Fills the empty slot `i` with a cold entry placed at `stamp` and indexes it.
    fn put(
        &mut self,
        i: usize,
        hash: u64,
        value: Arc<T>,
        owner_tag: u32,
        stamp: u32,
        hasher: &RandomState,
    ) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        slot.entry = Some(value);
        slot.owner_tag = owner_tag;
        *slot.stamp.get_mut() = stamp & !REFERENCED;
        let slots = &self.slots;
        // `i` fits u32: `place` checked the slab's length before growing it.
        self.index.insert_unique(hash, i as u32, |&j| {
            slots
                .get(j as usize)
                .and_then(|s| s.entry.as_ref())
                .map_or(0, |e| hasher.hash_one(e.key()))
        });
    }

    /// Empties slot `i`, unindexes it and hands back what it held. The slot is then
    /// either refilled with [`put`](Self::put) or given to [`free_slot`](Self::free_slot).
    fn take(&mut self, i: usize, hasher: &RandomState) -> Option<Arc<T>> {
        let old = self.slots.get_mut(i)?.entry.take()?;
        let hash = hasher.hash_one(old.key());
        if let Ok(found) = self.index.find_entry(hash, |&j| j as usize == i) {
            found.remove();
        }
        self.len -= 1;
        Some(old)
    }

    fn free_slot(&mut self, i: usize) {
        // `i` came from the slab, whose length fits u32.
        self.free.push(i as u32);
    }

    /// The slot whose entry CLOCK evicts next: the first the hand reaches that is
    /// `stale` (expired or too old) or was not referenced since the hand last passed;
    /// a referenced one loses its bit and is passed over. `None` if the shard holds
    /// nothing.
    fn victim(&mut self, stale: impl Fn(&T, u32) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let n = self.slots.len();
        // The write lock keeps readers out, so no bit is set during the sweep: after
        // one full turn every bit is clear, and the second turn must stop.
        for _ in 0..=2 * n {
            let i = if self.hand >= n { 0 } else { self.hand };
            self.hand = i + 1;
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let Some(entry) = &slot.entry else {
                continue;
            };
            let stamp = slot.stamp.get_mut();
            if stale(entry, *stamp) {
                return Some(i);
            }
            if *stamp & REFERENCED != 0 {
                *stamp &= !REFERENCED;
            } else {
                return Some(i);
            }
        }
        None
    }
}

/// Role and permission sets shared by cached principals: one `Arc` per distinct set.
#[derive(Default)]
struct Interner {
    sets: RwLock<InternedSets>,
}

#[derive(Default)]
struct InternedSets {
    sets: HashSet<Arc<Access>>,
    /// Size at which sets no principal uses any more are dropped.
    prune_at: usize,
}

/// Never prune below this many distinct sets.
const MIN_INTERNED_BEFORE_PRUNE: usize = 1024;

impl Interner {
    fn intern(&self, access: Arc<Access>) -> Arc<Access> {
        let read = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = read.sets.get(&*access) {
            return shared.clone();
        }
        drop(read);
        let mut write = self.sets.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = write.sets.get(&*access) {
            return shared.clone();
        }
        if write.sets.len() >= write.prune_at {
            // Held only here: no cached principal has it (a principal can only get
            // this `Arc` through the set, which the write lock holds).
            write.sets.retain(|a| Arc::strong_count(a) > 1);
            write.prune_at = (2 * write.sets.len()).max(MIN_INTERNED_BEFORE_PRUNE);
        }
        write.sets.insert(access.clone());
        access
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let read = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        read.sets.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::ManualClock;

    pub(crate) fn principal(uid: &str, sid: &str, expires: UnixTime) -> Principal {
        Principal {
            user_id: uid.into(),
            username: "u".into(),
            session_id: sid.into(),
            session_expires_at: expires,
            access: Arc::default(),
        }
    }

    fn with_access(uid: &str, sid: &str, expires: UnixTime, roles: &[&str]) -> Principal {
        Principal {
            access: Arc::new(Access {
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                permissions: roles.iter().map(|r| format!("{r}:use")).collect(),
            }),
            ..principal(uid, sid, expires)
        }
    }

    #[test]
    fn entries_never_outlive_their_session() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(100, 3600, clock.clone());
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s1", clock.now() + 60));
        assert!(cache.get("u1", "s1").is_some());
        assert!(cache.get("u2", "s1").is_none(), "another user's session id");
        clock.advance(60);
        assert!(cache.get("u1", "s1").is_none());
    }

    #[test]
    fn invalidation_by_session_user_and_all() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(100, 3600, clock.clone());
        let exp = clock.now() + 600;
        for (u, s) in [("u1", "s1"), ("u1", "s2"), ("u2", "s3")] {
            cache.insert_loaded(cache.load_ticket(), principal(u, s, exp));
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

    #[test]
    fn a_load_overtaken_by_any_invalidation_is_not_cached() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let kinds = [
            Invalidation::Session("s1".into()),
            Invalidation::User("u1".into()),
            Invalidation::All,
            // Even one that names someone else: the rule is "any invalidation".
            Invalidation::Session("other".into()),
        ];
        for what in kinds {
            let cache = SessionCache::new(100, 3600, clock.clone());
            let ticket = cache.load_ticket();
            // ... the store is read here, and meanwhile the revocation arrives ...
            cache.invalidate(&what);
            let p = cache.insert_loaded(ticket, with_access("u1", "s1", exp, &["reader"]));
            assert_eq!((&*p.user_id, &*p.session_id), ("u1", "s1"), "{what:?}");
            assert!(
                p.has_permission("reader:use"),
                "the caller still gets its answer"
            );
            assert!(cache.get("u1", "s1").is_none(), "cached after {what:?}");
            assert!(cache.is_empty());
        }
    }

    #[test]
    fn a_load_with_no_invalidation_since_its_ticket_is_cached() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(100, 3600, clock.clone());
        cache.invalidate(&Invalidation::All);
        // Tickets taken after an invalidation are good.
        let ticket = cache.load_ticket();
        let p = cache.insert_loaded(ticket, with_access("u1", "s1", exp, &["reader"]));
        let got = cache.get("u1", "s1").expect("cached");
        assert!(Arc::ptr_eq(&got, &p));
        // And interned like any insert.
        let q = cache.insert_loaded(
            cache.load_ticket(),
            with_access("u2", "s2", exp, &["reader"]),
        );
        assert!(Arc::ptr_eq(&p.access, &q.access));
    }

    /// Loader threads read a "store" and cache what they read; a revoker thread
    /// revokes in the store, then invalidates, one session at a time while the
    /// loaders hammer exactly that session. Whatever the interleaving, no revoked
    /// session may stay cached.
    #[test]
    fn concurrent_loads_and_invalidations_never_leave_a_revoked_entry() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(10_000, 3600, clock.clone());
        const ROUNDS: usize = 3_000;
        let live: Vec<AtomicBool> = (0..ROUNDS).map(|_| AtomicBool::new(true)).collect();
        let current = AtomicUsize::new(0);
        let inserted = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let (cache, live, current, inserted) = (&cache, &live, &current, &inserted);
                s.spawn(move || {
                    loop {
                        let i = current.load(Ordering::Acquire);
                        if i >= ROUNDS {
                            break;
                        }
                        let ticket = cache.load_ticket();
                        if live[i].load(Ordering::Acquire) {
                            let sid = format!("s{i}");
                            cache.insert_loaded(
                                ticket,
                                principal(&format!("u{}", i % 7), &sid, exp),
                            );
                            inserted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            for (i, alive) in live.iter().enumerate() {
                // Let the loaders reach this session before it is revoked.
                let seen = inserted.load(Ordering::Relaxed);
                for _ in 0..200 {
                    if inserted.load(Ordering::Relaxed) > seen + 2 {
                        break;
                    }
                    std::thread::yield_now();
                }
                alive.store(false, Ordering::Release);
                let what = match i % 10 {
                    0 => Invalidation::User(format!("u{}", i % 7)),
                    1 => Invalidation::All,
                    _ => Invalidation::Session(format!("s{i}")),
                };
                cache.invalidate(&what);
                current.store(i + 1, Ordering::Release);
            }
        });
        let stale: Vec<usize> = (0..ROUNDS)
            .filter(|i| {
                cache
                    .get(&format!("u{}", i % 7), &format!("s{i}"))
                    .is_some()
            })
            .collect();
        assert!(stale.is_empty(), "revoked but cached: {stale:?}");
        assert!(
            inserted.load(Ordering::Relaxed) > ROUNDS,
            "the loaders did run"
        );
    }

    #[test]
    fn a_lost_feed_distrusts_the_cache_until_it_resubscribes() {
        let clock = Arc::new(ManualClock::starting_now());
        let t = clock.now();
        let cache = SessionCache::new(100, 3600, clock.clone());
        assert!(cache.is_trusted(), "no feed, nothing lost: trusted");
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s1", t + 600));
        let mut applied = cache.invalidations_applied();
        let seen = *applied.borrow_and_update();
        let ticket = cache.load_ticket();

        cache.apply_feed_event(FeedEvent::Lost);
        assert!(!cache.is_trusted());
        assert!(cache.get("u1", "s1").is_none());
        assert!(cache.is_empty(), "flushed at the moment of loss");
        assert!(*applied.borrow_and_update() > seen);
        // Every kind of insert is refused while lost.
        let p = cache.insert_loaded(cache.load_ticket(), principal("u1", "s2", t + 600));
        assert_eq!(&*p.session_id, "s2", "the caller still gets its principal");
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s3", t + 600));
        assert!(cache.is_empty());
        // Invalidations still apply (and void tickets) while lost.
        let during = cache.load_ticket();
        cache.apply_feed_event(FeedEvent::Invalidate(Invalidation::Session("x".into())));

        cache.apply_feed_event(FeedEvent::Subscribed);
        assert!(cache.is_trusted());
        // Loads that started before the resubscription may have missed messages.
        cache.insert_loaded(ticket, principal("u1", "s1", t + 600));
        cache.insert_loaded(during, principal("u1", "s4", t + 600));
        assert!(
            cache.is_empty(),
            "tickets from before the resubscription are void"
        );
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s1", t + 600));
        assert!(cache.get("u1", "s1").is_some(), "trusted again");
    }

    #[test]
    fn no_entry_is_served_past_the_maximum_age() {
        let clock = Arc::new(ManualClock::starting_now());
        let t = clock.now();
        let cache = SessionCache::new(100, 60, clock.clone());
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s1", t + 600));
        clock.advance(30);
        // Placed later: its own 60 seconds start now.
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s2", t + 600));
        clock.advance(29);
        assert!(cache.get("u1", "s1").is_some(), "59 s old");
        clock.advance(1);
        assert!(
            cache.get("u1", "s1").is_none(),
            "60 s old: re-read the store"
        );
        assert!(cache.get("u1", "s2").is_some(), "30 s old");
        // Reloading restarts the count.
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s1", t + 600));
        clock.advance(30);
        assert!(cache.get("u1", "s2").is_none());
        assert!(cache.get("u1", "s1").is_some());
        // Too-old entries are the first to be evicted, like expired ones.
        let small = SessionCache::new(2, 60, clock.clone());
        assert_eq!(small.entries.shard_count(), 1);
        let now = clock.now();
        small.insert_loaded(small.load_ticket(), principal("u", "young", now + 600));
        small.insert_loaded(small.load_ticket(), principal("u", "old", now + 600));
        clock.advance(30);
        // Re-placed in its slot (the first, where the hand starts): younger now.
        small.insert_loaded(small.load_ticket(), principal("u", "young", now + 600));
        clock.advance(29);
        assert!(small.get("u", "old").is_some() && small.get("u", "young").is_some());
        clock.advance(1);
        // Both referenced: by CLOCK alone the hand would take the first slot.
        small.insert_loaded(small.load_ticket(), principal("u", "new", now + 600));
        assert!(small.get("u", "young").is_some(), "the too-old one went");
        assert!(small.get("u", "new").is_some());
    }

    #[test]
    fn a_clock_that_steps_back_distrusts_entries() {
        let clock = Arc::new(ManualClock::starting_now());
        let t = clock.now();
        let cache = SessionCache::new(100, 60, clock.clone());
        clock.advance(10);
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s1", t + 600));
        clock.advance(-5);
        assert!(cache.get("u1", "s1").is_none(), "its age cannot be told");
    }

    #[test]
    fn a_slot_costs_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Slot<Principal>>(), 16);
    }

    #[test]
    fn capacity_is_bounded() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(50, 3600, clock.clone());
        for i in 0..1_000 {
            cache.insert_loaded(
                cache.load_ticket(),
                principal("u", &format!("s{i}"), clock.now() + 600),
            );
        }
        assert!(cache.len() <= 50, "{}", cache.len());
    }

    #[test]
    fn a_full_cache_holds_exactly_its_capacity_and_the_newest_entry() {
        let clock = Arc::new(ManualClock::starting_now());
        for capacity in [1, 50, 5_000] {
            let cache = SessionCache::new(capacity, 3600, clock.clone());
            for i in 0..3 * capacity {
                let sid = format!("s{i}");
                cache.insert_loaded(cache.load_ticket(), principal("u", &sid, clock.now() + 600));
                assert!(cache.get("u", &sid).is_some(), "just inserted {sid}");
            }
            assert_eq!(cache.len(), capacity);
        }
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(0, 3600, clock.clone());
        let p = cache.insert_loaded(cache.load_ticket(), principal("u", "s", clock.now() + 600));
        assert_eq!(&*p.session_id, "s", "the caller still gets its principal");
        assert!(cache.get("u", "s").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_recently_read_entry_survives_eviction_over_cold_ones() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(50, 3600, clock.clone());
        assert_eq!(cache.entries.shard_count(), 1);
        for i in 0..50 {
            cache.insert_loaded(cache.load_ticket(), principal("u", &format!("s{i}"), exp));
        }
        let hot = ["s7", "s23", "s49"];
        // Twenty times the capacity in new sessions, the hot ones read in between.
        for i in 50..1_050 {
            for sid in hot {
                assert!(cache.get("u", sid).is_some(), "{sid} evicted at insert {i}");
            }
            cache.insert_loaded(cache.load_ticket(), principal("u", &format!("s{i}"), exp));
        }
        assert_eq!(cache.len(), 50);
        // Never read: the cold ones went, the last 47 inserted are there.
        assert!(cache.get("u", "s0").is_none());
        assert!(cache.get("u", "s1049").is_some());
    }

    #[test]
    fn without_reads_the_oldest_entries_go_first() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(10, 3600, clock.clone());
        for i in 0..15 {
            cache.insert_loaded(cache.load_ticket(), principal("u", &format!("s{i}"), exp));
        }
        for i in 0..5 {
            assert!(cache.get("u", &format!("s{i}")).is_none(), "s{i}");
        }
        for i in 5..15 {
            assert!(cache.get("u", &format!("s{i}")).is_some(), "s{i}");
        }
    }

    #[test]
    fn expired_entries_go_before_live_ones() {
        let clock = Arc::new(ManualClock::starting_now());
        let t = clock.now();
        let cache = SessionCache::new(10, 3600, clock.clone());
        // Interleaved, so the hand meets live entries before each expiring one.
        for i in 0..10 {
            let exp = if i % 2 == 1 { t + 10 } else { t + 600 };
            cache.insert_loaded(cache.load_ticket(), principal("u", &format!("s{i}"), exp));
        }
        // Every entry read, so none is cold: only expiry tells them apart.
        for i in 0..10 {
            assert!(cache.get("u", &format!("s{i}")).is_some());
        }
        clock.advance(10);
        for i in 10..15 {
            cache.insert_loaded(
                cache.load_ticket(),
                principal("u", &format!("s{i}"), t + 600),
            );
        }
        for i in (0..10).step_by(2) {
            assert!(
                cache.get("u", &format!("s{i}")).is_some(),
                "live s{i} evicted"
            );
        }
        assert_eq!(cache.len(), 10, "the five expired made room for five new");
        for i in 10..15 {
            assert!(cache.get("u", &format!("s{i}")).is_some(), "s{i}");
        }
    }

    #[test]
    fn expired_entries_are_refused_before_the_hand_reaches_them() {
        let clock = Arc::new(ManualClock::starting_now());
        let cache = SessionCache::new(10, 3600, clock.clone());
        let t = clock.now();
        cache.insert_loaded(cache.load_ticket(), principal("u", "s", t + 5));
        clock.advance(5);
        assert!(cache.get("u", "s").is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_bound_holds_under_concurrent_inserts() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let capacity = 5_000;
        let cache = SessionCache::new(capacity, 3600, clock.clone());
        assert!(cache.entries.shard_count() > 1);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..4)
                .map(|t| {
                    let cache = &cache;
                    s.spawn(move || {
                        for i in 0..20_000 {
                            let (uid, sid) = (format!("u{t}"), format!("t{t}-s{i}"));
                            cache.insert_loaded(cache.load_ticket(), principal(&uid, &sid, exp));
                            // Reads race the other threads' evictions; a hit must be
                            // the principal of this very key.
                            if let Some(p) = cache.get(&uid, &sid) {
                                assert_eq!((&*p.user_id, &*p.session_id), (&*uid, &*sid));
                            }
                        }
                    })
                })
                .collect();
            let done = &done;
            let cache = &cache;
            let watcher = s.spawn(move || {
                let mut max = 0;
                while !done.load(Ordering::Acquire) {
                    max = max.max(cache.len());
                    std::thread::yield_now();
                }
                max
            });
            for w in writers {
                w.join().unwrap();
            }
            done.store(true, Ordering::Release);
            let max = watcher.join().unwrap();
            assert!(max <= capacity, "len reached {max}");
        });
        assert_eq!(cache.len(), capacity);
        let held: usize = (cache.entries.shards.iter())
            .map(|s| s.read().unwrap().index.len())
            .sum();
        assert_eq!(held as u64, capacity, "the count matches what is indexed");
    }

    #[test]
    fn invalidating_a_user_reaches_every_shard() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(100_000, 3600, clock.clone());
        assert_eq!(cache.entries.shard_count(), 64);
        for i in 0..2_000 {
            cache.insert_loaded(cache.load_ticket(), principal("u1", &format!("a{i}"), exp));
            cache.insert_loaded(cache.load_ticket(), principal("u2", &format!("b{i}"), exp));
        }
        let with_u1 = (cache.entries.shards.iter())
            .filter(|s| {
                let s = s.read().unwrap();
                s.slots
                    .iter()
                    .any(|s| s.entry.as_ref().is_some_and(|p| p.user_id == "u1"))
            })
            .count();
        assert_eq!(with_u1, 64, "u1's sessions are spread over all shards");
        cache.invalidate(&Invalidation::User("u1".into()));
        for i in 0..2_000 {
            assert!(cache.get("u1", &format!("a{i}")).is_none(), "a{i}");
            assert!(cache.get("u2", &format!("b{i}")).is_some(), "b{i}");
        }
        assert_eq!(cache.len(), 2_000);
        // Freed slots are reused, not added to.
        let slots = |c: &SessionCache| -> usize {
            (c.entries.shards.iter())
                .map(|s| s.read().unwrap().slots.len())
                .sum()
        };
        let before = slots(&cache);
        for i in 0..1_000 {
            cache.insert_loaded(cache.load_ticket(), principal("u3", &format!("d{i}"), exp));
        }
        assert!(slots(&cache) <= before + 64, "{} > {before}", slots(&cache));
    }

    #[test]
    fn a_reused_slot_never_serves_the_old_principal() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        // One slot: every insert evicts the previous entry and reuses its slot.
        let cache = SessionCache::new(1, 3600, clock.clone());
        cache.insert_loaded(cache.load_ticket(), principal("u1", "s1", exp));
        assert!(cache.get("u1", "s1").is_some());
        cache.insert_loaded(cache.load_ticket(), principal("u2", "s2", exp));
        assert!(cache.get("u1", "s1").is_none());
        assert!(cache.get("u1", "s2").is_none(), "s2 is not u1's");
        let p = cache.get("u2", "s2").unwrap();
        assert_eq!((&*p.user_id, &*p.session_id), ("u2", "s2"));
        // And a slot freed by invalidation.
        cache.invalidate(&Invalidation::Session("s2".into()));
        cache.insert_loaded(cache.load_ticket(), principal("u3", "s3", exp));
        assert!(cache.get("u2", "s2").is_none());
        let p = cache.get("u3", "s3").unwrap();
        assert_eq!((&*p.user_id, &*p.session_id), ("u3", "s3"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn reinserting_a_session_replaces_its_principal_in_place() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(10, 3600, clock.clone());
        cache.insert_loaded(
            cache.load_ticket(),
            with_access("u1", "s1", exp, &["reader"]),
        );
        cache.insert_loaded(
            cache.load_ticket(),
            with_access("u1", "s1", exp, &["admin"]),
        );
        assert_eq!(cache.len(), 1);
        let p = cache.get("u1", "s1").unwrap();
        assert!(p.has_permission("admin:use") && !p.has_permission("reader:use"));
    }

    #[test]
    fn equal_role_sets_share_one_access() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(100, 3600, clock.clone());
        // Built separately: equal, but two allocations until the cache interns them.
        let (a, b) = (
            with_access("u1", "s1", exp, &["reader", "writer"]),
            with_access("u2", "s2", exp, &["reader", "writer"]),
        );
        assert!(!Arc::ptr_eq(&a.access, &b.access));
        let (a, b) = (
            cache.insert_loaded(cache.load_ticket(), a),
            cache.insert_loaded(cache.load_ticket(), b),
        );
        assert!(Arc::ptr_eq(&a.access, &b.access));
        let c = cache.insert_loaded(
            cache.load_ticket(),
            with_access("u3", "s3", exp, &["reader"]),
        );
        assert!(!Arc::ptr_eq(&a.access, &c.access));
        let got = cache.get("u2", "s2").unwrap();
        assert!(Arc::ptr_eq(&got.access, &a.access));
        assert_eq!(got.roles(), ["reader", "writer"]);
        assert!(got.has_permission("writer:use"));
    }

    #[test]
    fn interned_sets_no_principal_uses_are_dropped() {
        let clock = Arc::new(ManualClock::starting_now());
        let exp = clock.now() + 600;
        let cache = SessionCache::new(10, 3600, clock.clone());
        let kept = cache.insert_loaded(
            cache.load_ticket(),
            with_access("u", "kept", exp, &["kept"]),
        );
        // Far more distinct sets than the cache holds principals.
        for i in 0..5 * MIN_INTERNED_BEFORE_PRUNE {
            cache.insert_loaded(
                cache.load_ticket(),
                with_access("u", &format!("s{i}"), exp, &[&format!("r{i}")]),
            );
        }
        assert!(
            cache.access.len() <= 2 * MIN_INTERNED_BEFORE_PRUNE,
            "{}",
            cache.access.len()
        );
        let again = cache.insert_loaded(
            cache.load_ticket(),
            with_access("u", "again", exp, &["kept"]),
        );
        assert!(
            Arc::ptr_eq(&kept.access, &again.access),
            "a set in use stays"
        );
    }
}
