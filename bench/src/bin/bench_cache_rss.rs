//! P5's subject: a process that does nothing but fill a
//! [`SessionCache`](redauth_core::cache::SessionCache), so its resident set is the
//! cache's cost plus a small fixed floor (printed as the first line, `inserted=0`).
//!
//! `--capacity N --checkpoints A,B,…` inserts distinct sessions until each checkpoint
//! and prints `inserted=… entries=… rss_kib=…` there. Principals look like real ones:
//! 22-character ids, a username, one role and its permission. `--minimal` inserts
//! principals with only a session id (held inline) and no roles, so they own no heap
//! memory of their own: what remains per entry is the `Arc<Principal>` and the
//! cache's bookkeeping (an experiment for docs/performance.md, not a workload).

use std::process::ExitCode;
use std::sync::Arc;

use redauth_core::cache::SessionCache;
use redauth_core::model::Access;
use redauth_core::{Clock, Principal, SystemClock};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next()?;
    args.next()
}

/// A distinct 22-character id per `n` (the length of a real one) for `kind`.
fn id(kind: char, n: u64) -> String {
    format!("{kind}{n:021}")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let Some(capacity) = arg("--capacity").and_then(|c| c.parse::<u64>().ok()) else {
        eprintln!("usage: bench-cache-rss --capacity N --checkpoints A,B,...");
        return ExitCode::FAILURE;
    };
    let checkpoints: Vec<u64> = arg("--checkpoints")
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.parse().ok())
        .collect();
    let minimal = std::env::args().any(|a| a == "--minimal");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let expires = clock.now() + 24 * 3600;
    // Max age: an hour, longer than a run, so what is measured is what is held.
    let cache = SessionCache::new(capacity, 3600, clock);
    println!("inserted=0 entries=0 rss_kib={}", rss_kib());
    let mut inserted = 0u64;
    for checkpoint in checkpoints {
        while inserted < checkpoint {
            // Ten sessions per user, as with a few devices per account.
            let user = inserted / 10;
            cache.insert_loaded(
                cache.load_ticket(),
                if minimal {
                    Principal {
                        user_id: Default::default(),
                        username: Default::default(),
                        session_id: id('s', inserted).into(),
                        session_expires_at: expires,
                        access: Default::default(),
                    }
                } else {
                    Principal {
                        user_id: id('u', user).into(),
                        username: format!("user{user}@example.com").into(),
                        session_id: id('s', inserted).into(),
                        session_expires_at: expires,
                        // Built per session, as `Principal::from_parts` does; the cache
                        // shares one copy.
                        access: Access {
                            roles: vec!["reader".into()],
                            permissions: ["reader:use".to_owned()].into_iter().collect(),
                        }
                        .into(),
                    }
                },
            );
            inserted += 1;
        }
        let entries = cache.len();
        println!(
            "inserted={inserted} entries={entries} rss_kib={}",
            rss_kib()
        );
    }
    ExitCode::SUCCESS
}
