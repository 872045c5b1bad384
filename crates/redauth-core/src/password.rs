//! Password hashing: Argon2id for everything new, bcrypt only to verify imported hashes
//! (which are then upgraded). Hashing is CPU-heavy by design, so it runs on the blocking
//! thread pool behind a semaphore: a burst of logins queues there instead of starving
//! the async workers that verify access tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{AuthError, ValidationError};
use crate::model::is_bcrypt_hash;

/// Argon2id cost. Defaults are OWASP's first recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory per hash in KiB (Argon2's `m`). Every parameter is recorded in the hash it
    /// makes, so stored hashes keep the cost they were made with until the password
    /// changes.
    pub memory_kib: u32,
    /// Passes over that memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// How long the queue of password checks waiting for a hashing slot may grow. A storm
/// of logins (or one client with many connections) must not make everyone else wait
/// for seconds or grow memory without bound: past `max_waiting` checks, or after
/// waiting `max_wait` for a slot, a check is answered at once with 503 and
/// `Retry-After`, without hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashQueue {
    /// Checks that may wait for a hashing slot at once; one more is answered 503
    /// `unavailable` at once, without hashing.
    pub max_waiting: usize,
    /// Longest a check waits for a slot before it gets 503, with this (in whole seconds,
    /// at least 1) as `Retry-After`.
    pub max_wait: Duration,
    /// Password checks one client may have queued or running at once. Without it one
    /// client's burst (its per-client rate budget allows 50) fills the queue and every
    /// other client waits behind it; with it, others are interleaved after a few.
    pub max_per_client: usize,
}

impl Default for HashQueue {
    /// 64 waiting checks is one to two seconds of work on one core at the default cost
    /// (15–30 ms a hash): a full queue on a small machine still drains inside the
    /// five-second deadline (so a legitimate storm of 64 logins is served, benchmark
    /// P4), and five seconds is well inside any client's timeout.
    fn default() -> Self {
        Self {
            max_waiting: 64,
            max_wait: Duration::from_secs(5),
            max_per_client: 4,
        }
    }
}

/// Password hashes run at once by default: one per core but one, so a login storm
/// always leaves a core free for token checks (at least 1).
pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Length limits in Unicode scalar values (not bytes): any script counts the same,
/// and nothing is silently truncated (bcrypt's 72-byte cut never applies to new hashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) a new password may have. Only new
    /// passwords are held to it: a login is never refused because a stored password is
    /// shorter.
    pub min_chars: usize,
    /// Most characters a password may have. A longer one at login fails like a wrong one,
    /// before any hashing, so an enormous password costs nothing to refuse.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
        }
    }
}

impl PasswordPolicy {
    /// Whether `password` may become a new password: within the length limits and not a
    /// common password ([`is_common_password`]). The error (field `password`) is what a
    /// 400 shows.
    pub fn check(&self, password: &str) -> Result<(), ValidationError> {
        let n = password.chars().count();
        if n < self.min_chars {
            return Err(ValidationError::new(
                "password",
                "is shorter than the minimum length",
            ));
        }
        if n > self.max_chars {
            return Err(ValidationError::new(
                "password",
                "is longer than the maximum length",
            ));
        }
        if is_common_password(password) {
            return Err(ValidationError::new(
                "password",
                "is too common; choose another",
            ));
        }
        Ok(())
    }
}

/// The most common passwords of at least 8 characters (the lowest minimum the policy
/// allows), lowercased: 17,950 entries of the zxcvbn list, itself the top of a corpus
/// of 10 million leaked passwords. Source and licence: `data/common-passwords.LICENSE.txt`
/// and `docs/security.md`.
static COMMON_PASSWORDS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| {
        include_str!("../data/common-passwords.txt")
            .lines()
            .collect()
    });

/// Case-insensitive: `Password123!` is as guessable as `password123!`.
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// Result of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Wrong, or no such user (checked against the dummy hash, taking as long).
    No,
    /// Right, and the stored hash is current.
    Yes,
    /// Correct, and the stored hash should be replaced by this Argon2id hash
    /// (it was bcrypt).
    YesRehashed(String),
}

