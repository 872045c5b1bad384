//! A test server: a real redis-server on a free port, the service on a manual clock,
//! and helpers that drive the router in-process with `oneshot`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use redauth_core::service::NewUser;
use redauth_core::{AuthService, ManualClock, Role, Secret, Store, User};
use redauth_redis::RedisStore;
use redauth_server::app::{self, StoreKind};
use redauth_server::config::{Config, Settings};
use redauth_testkit::{CountingProxy, RedisServer};
use tower::ServiceExt as _;

pub const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";
/// The key prefix of every test node; its revocation channel is `t:invalidations`.
pub const KEY_PREFIX: &str = "t:";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub redis: RedisServer,
    /// Present with [`TestApp::start_counted`]: every node reaches Redis through it.
    pub proxy: Option<CountingProxy>,
    pub node: Node,
}

/// One redauth process: its own store connection, service, cache and router.
pub struct Node {
    pub store: Arc<RedisStore>,
    pub service: Arc<AuthService>,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    /// Cookie sessions, when the node's settings turn them on.
    pub cookie_sessions: Option<Arc<redauth_axum::cookie::CookieSessions>>,
    /// The state `router` was built on, for tests that build a host app around it.
    pub redauth: redauth_axum::Redauth,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl Resp {
    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<none>")
    }

    /// The value of cookie `name` set by this response (`Some("")` when cleared).
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookie_header(name).map(|h| {
            h.split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned()
        })
    }

    pub fn set_cookie_header(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub fn test_config(redis_url: &str, extra: Settings) -> Config {
    let base = Settings {
        redis_url: Some(Secret::new(redis_url)),
        jwt_secret: Some(Secret::new(SECRET)),
        argon2_memory_kib: Some(64),
        argon2_iterations: Some(1),
        hash_concurrency: Some(4),
        key_prefix: Some(KEY_PREFIX.into()),
        // The in-process tests name the cookie they send; the default name (with its
        // `__Secure-` prefix) has its own test.
        refresh_cookie_name: Some("redauth_refresh".into()),
        // The brute-force tests meet hundreds of 429s; holding each would only slow
        // them. The hold has its own tests.
        rate_limited_delay_ms: Some(0),
        ..Settings::default()
    };
    Config::resolve(base.overlay(extra)).unwrap()
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(Settings::default()).await
    }

    pub async fn start_with(extra: Settings) -> Self {
        let redis = RedisServer::start();
        let node = Node::start(&redis.url(), extra, Arc::new(ManualClock::starting_now())).await;
        Self {
            redis,
            proxy: None,
            node,
        }
    }

    /// Like [`TestApp::start`], with Redis behind a round-trip counting proxy.
    pub async fn start_counted() -> Self {
        let redis = RedisServer::start();
        let proxy = CountingProxy::start(redis.port()).await;
        let node = Node::start(
            &proxy.url(),
            Settings::default(),
            Arc::new(ManualClock::starting_now()),
        )
        .await;
        Self {
            redis,
            proxy: Some(proxy),
            node,
        }
    }

    pub fn round_trips(&self) -> u64 {
        self.proxy
            .as_ref()
            .expect("started with start_counted")
            .round_trips()
    }

    /// Another node (process) on the same Redis and clock, with its own empty cache:
    /// also what a restarted node looks like.
    pub async fn second_node(&self) -> Node {
        let url = self
            .proxy
            .as_ref()
            .map_or_else(|| self.redis.url(), CountingProxy::url);
        Node::start(&url, Settings::default(), self.node.clock.clone()).await
    }
}

impl TestApp {
    /// Publishes `message` (`sid:<id>`, `user:<id>` or `all`) on the revocation
    /// channel, as the script of a revocation on another node would, and returns once
    /// `node` has applied it: what the feed does, without a revocation in the store.
    pub async fn publish_invalidation(&self, message: &str, node: &Node) {
        let mut applied = node.service.cache_status().invalidations_applied;
        let seen = *applied.borrow_and_update();
        let mut con = self.redis.client().get_connection().unwrap();
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(format!("{KEY_PREFIX}invalidations"))
            .arg(message)
            .query(&mut con)
            .unwrap();
        assert!(receivers > 0, "no node is subscribed");
        until_applied(&mut applied, seen).await;
    }
}

/// Returns once `applied` (from [`redauth_core::cache::CacheStatus`]) has counted more
/// than `seen` invalidations: a revocation's delivery awaited as an event, not a sleep.
pub async fn until_applied(applied: &mut tokio::sync::watch::Receiver<u64>, seen: u64) {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        applied.wait_for(|n| *n > seen),
    )
    .await
    .unwrap()
    .unwrap();
}

impl std::ops::Deref for TestApp {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl Node {
    pub async fn start(redis_url: &str, extra: Settings, clock: Arc<ManualClock>) -> Self {
        let config = test_config(redis_url, extra);
        let redauth_server::config::StoreConfig::Redis(rc) = &config.store else {
            unreachable!()
        };
        let store = Arc::new(RedisStore::connect(rc).unwrap());
        let built = app::build_on(&config, store.clone(), StoreKind::Redis, clock.clone()).unwrap();
        store.invalidation_feed_ready().await;
        store.preload_scripts().await.unwrap();
        Self {
            store,
            service: built.service,
            cookie_sessions: built.state.cookie_sessions.clone(),
            redauth: built.state.clone(),
            router: redauth_axum::router(built.state),
            clock,
        }
    }

