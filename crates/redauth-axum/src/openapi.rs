//! The OpenAPI 3.1 document of the API, served at `GET /api/openapi.json`.
//!
//! The schemas are derived from the types in [`crate::dto`] (and [`ErrorCode`]'s table),
//! so a body cannot change without the document changing with it. The operations are
//! declared here, one stub per route, rather than on the handlers: this file is the one
//! place to read (and to review) what the API promises. Two tests keep it honest: every
//! route [`crate::router`] registers, with every method, is in the document; and
//! schemathesis, a client nobody here wrote, runs the document against a real server
//! (`crates/redauth-server/tests/it/openapi.rs`).
//!
//! Which errors an operation can answer is [`errors`]: a list of codes per operation,
//! plus what the edge middleware adds to every route. Each status gets a response whose
//! body is an [`ErrorBody`] with `error` narrowed to those codes, so a code an operation
//! was not expected to answer fails the schema check, not only a status it does not list.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::routing::{MethodRouter, get};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    AllOfBuilder, Content, Header, ObjectBuilder, Ref, RefOr, Response, Schema, Type,
};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::Redauth;
use crate::dto::{
    AdminUserView, CookieLoginResponse, CookieSessionView, CreateUserRequest, ErrorBody, Health,
    LoginRequest, MeView, PutRoleRequest, Readiness, RefreshRequest, RoleList, RoleView,
    SessionPage, SetRolesRequest, TokenResponse, UserList,
};
use crate::error::ErrorCode;

/// Where the document is served.
pub const PATH: &str = "/api/openapi.json";

/// The security scheme of `Authorization: Bearer <access token>`.
const BEARER: &str = "bearerAuth";
/// The security scheme of the refresh cookie (its name is a setting).
const REFRESH_COOKIE: &str = "refreshCookie";
/// The security scheme of the session cookie (cookie sessions, when on).
const SESSION_COOKIE: &str = "sessionCookie";

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The stable code of an error; each has exactly one status (README, \"Error \
                 codes\"). `method_not_allowed` answers a method a path does not list (with \
                 `Allow`), `not_found` a path the document does not list.",
            ))
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// A role or permission name, as [`redauth_core::model::validate_name`] accepts it.
pub struct RoleName;

/// The rule of [`RoleName`], as a JSON Schema (ECMA-262) pattern.
pub const ROLE_NAME_PATTERN: &str = "^[a-z0-9_:.-]{1,64}$";

impl PartialSchema for RoleName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("1 to 64 of a-z 0-9 _ : . -"))
            .pattern(Some(ROLE_NAME_PATTERN))
            .into()
    }
}

impl ToSchema for RoleName {}

/// What `POST /api/auth/login` answers: tokens, or with `REDAUTH_LOGIN_ISSUES=session`
/// only the session cookie and the user. Only for the document; the handlers send the
/// two types themselves.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LoginResponse {
    Tokens(TokenResponse),
    Session(CookieLoginResponse),
}

/// One stub per route: the operations' documentation, not their code (see the module
/// comment). Error responses are added from [`errors`].
#[allow(dead_code)]
mod operations {
    use super::*;

