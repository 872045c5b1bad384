use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on a free loopback port, killed on drop. Each test
/// starts its own, so tests never share state and never touch a developer's instance.
/// The binary is `$REDIS_SERVER` or `redis-server` on the `PATH`.
pub struct RedisServer {
    child: Child,
    port: u16,
    password: Option<String>,
    username: Option<String>,
    /// With TLS: the directory holding the generated CA and server certificate.
    tls_dir: Option<std::path::PathBuf>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[], None)
    }

    /// Starts with `requirepass` set, for password-auth tests.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_with(&["--requirepass", password], Some(password.to_owned()))
    }

    /// Starts with the default user disabled and an ACL user `username` that has
    /// every permission, for ACL-auth tests.
    pub fn start_with_acl_user(username: &str, password: &str) -> Self {
        // One argv item per ACL word: redis-server quotes items that contain spaces.
        let pass = format!(">{password}");
        Self::spawn_ready(
            &[
                "--user", username, "on", &pass, "~*", "&*", "+@all", "--user", "default", "off",
            ],
            Some(password.to_owned()),
            Some(username.to_owned()),
            None,
        )
    }

    /// Starts a TLS-only server with a freshly generated CA and server certificate
    /// (for `localhost` and 127.0.0.1), made with the `openssl` command.
    pub fn start_tls() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "redauth-tls-{}",
            redauth_core::ids::random_id().expect("rng")
        ));
        std::fs::create_dir_all(&dir).expect("tls dir");
        let openssl = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            assert!(
                ok.is_ok_and(|s| s.success()),
                "openssl {args:?} failed (is openssl installed?)"
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=redauth-test-ca",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ]);
        Self::spawn_ready(&[], None, None, Some(dir))
    }

    /// PEM of the CA that signed a TLS server's certificate.
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.tls_dir.as_ref().map(|d| d.join("ca.crt"))
    }

    pub fn start_with(extra_args: &[&str], password: Option<String>) -> Self {
        Self::spawn_ready(extra_args, password, None, None)
    }

    fn spawn_ready(
        extra_args: &[&str],
        password: Option<String>,
        username: Option<String>,
        tls_dir: Option<std::path::PathBuf>,
    ) -> Self {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        // A port found free can be taken before redis binds it; try a few.
        for _ in 0..5 {
            let port = free_port();
            let port_args: Vec<String> = match &tls_dir {
                None => vec!["--port".into(), port.to_string()],
                Some(d) => {
                    let file = |name: &str| d.join(name).to_string_lossy().into_owned();
                    vec![
                        "--port".into(),
                        "0".into(),
                        "--tls-port".into(),
                        port.to_string(),
                        "--tls-cert-file".into(),
                        file("server.crt"),
                        "--tls-key-file".into(),
                        file("server.key"),
                        "--tls-ca-cert-file".into(),
                        file("ca.crt"),
                        "--tls-auth-clients".into(),
                        "no".into(),
                    ]
                }
            };
            let child = Command::new(&binary)
                .args(&port_args)
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--dir", &std::env::temp_dir().to_string_lossy()])
                .args(extra_args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start `{binary}` ({e}); install redis-server or set REDIS_SERVER"
                    )
                });
            let mut server = Self {
                child,
                port,
                password: password.clone(),
                username: username.clone(),
                tls_dir: tls_dir.clone(),
            };
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
        }
        panic!("redis-server did not become ready on any of 5 ports");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[[user]:password@]127.0.0.1:<port>/`, or `rediss://localhost:<port>/`
    /// for a TLS server (the certificate names `localhost`).
    pub fn url(&self) -> String {
        if self.tls_dir.is_some() {
            return format!("rediss://localhost:{}/", self.port);
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => format!("redis://{u}:{p}@127.0.0.1:{}/", self.port),
            (None, Some(p)) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            _ => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    /// Calls per command since start, from `INFO commandstats`, without `info` itself.
    /// Every redauth operation is one command (a script call), so the delta of the
    /// total across an operation is its number of round trips.
    pub fn command_calls(&self) -> BTreeMap<String, u64> {
        let mut con = self.client().get_connection().expect("connect");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut con)
            .expect("info");
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                (name != "info").then(|| (name.to_owned(), calls))
            })
            .collect()
    }

    pub fn total_command_calls(&self) -> u64 {
        self.command_calls().values().sum()
    }

    /// Starts a fresh server on the same port after [`RedisServer::kill`] (data is
    /// gone: nothing is persisted), to test reconnection.
    pub fn restart(&mut self) {
        self.kill();
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        self.child = Command::new(&binary)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("restart redis-server");
        assert!(
            self.wait_ready(Duration::from_secs(10)),
            "redis-server did not come back"
        );
    }

    /// Stops the server (to test behaviour while Redis is down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // exited: port taken or bad arguments
            }
            if self.tls_dir.is_some() {
                // Listening is enough: the tests themselves prove the TLS handshake.
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return true;
                }
            } else if let Ok(mut con) = self.client().get_connection()
                && redis::cmd("PING").query::<String>(&mut con).is_ok()
            {
                return true;
            }
            // Polling for readiness of a process we started, not synchronising tests.
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
        self.kill();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.tls_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}
