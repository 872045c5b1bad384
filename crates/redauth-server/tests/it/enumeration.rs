//! Unknown usernames and wrong passwords must be indistinguishable: same status, same
//! body, and the same time (the unknown-user path hashes against a dummy hash).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use redauth_server::config::Settings;
use serde_json::json;

use crate::support::TestApp;

const SAMPLES: usize = 200;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_are_indistinguishable_in_status_body_and_time() {
    // A real Argon2id cost (a few ms per hash), so skipping the hash for unknown users
    // would show as an order-of-magnitude difference; brute-force limits off, since
    // this test is 400 failed logins by design.
    let app = TestApp::start_with(Settings {
        argon2_memory_kib: Some(4096),
        argon2_iterations: Some(1),
        login_limit_per_ip: Some("off".into()),
        login_failure_limit_per_account: Some("off".into()),
        login_failure_limit_per_account_total: Some("off".into()),
        ..Settings::default()
    })
    .await;
    app.user("alice", &[]).await;
    let unknown = json!({"username": "mallory", "password": "wrong password, unknown user"});
    let wrong = json!({"username": "alice", "password": "wrong password, known user"});
    let (first_unknown, first_wrong) = (
        app.post("/api/auth/login", unknown.clone()).await,
        app.post("/api/auth/login", wrong.clone()).await,
    );
    assert_eq!(first_unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (first_unknown.status, &first_unknown.body),
        (first_wrong.status, &first_wrong.body)
    );

    let (mut t_unknown, mut t_wrong) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    // Interleaved, so machine load affects both sides alike.
    for i in 0..SAMPLES * 2 {
        let (body, times) = if i % 2 == 0 {
            (&unknown, &mut t_unknown)
        } else {
            (&wrong, &mut t_wrong)
        };
        let start = Instant::now();
        let r = app.post("/api/auth/login", body.clone()).await;
        times.push(start.elapsed());
        assert_eq!((r.status, &r.body), (first_wrong.status, &first_wrong.body));
    }
    let (mu, mw) = (median(&mut t_unknown), median(&mut t_wrong));
    let ratio = mu.as_secs_f64() / mw.as_secs_f64();
    // Medians of 200 interleaved samples: a missing dummy hash gives a ratio near 0.05.
    assert!(
        (0.75..=1.33).contains(&ratio),
        "median unknown {mu:?} vs wrong password {mw:?} (ratio {ratio:.2})"
    );
}