    #[utoipa::path(post, path = "/api/auth/login", tag = "auth", operation_id = "login",
        description = "Checks a username and password and starts a login session. The \
            refresh token is sent as an `HttpOnly` cookie (`refresh_token_delivery: \"cookie\"`, \
            the default) or in the body (`\"body\"`). With cookie sessions on, login may set \
            the session cookie too, or instead of tokens (`REDAUTH_LOGIN_ISSUES`).",
        request_body = LoginRequest,
        security((), ("sessionCookie" = [])),
        responses((status = 200, description = "Logged in.", body = LoginResponse,
            headers(("set-cookie" = String, description = "The refresh cookie (cookie delivery) and, with cookie sessions, the session cookie."))))
    )]
    fn login() {}

    #[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", operation_id = "refresh",
        description = "Rotates a refresh token: the one presented stops working and a new \
            access and refresh token are issued. The token comes from the JSON body if there is \
            one (and then the new one is sent in the body), else from the refresh cookie. \
            Presenting an already rotated token ends the whole session (`refresh_token_reused`).",
        request_body(content = RefreshRequest, description = "Optional: without a body, the refresh cookie is read."),
        security((), ("refreshCookie" = [])),
        responses(
            (status = 200, description = "A new access token and refresh token.", body = TokenResponse,
                headers(("set-cookie" = String, description = "The new refresh cookie (cookie delivery)."))),
        )
    )]
    fn refresh() {}

    #[utoipa::path(post, path = "/api/auth/logout", tag = "auth", operation_id = "logout",
        description = "Ends the login session of the presented access token, refresh token \
            (body or cookie) and session cookie, whichever are present. Idempotent: 204 and \
            cleared cookies whether or not a session was found.",
        request_body(content = RefreshRequest, description = "Optional: without a body, the refresh cookie is read."),
        security((), ("bearerAuth" = []), ("refreshCookie" = []), ("sessionCookie" = [])),
        responses((status = 204, description = "Logged out.",
            headers(("set-cookie" = String, description = "Clears the refresh cookie (and the session cookie).")))),
    )]
    fn logout() {}

    #[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", operation_id = "logout_all",
        description = "Ends every login session of the caller, on every node.",
        security(("bearerAuth" = [])),
        responses((status = 204, description = "Every session ended.",
            headers(("set-cookie" = String, description = "Clears the refresh cookie.")))),
    )]
    fn logout_all() {}

    #[utoipa::path(get, path = "/api/auth/me", tag = "auth", operation_id = "me",
        security(("bearerAuth" = [])),
        responses((status = 200, description = "The caller and its login session.", body = MeView)),
    )]
    fn me() {}

    #[utoipa::path(get, path = "/api/auth/session", tag = "auth", operation_id = "get_session",
        description = "The cookie session's user (null for one no redauth login made) and \
            data: what a SvelteKit `hooks.server.ts` calls. 404 when cookie sessions are off.",
        security(("sessionCookie" = [])),
        responses((status = 200, description = "The session.", body = CookieSessionView,
            headers(("set-cookie" = String, description = "A renewed session cookie, when the check renewed it.")))),
    )]
    fn get_session() {}

    #[utoipa::path(get, path = "/api/auth/verify", tag = "auth", operation_id = "verify",
        description = "For reverse proxies (`auth_request`, `forward_auth`): 204 with the \
            identity in headers, or 401.",
        security(("bearerAuth" = [])),
        responses((status = 204, description = "The access token is live.",
            headers(
                ("x-auth-user" = String, description = "The user id."),
                ("x-auth-username" = String, description = "The username (absent if it is not ASCII)."),
                ("x-auth-roles" = String, description = "The roles, comma-separated."),
                ("x-auth-session" = String, description = "The login session id."),
            ))),
    )]
    fn verify() {}

    #[utoipa::path(get, path = "/api/auth/sessions", tag = "auth", operation_id = "list_sessions",
        description = "One page of the caller's login sessions, newest first; follow \
            `next_cursor` until it is null.",
        params(
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Sessions per page (default 100)."),
            ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page."),
        ),
        security(("bearerAuth" = [])),
        responses((status = 200, description = "A page of sessions.", body = SessionPage)),
    )]
    fn list_sessions() {}

    #[utoipa::path(delete, path = "/api/auth/sessions/{sid}", tag = "auth", operation_id = "delete_session",
        description = "Ends one of the caller's own sessions.",
        params(("sid" = String, Path, description = "A session id from `GET /api/auth/sessions`.")),
        security(("bearerAuth" = [])),
        responses((status = 204, description = "The session ended.")),
    )]
    fn delete_session() {}

    #[utoipa::path(post, path = "/api/auth/password", tag = "auth", operation_id = "change_password",
        description = "Changes the caller's password after checking the current one, and ends \
            every other session of the user. Wrong current passwords count like failed logins.",
        request_body = ChangePasswordRequest,
        security(("bearerAuth" = [])),
        responses((status = 204, description = "Changed.")),
    )]
    fn change_password() {}

    #[utoipa::path(post, path = "/api/admin/users", tag = "admin", operation_id = "create_user",
        request_body = CreateUserRequest,
        security(("bearerAuth" = [])),
        responses((status = 201, description = "Created.", body = AdminUserView)),
    )]
    fn create_user() {}

    #[utoipa::path(get, path = "/api/admin/users", tag = "admin", operation_id = "list_users",
        security(("bearerAuth" = [])),
        responses((status = 200, description = "Every user.", body = UserList)),
    )]
    fn list_users() {}

    #[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin", operation_id = "get_user",
        params(("id" = String, Path, description = "A user id.")),
        security(("bearerAuth" = [])),
        responses((status = 200, description = "The user.", body = AdminUserView)),
    )]
    fn get_user() {}

    #[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", operation_id = "delete_user",
        description = "Deletes the user and ends its sessions.",
        params(("id" = String, Path, description = "A user id.")),
        security(("bearerAuth" = [])),
        responses((status = 204, description = "Deleted.")),
    )]
    fn delete_user() {}

    #[utoipa::path(post, path = "/api/admin/users/{id}/disable", tag = "admin", operation_id = "disable_user",
        description = "Disables the user and ends its sessions; login answers as for a wrong password.",
        params(("id" = String, Path, description = "A user id.")),
        security(("bearerAuth" = [])),
        responses((status = 200, description = "The user, disabled.", body = AdminUserView)),
    )]
    fn disable_user() {}

    #[utoipa::path(post, path = "/api/admin/users/{id}/enable", tag = "admin", operation_id = "enable_user",
        params(("id" = String, Path, description = "A user id.")),
        security(("bearerAuth" = [])),
        responses((status = 200, description = "The user, enabled.", body = AdminUserView)),
    )]
    fn enable_user() {}

    #[utoipa::path(put, path = "/api/admin/users/{id}/roles", tag = "admin", operation_id = "set_user_roles",
        description = "Replaces the user's roles (each must be defined).",
        params(("id" = String, Path, description = "A user id.")),
        request_body = SetRolesRequest,
        security(("bearerAuth" = [])),
        responses((status = 200, description = "The user with its new roles.", body = AdminUserView)),
    )]
    fn set_user_roles() {}

    #[utoipa::path(get, path = "/api/admin/roles", tag = "admin", operation_id = "list_roles",
        security(("bearerAuth" = [])),
        responses((status = 200, description = "Every role.", body = RoleList)),
    )]
    fn list_roles() {}

    #[utoipa::path(put, path = "/api/admin/roles/{name}", tag = "admin", operation_id = "put_role",
        description = "Creates or replaces a role.",
        params(("name" = RoleName, Path, description = "The role's name.")),
        request_body = PutRoleRequest,
        security(("bearerAuth" = [])),
        responses((status = 200, description = "The role as stored.", body = RoleView)),
    )]
    fn put_role() {}

    #[utoipa::path(get, path = "/api/auth/config", tag = "auth", operation_id = "get_config",
        description = "The settings a client library must agree with (cookie names and \
            attributes, the login mode); nothing secret.",
        responses((status = 200, description = "This server's client settings.", body = crate::client_config::ClientConfig)),
    )]
    fn get_config() {}

    #[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
        description = "The process runs.",
        responses((status = 200, description = "Alive.", body = Health)),
    )]
    fn healthz() {}

    #[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
        description = "The store answers; the revocation feed's state is reported, not required.",
        responses((status = 200, description = "Ready.", body = Readiness)),
    )]
    fn readyz() {}

    #[utoipa::path(get, path = "/api/openapi.json", tag = "operations", operation_id = "openapi",
        description = "This document.",
        responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)),
    )]
    fn openapi() {}
}

