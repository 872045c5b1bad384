//! The OpenAPI document (`GET /api/openapi.json`): it lists every route the router
//! registers with every method, and every error code; and schemathesis, a client nobody
//! here wrote, finds nothing wrong running it against a real `redauth serve`.
//!
//! schemathesis comes from PyPI into a venv under `target/` (one install per pinned
//! version). Python 3 with `venv` is required: without it this test fails, it never
//! skips (`scripts/test` installs `python3-venv` on Debian).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use redauth_axum::error::ErrorCode;
use redauth_server::config::{LoginIssues, Settings};
use serde_json::{Value, json};

use crate::support::{KEY_PREFIX, PASSWORD, SECRET, TestApp, http, serve_env};

/// The schemathesis release the check runs with; bump it deliberately.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

async fn document(app: &TestApp) -> Value {
    let r = app
        .node
        .send(Method::GET, "/api/openapi.json", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.body
}

/// Every path `router()` registers: the string literal of each `.route(` in its body.
/// Read from the source because an axum `Router` cannot list its routes; the methods of
/// each path are asked of the router itself (below).
fn routed_paths() -> BTreeSet<String> {
    let lib = include_str!("../../../redauth-axum/src/lib.rs");
    let body = lib
        .split_once("pub fn router<S>")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .map(|(body, _)| body)
        .expect("pub fn router<S> in redauth-axum/src/lib.rs");
    assert!(
        !body.contains(".nest(") && !body.contains(".route_service(") && !body.contains(".merge("),
        "router() registers routes other than with .route(\"…\"): teach this test to read them"
    );
    body.split(".route(")
        .skip(1)
        .map(|call| {
            let literal = call.trim_start().strip_prefix('"').unwrap_or_else(|| {
                panic!("a .route( whose path is not a string literal: {call:.60}")
            });
            literal.split('"').next().unwrap().to_owned()
        })
        .collect()
}

/// The methods the router serves on `path`, from the `Allow` of a 405: a `TRACE`, which
/// no route takes, reaches no handler.
async fn allowed_methods(app: &TestApp, path: &str) -> BTreeSet<String> {
    let concrete: String = path
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/");
    let r = app.node.send(Method::TRACE, &concrete, None, &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "TRACE {concrete}");
    r.header("allow")
        .unwrap_or_else(|| panic!("no Allow on 405 for {concrete}"))
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| m != "HEAD")
        .collect()
}

fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A route added to the router without its operation in the document (or the other way
/// round) fails here, method by method.
#[tokio::test]
async fn every_route_of_the_router_is_in_the_document() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented(&doc);
    let routed = routed_paths();
    assert!(routed.len() >= 20, "too few routes found: {routed:?}");
    let documented_paths: BTreeSet<String> = documented.keys().cloned().collect();
    let undocumented: Vec<_> = routed.difference(&documented_paths).collect();
    let unrouted: Vec<_> = documented_paths.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in the document: {undocumented:?}; in the document but not routed: {unrouted:?}"
    );
    for path in &routed {
        assert_eq!(
            allowed_methods(&app, path).await,
            documented[path],
            "{path}: the router's methods and the document's differ"
        );
    }
}

/// Every operation documents the request id header on every response, and each error
/// status names exactly the codes it can carry.
#[tokio::test]
async fn every_error_code_is_in_the_document() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        listed, all,
        "the ErrorCode schema lists every code, in order"
    );
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorCode"
    );

    let mut answered = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                assert_eq!(
                    response["headers"]["x-request-id"]["required"], true,
                    "{method} {path} {status}: x-request-id"
                );
                let status: u16 = status.parse().unwrap();
                if status < 400 {
                    continue;
                }
                let codes = response["content"]["application/json"]["schema"]["allOf"][1]
                    ["properties"]["error"]["enum"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {path} {status}: no codes"));
                for code in codes {
                    let code = ErrorCode::from_code(code.as_str().unwrap()).unwrap();
                    assert_eq!(code.status().as_u16(), status, "{method} {path}: {code}");
                    answered.insert(code.as_str());
                }
                if status == 429 {
                    assert_eq!(response["headers"]["retry-after"]["required"], true);
                }
            }
        }
    }
    // Answered outside any documented operation: by the fallbacks (an unknown path, a
    // method the path does not list).
    let outside = ["method_not_allowed"];
    for code in all {
        assert!(
            answered.contains(code) || outside.contains(&code),
            "no operation documents `{code}`"
        );
    }
}