    pub async fn call(&self, req: Request<Body>) -> Resp {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match json {
            Some(j) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(j.to_string())
            }
            None => Body::empty(),
        };
        self.call(req.body(body).unwrap()).await
    }

    pub async fn post(&self, path: &str, json: serde_json::Value) -> Resp {
        self.send(Method::POST, path, Some(json), &[]).await
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Resp {
        self.send(
            Method::GET,
            path,
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
    }

    pub async fn refresh_with_cookie(&self, refresh: &str) -> Resp {
        self.send(
            Method::POST,
            "/api/auth/refresh",
            None,
            &[("cookie", &format!("redauth_refresh={refresh}"))],
        )
        .await
    }

    pub async fn user(&self, username: &str, roles: &[&str]) -> User {
        for r in roles {
            if !self
                .service
                .list_roles()
                .await
                .unwrap()
                .iter()
                .any(|d| d.name == *r)
            {
                let permissions = if *r == "admin" {
                    vec!["redauth:admin".into()]
                } else {
                    vec![format!("{r}:use")]
                };
                self.service
                    .put_role(Role {
                        name: (*r).into(),
                        permissions,
                    })
                    .await
                    .unwrap();
            }
        }
        self.service
            .create_user(NewUser {
                username: username.into(),
                email: format!("{username}@example.com"),
                password: PASSWORD.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
            })
            .await
            .unwrap()
    }

    /// Logs in over HTTP; returns (access token, refresh cookie value).
    pub async fn login(&self, username: &str) -> (String, String) {
        let r = self
            .post(
                "/api/auth/login",
                serde_json::json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        (
            r.body["access_token"].as_str().unwrap().to_owned(),
            r.set_cookie("redauth_refresh").unwrap(),
        )
    }

    pub fn store_dyn(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

/// The real binary with a clean environment and cheap Argon2 parameters.
pub fn redauth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_redauth"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDAUTH_ARGON2_MEMORY_KIB", "64")
        .env("REDAUTH_ARGON2_ITERATIONS", "1");
    c
}

/// A running `redauth serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(redis_url: &str) -> Server {
    serve_with(redis_url, &[]).0
}

/// Starts `redauth serve` on Redis with JSON logs; returns it and its log lines.
pub fn serve_with(
    redis_url: &str,
    env: &[(&str, &str)],
) -> (Server, std::sync::mpsc::Receiver<String>) {
    let mut all = vec![("REDIS_URL", redis_url), ("JWT_SECRET", SECRET)];
    all.extend_from_slice(env);
    serve_env(&all).expect("server started")
}

/// Starts `redauth serve` with `env` (plus the test defaults) and JSON logs; returns
/// it and all its log lines, or `Err` with its output if it exits before listening.
pub fn serve_env(
    env: &[(&str, &str)],
) -> Result<(Server, std::sync::mpsc::Receiver<String>), String> {
    start_server(
        &["serve", "--listen", "127.0.0.1:0", "--log-format", "json"],
        env,
    )
}

/// Starts `redauth <args>` (which must ask for JSON logs); returns it once it listens,
/// with all its log lines, or `Err` with its output if it exits before listening.
pub fn start_server(
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(Server, std::sync::mpsc::Receiver<String>), String> {
    let child = redauth()
        .args(args)
        .env("REDAUTH_COOKIE_SECURE", "false")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Owned by a `Server` from here, so a failed assertion below still kills it (an
    // orphan would keep the test's output pipe, and its port, open for ever).
    let mut server = Server {
        child,
        addr: String::new(),
    };
    let mut lines = BufReader::new(server.child.stderr.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut seen = Vec::new();
    server.addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = server.child.wait();
            return Err(seen.join("\n"));
        };
        seen.push(line.clone());
        let _ = tx.send(line.clone());
        if line.contains("redauth listening") {
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
            break v["addr"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Ok((server, rx))
}

/// The start-up lines, up to the one that reports the accounts (the last: it waits for
/// the store to answer).
pub fn start_up_lines(lines: &std::sync::mpsc::Receiver<String>) -> String {
    let mut out = Vec::new();
    while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(5)) {
        let done = line.contains("accounts");
        out.push(line);
        if done {
            break;
        }
    }
    out.join("\n")
}

pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// Runs `redauth <args>` with `env` and `stdin` (e.g. a password for
/// `--password-stdin`), asserts it succeeded and returns its stdout.
pub fn run_cli(args: &[&str], env: &[(&str, &str)], stdin: &str) -> String {
    let mut child = redauth()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "redauth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The refresh-cookie value set by a raw HTTP response head.
pub fn refresh_cookie_in(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let value = value.trim().strip_prefix("redauth_refresh=")?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.split(';').next().unwrap_or("").to_owned())
        })
        .expect("a refresh cookie")
}