use crate::dto::ChangePasswordRequest;
use operations::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "redauth",
        description = "Login, refresh, logout, sessions and administration of a redauth server. \
            Every response carries `x-request-id` (the caller's, if sane, else a new one) and \
            `Cache-Control: no-store`. Every error is `{\"error\": <code>, \"message\": <text>}`."
    ),
    paths(
        login, refresh, logout, logout_all, me, get_session, verify, list_sessions,
        delete_session, change_password, create_user, list_users, get_user, delete_user,
        disable_user, enable_user, set_user_roles, list_roles, put_role, get_config, healthz,
        readyz, openapi,
    ),
    components(schemas(ErrorBody, ErrorCode, RoleName)),
    tags(
        (name = "auth", description = "A user's own login, tokens and sessions."),
        (name = "admin", description = "Users and roles; needs the `redauth:admin` permission."),
        (name = "operations", description = "Probes and this document."),
    )
)]
struct ApiDoc;

/// The error codes `operation` can answer beyond what the edge adds to every route
/// ([`edge_errors`]). Grouped by what produces them, in the order a request meets them.
fn errors(operation: &str) -> Vec<ErrorCode> {
    use ErrorCode as C;
    // A failing or corrupt store; `unavailable` also when too much work is queued.
    const STORE: &[ErrorCode] = &[C::Unavailable, C::Internal];
    // `AuthUser`: a missing, malformed, forged, expired or revoked access token.
    const BEARER: &[ErrorCode] = &[C::MissingToken, C::InvalidToken, C::TokenExpired];
    // `AdminUser`: a live token without the admin permission.
    const ADMIN: &[ErrorCode] = &[
        C::MissingToken,
        C::InvalidToken,
        C::TokenExpired,
        C::Forbidden,
    ];
    // `ApiJson` (and the optional refresh body): not JSON, not an object, a wrong field.
    const JSON_BODY: &[ErrorCode] = &[
        C::InvalidRequest,
        C::PayloadTooLarge,
        C::UnsupportedMediaType,
    ];
    let own: &[&[ErrorCode]] = match operation {
        "login" => &[JSON_BODY, &[C::InvalidCredentials, C::RateLimited], STORE],
        "refresh" => &[
            JSON_BODY,
            &[
                C::InvalidRefreshToken,
                C::RefreshTokenReused,
                C::RateLimited,
            ],
            STORE,
        ],
        "logout" => &[JSON_BODY, STORE],
        "logout_all" | "me" | "verify" => &[BEARER, STORE],
        "get_session" => &[
            &[
                C::InvalidRequest,
                C::MissingSession,
                C::InvalidSession,
                C::NotFound,
            ],
            STORE,
        ],
        "list_sessions" => &[BEARER, &[C::InvalidRequest], STORE],
        "delete_session" => &[BEARER, &[C::NotFound], STORE],
        "change_password" => &[
            BEARER,
            JSON_BODY,
            &[C::InvalidCredentials, C::RateLimited],
            STORE,
        ],
        "create_user" => &[ADMIN, JSON_BODY, &[C::UsernameTaken, C::EmailTaken], STORE],
        "list_users" | "list_roles" => &[ADMIN, STORE],
        "get_user" | "enable_user" => &[ADMIN, &[C::NotFound], STORE],
        "delete_user" | "disable_user" => &[ADMIN, &[C::NotFound, C::LastAdmin], STORE],
        "set_user_roles" => &[ADMIN, JSON_BODY, &[C::NotFound, C::LastAdmin], STORE],
        "put_role" => &[ADMIN, JSON_BODY, &[C::LastAdmin], STORE],
        "readyz" => &[STORE],
        _ => &[],
    };
    own.iter().flat_map(|codes| codes.iter().copied()).collect()
}