/// Hashes and verifies passwords on the blocking thread pool, a bounded number at once,
/// behind a bounded queue that is fair between clients ([`HashQueue`]). A check for an
/// unknown user verifies a dummy hash, so its timing matches a known user's. Clones share
/// the slots and the queue.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    queue: HashQueue,
    /// Checks waiting for a permit now.
    waiting: Arc<AtomicUsize>,
    /// Checks queued or running per client.
    per_client: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    /// A hash of a random password with the live parameters. Unknown usernames are
    /// checked against it so they take as long as a wrong password.
    dummy_hash: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// `max_concurrent` bounds how many hashes run at once (at least 1), `queue` how
    /// many may wait for one, and for how long.
    pub fn new(
        params: Argon2Params,
        max_concurrent: usize,
        queue: HashQueue,
    ) -> Result<Self, AuthError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|_| AuthError::Internal("invalid Argon2 parameters"))?;
        let dummy_password = crate::ids::random_bytes::<32>()?;
        let dummy_hash = hash_blocking(&params, &dummy_password)?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            queue,
            waiting: Arc::new(AtomicUsize::new(0)),
            per_client: Arc::default(),
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// A new Argon2id PHC string for `password`, under the slot and queue rules of
    /// [`Self::verify`] (`Busy` when the queue is full). The caller checks the
    /// [`PasswordPolicy`] first.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let params = self.params.clone();
        let password = password.as_bytes().to_vec();
        self.run_limited(move || hash_blocking(&params, &password))
            .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no
    /// user, so both cases cost one Argon2id evaluation.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, AuthError> {
        let params = self.params.clone();
        let password = password.to_owned();
        let real = stored.is_some();
        let stored = stored.map_or_else(|| self.dummy_hash.as_str().to_owned(), str::to_owned);
        self.run_limited(move || verify_blocking(&params, &password, &stored, real))
            .await?
    }

    /// Claims one of `client`'s places in the hash queue for the length of a password
    /// check (held until the returned guard drops); `Busy` when the client already has
    /// [`HashQueue::max_per_client`] checks queued or running.
    pub fn client_place(&self, client: &str) -> Result<ClientPlace, AuthError> {
        let mut map = self
            .per_client
            .lock()
            .map_err(|_| AuthError::Internal("hash queue poisoned"))?;
        let held = map.entry(client.to_owned()).or_insert(0);
        if *held >= self.queue.max_per_client {
            return Err(AuthError::Busy {
                retry_after_secs: 1,
            });
        }
        *held += 1;
        Ok(ClientPlace {
            map: self.per_client.clone(),
            client: client.to_owned(),
        })
    }

    /// Checks waiting for a hashing slot right now (for metrics and tests).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    async fn run_limited<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(AuthError::Internal("password hasher closed"));
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => self.wait_for_permit().await?,
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| AuthError::Internal("password hashing task failed"))
    }

    async fn wait_for_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        let busy = AuthError::Busy {
            retry_after_secs: self.queue.max_wait.as_secs().max(1),
        };
        let place = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = LeaveQueue(&self.waiting);
        if place >= self.queue.max_waiting {
            return Err(busy);
        }
        match tokio::time::timeout(self.queue.max_wait, self.permits.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(AuthError::Internal("password hasher closed")),
            Err(_) => Err(busy),
        }
    }
}

/// A client's place in the hash queue; see [`PasswordHasher::client_place`].
#[derive(Debug)]
pub struct ClientPlace {
    map: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    client: String,
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = map.get_mut(&self.client) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// Leaves the queue when the waiting check is done, however it ends (answered, timed
/// out, or its request dropped).
struct LeaveQueue<'a>(&'a AtomicUsize);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, AuthError> {
    let salt = crate::ids::random_bytes::<16>()?;
    argon2(params)
        .hash_password_with_salt(password, &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Internal("password hashing failed"))
}