/// The cookie names in the document are the server's settings.
#[tokio::test]
async fn the_documented_cookie_names_are_the_configured_ones() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["refreshCookie"]["in"], "cookie");
    assert_eq!(schemes["refreshCookie"]["name"], "redauth_refresh");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
}

/// schemathesis found `null` accepted as the optional refresh body (the server answers
/// 400): the body may be left out, but it is an object when present.
#[tokio::test]
async fn the_optional_refresh_body_is_an_object_when_present() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        let body = &doc["paths"][path]["post"]["requestBody"];
        assert_eq!(body["required"], false, "{path}");
        assert_eq!(
            body["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/RefreshRequest",
            "{path}: not nullable"
        );
        let r = app
            .node
            .send(
                Method::POST,
                path,
                None,
                &[("content-type", "application/json")],
            )
            .await;
        assert_ne!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let r = app
        .node
        .call(
            axum::http::Request::post("/api/auth/refresh")
                .header("content-type", "application/json")
                .body(axum::body::Body::from("null"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "null is refused, as documented"
    );
}

/// schemathesis found role and permission names the server refuses (400) generated
/// as valid: the document now has the rule (`RoleName`) wherever a name is sent.
#[tokio::test]
async fn role_and_permission_names_carry_their_rule() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["RoleName"]["pattern"],
        redauth_axum::openapi::ROLE_NAME_PATTERN
    );
    let name = json!({"$ref": "#/components/schemas/RoleName"});
    assert_eq!(
        schemas["PutRoleRequest"]["properties"]["permissions"]["items"],
        name
    );
    assert_eq!(
        schemas["SetRolesRequest"]["properties"]["roles"]["items"],
        name
    );
    assert_eq!(
        schemas["CreateUserRequest"]["properties"]["roles"]["items"],
        name
    );
    let param = &doc["paths"]["/api/admin/roles/{name}"]["put"]["parameters"][0];
    assert_eq!(param["schema"], name);
    // The core's rule, which the hand-written pattern states.
    for (candidate, ok) in [
        ("a", true),
        ("redauth:admin", true),
        ("x_y.z-1", true),
        ("", false),
        ("Admin", false),
        ("a b", false),
        (&*"a".repeat(65), false),
    ] {
        assert_eq!(
            redauth_core::model::validate_name("name", candidate).is_ok(),
            ok,
            "{candidate:?}"
        );
    }
}

/// schemathesis found `session_data` documented on a server that refuses it (400
/// unless login sets a session cookie): the document follows the settings.
#[tokio::test]
async fn session_data_is_documented_only_where_login_sets_a_session() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    let props = &doc["components"]["schemas"]["LoginRequest"]["properties"];
    assert!(props.get("session_data").is_none(), "{props}");
    assert_eq!(
        doc["components"]["schemas"]["LoginRequest"]["additionalProperties"],
        false
    );
    let app = TestApp::start_with(Settings {
        login_issues: Some(LoginIssues::Session),
        ..crate::cookie_sessions::native()
    })
    .await;
    let doc = document(&app).await;
    let props = &doc["components"]["schemas"]["LoginRequest"]["properties"];
    assert!(props.get("session_data").is_some(), "{props}");
    assert_eq!(
        doc["components"]["securitySchemes"]["sessionCookie"]["name"],
        app.node
            .cookie_sessions
            .as_ref()
            .unwrap()
            .auth
            .cookie_name()
    );
}