/// What the edge middleware and the accept loop answer on any route: headers too large
/// (431), the request timeout (503), a wrong `x-redauth-app-secret` (401, see
/// [`crate::trusted_app`]), and for a method that changes state, the CSRF check (403).
fn edge_errors(changes_state: bool) -> Vec<ErrorCode> {
    let mut codes = vec![
        ErrorCode::RequestHeaderFieldsTooLarge,
        ErrorCode::Timeout,
        ErrorCode::InvalidAppSecret,
    ];
    if changes_state {
        codes.push(ErrorCode::CsrfRejected);
    }
    codes
}

/// `GET /api/openapi.json`: the document, built once for `state`'s settings.
pub(crate) fn route(state: &Redauth) -> MethodRouter<Redauth> {
    let body = Bytes::from(serde_json::to_vec(&document(state)).unwrap_or_default());
    get(move || {
        let body = body.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], body) }
    })
}

/// The document for `state`'s settings (the cookies' names), as JSON.
pub fn document(state: &Redauth) -> Value {
    let mut doc = ApiDoc::openapi();
    add_security_schemes(&mut doc, state);
    for item in doc.paths.paths.values_mut() {
        for (operation, changes_state) in [
            (item.get.as_mut(), false),
            (item.post.as_mut(), true),
            (item.put.as_mut(), true),
            (item.delete.as_mut(), true),
        ] {
            if let Some(operation) = operation {
                add_error_responses(operation, changes_state);
            }
        }
    }
    let mut doc = serde_json::to_value(&doc).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialize");
        json!({})
    });
    mark_required_headers(&mut doc);
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        if let Some(body) = doc.pointer_mut(&format!(
            "/paths/{}/post/requestBody",
            path.replace('/', "~1")
        )) {
            body["required"] = json!(false);
        }
    }
    let login_sets_session = state
        .cookie_sessions
        .as_ref()
        .is_some_and(|s| s.issues_session);
    if !login_sets_session {
        // Refused (400) unless login sets a session cookie: not part of this server's API.
        if let Some(properties) = doc
            .pointer_mut("/components/schemas/LoginRequest/properties")
            .and_then(Value::as_object_mut)
        {
            properties.remove("session_data");
        }
    }
    doc
}