fn verify_blocking(
    params: &Params,
    password: &str,
    stored: &str,
    real: bool,
) -> Result<Verified, AuthError> {
    if is_bcrypt_hash(stored) {
        // bcrypt only looks at the first 72 bytes; refuse longer passwords rather than
        // accept a password that merely shares its first 72 bytes with the real one.
        if password.len() > 72 || !bcrypt::verify(password, stored).unwrap_or(false) {
            return Ok(Verified::No);
        }
        return Ok(Verified::YesRehashed(hash_blocking(
            params,
            password.as_bytes(),
        )?));
    }
    // A stored hash with other parameters still verifies: the PHC string carries its own.
    let ok = argon2(params)
        .verify_password(password.as_bytes(), stored)
        .is_ok();
    Ok(if ok && real {
        Verified::Yes
    } else {
        Verified::No
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fast() -> PasswordHasher {
        with_queue(2, HashQueue::default())
    }

    fn with_queue(concurrency: usize, queue: HashQueue) -> PasswordHasher {
        PasswordHasher::new(
            Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            concurrency,
            queue,
        )
        .unwrap()
    }

    /// Issue 11, item 5: past `max_waiting` queued checks, the next one is answered at
    /// once (503 with Retry-After upstream) without hashing; the queued ones run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = with_queue(
            1,
            HashQueue {
                max_waiting: 2,
                max_wait: Duration::from_secs(60),
                ..HashQueue::default()
            },
        );
        let slot = hasher.permits.clone().try_acquire_owned().unwrap();
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.verify("some password", None).await })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(10), async {
            while hasher.waiting() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("two checks queued");
        let third = tokio::time::timeout(
            Duration::from_secs(10),
            hasher.verify("some password", None),
        )
        .await
        .expect("answered at once, not queued");
        assert!(matches!(
            third,
            Err(AuthError::Busy {
                retry_after_secs: 60
            })
        ));
        assert_eq!(hasher.waiting(), 2, "the refused check never queued");
        drop(slot);
        for q in queued {
            assert_eq!(q.await.unwrap().unwrap(), Verified::No);
        }
        assert_eq!(hasher.waiting(), 0);
    }

    /// One client holds at most `max_per_client` places; others are unaffected, and a
    /// place comes back when its check ends.
    #[test]
    fn one_client_holds_a_bounded_share_of_the_queue() {
        let hasher = fast();
        let max = HashQueue::default().max_per_client;
        let held: Vec<_> = (0..max)
            .map(|_| hasher.client_place("198.51.100.1").unwrap())
            .collect();
        assert!(matches!(
            hasher.client_place("198.51.100.1"),
            Err(AuthError::Busy { .. })
        ));
        assert!(
            hasher.client_place("198.51.100.2").is_ok(),
            "another client"
        );
        drop(held);
        assert!(hasher.client_place("198.51.100.1").is_ok());
        assert!(
            hasher.per_client.lock().unwrap().is_empty(),
            "forgotten when idle"
        );
    }

    /// A check that waited `max_wait` for a slot gives up without hashing.
    #[tokio::test(start_paused = true)]
    async fn a_check_that_waits_past_the_deadline_is_busy() {
        let hasher = with_queue(
            1,
            HashQueue {
                max_waiting: 10,
                max_wait: Duration::from_secs(2),
                ..HashQueue::default()
            },
        );
        let _slot = hasher.permits.clone().try_acquire_owned().unwrap();
        let started = tokio::time::Instant::now();
        assert!(matches!(
            hasher.hash("a password long enough").await,
            Err(AuthError::Busy {
                retry_after_secs: 2
            })
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(hasher.waiting(), 0);
    }

    #[tokio::test]
    async fn argon2id_round_trip() {
        let h = fast();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert_eq!(
            h.verify("correct horse battery staple", Some(&hash))
                .await
                .unwrap(),
            Verified::Yes
        );
        assert_eq!(
            h.verify("correct horse battery stapl", Some(&hash))
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn unicode_passwords_are_not_truncated() {
        let h = fast();
        let long = "é".repeat(100);
        let hash = h.hash(&long).await.unwrap();
        let almost = format!("{}e", "é".repeat(99));
        assert_eq!(h.verify(&almost, Some(&hash)).await.unwrap(), Verified::No);
        assert_eq!(h.verify(&long, Some(&hash)).await.unwrap(), Verified::Yes);
    }

    #[tokio::test]
    async fn bcrypt_variants_verify_and_are_upgraded() {
        let h = fast();
        let b = bcrypt::hash("imported password", 4).unwrap();
        assert!(b.starts_with("$2b$"));
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let variant = format!("{prefix}{}", &b[4..]);
            match h.verify("imported password", Some(&variant)).await.unwrap() {
                Verified::YesRehashed(new) => {
                    assert!(new.starts_with("$argon2id$"));
                    assert_eq!(
                        h.verify("imported password", Some(&new)).await.unwrap(),
                        Verified::Yes
                    );
                }
                other => panic!("{prefix}: {other:?}"),
            }
            assert_eq!(
                h.verify("wrong password", Some(&variant)).await.unwrap(),
                Verified::No
            );
        }
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let h = fast();
        assert_eq!(
            h.verify("anything at all", None).await.unwrap(),
            Verified::No
        );
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        let p = PasswordPolicy {
            min_chars: 8,
            max_chars: 128,
        };
        for common in [
            "password",
            "Password1",
            "QWERTYUIOP",
            "iloveyou",
            "1qaz2wsx3edc",
        ] {
            assert_eq!(
                p.check(common).unwrap_err().reason,
                "is too common; choose another",
                "{common}"
            );
        }
        assert!(p.check("correct horse battery staple").is_ok());
        assert!(COMMON_PASSWORDS.len() > 17_000);
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|p| p.chars().count() >= 8 && *p == p.to_lowercase())
        );
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        let p = PasswordPolicy {
            min_chars: 12,
            max_chars: 16,
        };
        assert!(p.check(&"日".repeat(12)).is_ok()); // 36 bytes, 12 characters
        assert_eq!(p.check(&"a".repeat(11)).unwrap_err().field, "password");
        assert!(p.check(&"a".repeat(17)).is_err());
    }
}