/// A venv under `target/` with schemathesis `SCHEMATHESIS_VERSION`; one install shared by
/// every run. Panics, saying why, without Python 3 and its `venv` module.
fn schemathesis() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("schemathesis-{SCHEMATHESIS_VERSION}"));
    let exe = venv.join("bin/schemathesis");
    let installed = Command::new(&exe)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS_VERSION));
    if installed {
        return exe;
    }
    let out = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is required for the schemathesis check (apt-get install python3 python3-venv): {e}")
        });
    assert!(
        out.status.success(),
        "python3 -m venv failed (on Debian: apt-get install python3-venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
        ])
        .output()
        .expect("the venv's pip runs");
    assert!(
        out.status.success(),
        "pip install schemathesis=={SCHEMATHESIS_VERSION} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// The checks every response is held to: the four the document promises (no 5xx,
/// documented statuses, content types, bodies and headers), and what it implies
/// (schema-invalid requests refused, `Allow` on 405, auth enforced). Not
/// `positive_data_acceptance`: a schema-valid request can still be refused for what
/// only the server knows (a cursor it never issued, a role not defined, the password
/// policy), and each of those is a documented 400.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_schema_conformance,response_headers_conformance,negative_data_rejection,\
    missing_required_header,unsupported_method,allow_header_conformance,ignored_auth";

/// Runs schemathesis on `schema_url` with `extra` arguments, bounded by `timeout_secs`;
/// asserts it found nothing and returns its output.
fn run_schemathesis(exe: &PathBuf, schema_url: &str, token: &str, extra: &[&str]) -> String {
    const TIMEOUT_SECS: &str = "150";
    let out = Command::new("timeout")
        .arg(TIMEOUT_SECS)
        .arg(exe)
        .args(["run", schema_url, "--checks", CHECKS])
        .args(["--max-examples", "100", "--seed", "1", "--workers", "2"])
        .args(["--phases", "examples,coverage,fuzzing", "--no-color"])
        .args(["--request-timeout", "10", "--max-failures", "20"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(extra)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its cache (`.schemathesis/`) goes under target/, not into the source tree.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("coreutils timeout runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(124),
        "schemathesis took over {TIMEOUT_SECS} s:\n{text}"
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    text
}

/// schemathesis against a real `redauth serve` on Redis, authenticated as an admin, so
/// every protected operation is exercised past its token check. Operations that end the
/// caller's session (logout, log out everywhere, wrong current passwords) run last, in
/// their own pass, so they cannot revoke the token the others need.
#[tokio::test]
async fn schemathesis_finds_nothing() {
    let exe = schemathesis();
    let app = TestApp::start().await;
    app.node.user("admin", &["admin"]).await;
    let redis_url = app.redis.url();
    let (server, _lines) = serve_env(&[
        ("REDIS_URL", redis_url.as_str()),
        ("JWT_SECRET", SECRET),
        ("REDAUTH_KEY_PREFIX", KEY_PREFIX),
        // Fuzzed logins meet the per-IP limit at once; holding each 429 a second would
        // only make the run slower.
        ("REDAUTH_RATE_LIMITED_DELAY_MS", "0"),
    ])
    .unwrap();
    let login = format!(
        r#"{{"username":"admin","password":"{PASSWORD}","refresh_token_delivery":"body"}}"#
    );
    let (status, _, body) = http(
        &server.addr,
        "POST",
        "/api/auth/login",
        &[("content-type", "application/json")],
        &login,
    );
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let schema_url = format!("http://{}/api/openapi.json", server.addr);
    let ending = ["logout", "logout_all", "change_password"];
    let mut keep: Vec<&str> = Vec::new();
    for id in ending {
        keep.extend(["--exclude-operation-id", id]);
    }
    let started = std::time::Instant::now();
    let first = run_schemathesis(&exe, &schema_url, &token, &keep);
    let mut only: Vec<&str> = Vec::new();
    for id in ending {
        only.extend(["--include-operation-id", id]);
    }
    let second = run_schemathesis(&exe, &schema_url, &token, &only);
    eprintln!(
        "schemathesis {SCHEMATHESIS_VERSION} ran clean in {:.1} s\n{}\n{}",
        started.elapsed().as_secs_f64(),
        first,
        second,
    );
}