fn add_security_schemes(doc: &mut utoipa::openapi::OpenApi, state: &Redauth) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An access token from login or refresh: `Authorization: Bearer <token>`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        REFRESH_COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            state.http.refresh_cookie_name.clone(),
            "The refresh token, as login and refresh set it (`HttpOnly`, `SameSite=Strict`, \
             `Path=/api/auth`). Requests with cookies that change state must pass the CSRF \
             check (same origin or `REDAUTH_ALLOWED_ORIGINS`)."
                .to_owned(),
        ))),
    );
    let (name, description) = match &state.cookie_sessions {
        Some(sessions) => (
            sessions.auth.cookie_name().to_owned(),
            "The session cookie of cookie sessions (docs/sessions.md).",
        ),
        None => (
            "session".to_owned(),
            "Cookie sessions are off on this server: `GET /api/auth/session` answers 404.",
        ),
    };
    components.add_security_scheme(
        SESSION_COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            name,
            description.to_owned(),
        ))),
    );
}

/// One response per error status of `operation`, with `error` narrowed to its codes.
fn add_error_responses(operation: &mut Operation, changes_state: bool) {
    let id = operation.operation_id.clone().unwrap_or_default();
    let mut by_status: BTreeMap<u16, BTreeSet<&'static str>> = BTreeMap::new();
    for code in errors(&id).into_iter().chain(edge_errors(changes_state)) {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .insert(code.as_str());
    }
    for (status, codes) in by_status {
        let listed: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
        let mut description = format!(
            "{}: {}.",
            StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error"),
            listed.join(", ")
        );
        let mut response = Response::new("");
        if status == 429 {
            description.push_str(" `Retry-After` says when to try again.");
            response.headers.insert("retry-after".into(), retry_after());
        }
        if status == 503 {
            description.push_str(" Retrying is safe; `Retry-After` when too much work is queued.");
            response.headers.insert("retry-after".into(), retry_after());
        }
        if codes
            .iter()
            .any(|c| ErrorCode::from_code(c).is_some_and(ErrorCode::is_token_failure))
        {
            let mut h = Header::new(String::schema());
            h.description = Some(
                "`Bearer error=\"invalid_token\", error_description=\"<code>\"` for a token \
                 failure (RFC 6750)."
                    .into(),
            );
            response.headers.insert("www-authenticate".into(), h.into());
        }
        response.description = description;
        let narrowed = ObjectBuilder::new().property(
            "error",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes.iter().copied())),
        );
        let schema = AllOfBuilder::new()
            .item(Ref::from_schema_name(ErrorBody::name()))
            .item(narrowed);
        response.content.insert(
            "application/json".into(),
            Content::new(Some(Schema::from(schema))).into(),
        );
        operation
            .responses
            .responses
            .insert(status.to_string(), response.into());
    }
}

fn retry_after() -> RefOr<Header> {
    let mut h = Header::new(u64::schema());
    h.description = Some("Seconds to wait before retrying.".into());
    h.into()
}

/// utoipa's `Header` has no `required`; the JSON gets it here. `x-request-id` is on every
/// response, `Retry-After` on every 429.
fn mark_required_headers(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in item.values_mut().filter_map(Value::as_object_mut) {
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let Some(response) = response.as_object_mut() else {
                    continue;
                };
                let headers = response.entry("headers").or_insert_with(|| json!({}));
                let Some(headers) = headers.as_object_mut() else {
                    continue;
                };
                headers.insert(
                    "x-request-id".into(),
                    json!({
                        "description": "The request's id: the caller's `x-request-id` when it is 1 to 128 visible ASCII characters, else a new one. Every log line of the request carries it.",
                        "required": true,
                        "schema": {"type": "string"}
                    }),
                );
                if status == "429"
                    && let Some(h) = headers
                        .get_mut("retry-after")
                        .and_then(Value::as_object_mut)
                {
                    h.insert("required".into(), json!(true));
                }
            }
        }
    }
}
