//! Every JSON body the API reads or writes, as types. Handlers build these and never
//! JSON by hand, so the wire format is written down in one place (and can be turned
//! into an OpenAPI document from here).
//!
//! One [`UserView`] is the user a client sees wherever a logged-in user is shown: the
//! token response, `GET /api/auth/me` (flattened beside the session fields), the
//! cookie-session login and `GET /api/auth/session`. Admins see the stored record
//! instead ([`AdminUserView`]): email, timestamps and the disabled flag, which a user's
//! own responses leave out.
//!
//! Requests refuse unknown fields: a misspelt field is an error, not silently ignored.
//! Request types that carry passwords or tokens deliberately have no `Debug`.

use std::borrow::Cow;
use std::collections::BTreeSet;

use redauth_core::clock::UnixTime;
use redauth_core::{Principal, Role, Session, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ErrorCode;
use crate::openapi::RoleName;

/// Every error response: `{"error": "<stable_code>", "message": "<human text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The stable code, which fixes the status: what a client branches on.
    pub error: ErrorCode,
    /// For people: the wording may change between versions. redauth never echoes a
    /// value the client sent in it (a password typed into the wrong field stays out).
    pub message: Cow<'static, str>,
}

/// How the client wants its refresh token. `cookie` (default) keeps it out of reach
/// of page scripts; `body` is for clients that cannot hold cookies (mobile, CLI,
/// server-to-server), which must then store it safely themselves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// `"cookie"` (the default): the refresh token comes in an `HttpOnly` cookie for
    /// `/api/auth`, out of reach of page scripts, and is sent back by the browser.
    #[default]
    Cookie,
    /// `"body"`: the refresh token comes as `refresh_token` in the JSON, and the client
    /// sends it back in a [`RefreshRequest`].
    Body,
}

/// `POST /api/auth/login`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// In any case or Unicode form. A name that cannot exist gets the same 401 as a wrong
    /// password.
    pub username: String,
    /// Plain text. Over the policy's maximum length it fails like a wrong password,
    /// before any hashing.
    pub password: String,
    /// Where the refresh token goes; `"cookie"` when absent.
    #[serde(default)]
    pub refresh_token_delivery: Delivery,
    /// Initial data of the session cookie (a JSON object), when login sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub session_data: Option<Value>,
}

/// `POST /api/auth/refresh` and `/logout` with a body (no cookie jar).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The `refresh_token` of the last [`TokenResponse`].
    pub refresh_token: String,
}

/// `POST /api/auth/password`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The caller's password now. A wrong one is 401 `invalid_credentials` and spends the
    /// same brute-force budgets as a failed login.
    pub current_password: String,
    /// Held to the password policy (length, not a common password), else 400
    /// `invalid_request`.
    pub new_password: String,
}

/// `?limit=&cursor=` of `GET /api/auth/sessions`. Kept as text so that a malformed
/// value gets the service's own validation error, not the extractor's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionsQuery {
    /// Sessions per page, 1 to 100; 100 when absent.
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

/// A logged-in user as the user's own clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// The user's id: stable and never reused.
    pub id: String,
    /// As the user typed it at creation, not normalized.
    pub username: String,
    /// Names of the roles the user holds.
    pub roles: Vec<String>,
    /// What the roles grant, so a client can decide what to show without knowing the
    /// role definitions.
    pub permissions: BTreeSet<String>,
}

impl From<&Principal> for UserView {
    fn from(p: &Principal) -> Self {
        Self {
            id: p.user_id.to_string(),
            username: p.username.to_string(),
            roles: p.roles().to_vec(),
            permissions: p.permissions().clone(),
        }
    }
}

/// The only `token_type` issued (RFC 6749 §7.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TokenType {
    /// `"Bearer"`.
    #[default]
    Bearer,
}

/// A successful login or refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer <token>` until it expires.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Only with `refresh_token_delivery: "body"`; otherwise it is in the cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds the refresh token (the login session) stays usable if not refreshed
    /// sooner: the earlier of the idle and the absolute expiry. Refreshing moves it.
    /// Also the refresh cookie's `Max-Age`.
    pub refresh_expires_in: i64,
    /// Who logged in, with their rights at this moment.
    pub user: UserView,
}

/// `GET /api/auth/me`: the user with the login session the access token belongs to.
/// Flat (the user's fields beside the session's), as it was before [`UserView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeView {
    /// The caller, flattened: `id`, `username`, `roles` and `permissions` sit beside the
    /// session fields.
    #[serde(flatten)]
    pub user: UserView,
    /// The login session the access token belongs to: the `{sid}` that
    /// `DELETE /api/auth/sessions/{sid}` ends.
    pub session_id: String,
    /// When that session ends unless refreshed, Unix seconds: the earlier of its idle and
    /// absolute expiries.
    #[schema(value_type = i64)]
    pub session_expires_at: UnixTime,
}

impl From<&Principal> for MeView {
    fn from(p: &Principal) -> Self {
        Self {
            user: p.into(),
            session_id: p.session_id.to_string(),
            session_expires_at: p.session_expires_at,
        }
    }
}

/// One login session in `GET /api/auth/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// The session's id, the `{sid}` of `DELETE /api/auth/sessions/{sid}`.
    pub id: String,
    /// The session the request's access token belongs to.
    pub current: bool,
    /// Login time, Unix seconds.
    #[schema(value_type = i64)]
    pub created_at: UnixTime,
    /// Time of the last refresh (the login, before the first one), Unix seconds.
    #[schema(value_type = i64)]
    pub last_seen: UnixTime,
    /// When it ends unless refreshed: the earlier of the idle and absolute expiries.
    #[schema(value_type = i64)]
    pub expires_at: UnixTime,
    /// The hard end, Unix seconds, fixed at login: refreshing never moves it.
    #[schema(value_type = i64)]
    pub absolute_expiry: UnixTime,
    /// The client's address at login; `null` when it was unknown.
    pub ip: Option<String>,
    /// The `User-Agent` at login, cut to 512 bytes; `null` when none was sent.
    pub user_agent: Option<String>,
}

impl SessionView {
    /// The view of `s`; `current` when it is the session `current_sid`.
    pub fn new(s: Session, current_sid: &str) -> Self {
        Self {
            current: s.sid == current_sid,
            expires_at: s.expires_at(),
            id: s.sid,
            created_at: s.created_at,
            last_seen: s.last_seen,
            absolute_expiry: s.absolute_expiry,
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

/// One page of `GET /api/auth/sessions`; `next_cursor` is `null` on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionPage {
    /// Oldest first (by absolute expiry). May hold fewer than `limit` even when more
    /// follow.
    pub sessions: Vec<SessionView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The `session` of a cookie-session response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CookieSessionInfo {
    /// The *login* session the cookie session is linked to; `null` for a cookie
    /// session no redauth login made.
    pub id: Option<String>,
    /// When the cookie session ends; `null` for one without an expiry.
    #[schema(value_type = Option<i64>)]
    pub expires_at: Option<UnixTime>,
}

/// `GET /api/auth/session`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CookieSessionView {
    /// `null` for a cookie session no redauth login made.
    pub user: Option<UserView>,
    /// The cookie session: the login session it is linked to and when it ends.
    pub session: CookieSessionInfo,
    /// The session's data, without redauth's own link.
    pub data: Value,
}

/// A login that sets a session cookie and issues no tokens (`REDAUTH_LOGIN_ISSUES=session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CookieLoginResponse {
    /// Who logged in.
    pub user: UserView,
    /// The new cookie session: its login session and when it ends. The cookie itself is
    /// in `Set-Cookie`.
    pub session: CookieSessionInfo,
}

/// `POST /api/admin/users`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 3 to 64 letters, digits, `.`, `_`, `-` or `@`; unique up to case, Unicode form and
    /// look-alike characters (else 409 `username_taken`).
    pub username: String,
    /// An address like `name@example.com`, checked for shape, kept as entered; unique
    /// up to case, Unicode form and look-alike characters (else 409 `email_taken`).
    pub email: String,
    /// Held to the password policy (length, not a common password).
    pub password: String,
    /// Names of existing roles to grant; none when absent.
    #[serde(default)]
    #[schema(value_type = Vec<RoleName>)]
    pub roles: Vec<String>,
}

/// `PUT /api/admin/users/{id}/roles`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    /// The user's complete new set of roles (an empty list removes them all); each must
    /// be an existing role.
    #[schema(value_type = Vec<RoleName>)]
    pub roles: Vec<String>,
}

/// `PUT /api/admin/roles/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoleRequest {
    /// The role's complete new set of permissions, each 1 to 64 of `a-z 0-9 _ : . -`.
    /// Holders of a role with `redauth:admin` are administrators.
    #[schema(value_type = Vec<RoleName>)]
    pub permissions: Vec<String>,
}

/// A user as admins see it: the stored record, everything but the password hash (and
/// the security version, an internal counter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminUserView {
    /// The user's id: stable, the `{id}` of the admin routes.
    pub id: String,
    /// As typed at creation, not normalized.
    pub username: String,
    /// As given at creation; never verified.
    pub email: String,
    /// Names of the roles the user holds.
    pub roles: Vec<String>,
    /// A disabled user cannot log in and has no live sessions.
    pub disabled: bool,
    /// Unix seconds.
    #[schema(value_type = i64)]
    pub created_at: UnixTime,
    /// Unix seconds of the last change of any kind (roles, password, disabling…).
    #[schema(value_type = i64)]
    pub updated_at: UnixTime,
    /// Unix seconds of the last password change (creation counts).
    #[schema(value_type = i64)]
    pub password_changed_at: UnixTime,
}

impl From<User> for AdminUserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            roles: u.roles,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
            password_changed_at: u.password_changed_at,
        }
    }
}

/// `GET /api/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// Every user, sorted by username; not paginated.
    pub users: Vec<AdminUserView>,
}

/// `GET /api/admin/roles`. (`PUT /api/admin/roles/{name}` answers with the one role.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleList {
    /// Every role, sorted by name.
    pub roles: Vec<RoleView>,
}

/// A role and the permissions it grants: the stored [`Role`], field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    /// 1 to 64 of `a-z 0-9 _ : . -`.
    #[schema(value_type = RoleName)]
    pub name: String,
    /// What holders of the role may do; `redauth:admin` makes them administrators.
    #[schema(value_type = Vec<RoleName>)]
    pub permissions: Vec<String>,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            name: r.name,
            permissions: r.permissions,
        }
    }
}

/// `GET /healthz`: the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `"ok"`: that the process answers at all is the signal.
    pub status: HealthStatus,
}

/// The one `status` of `GET /healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// `"ok"`.
    Ok,
}

/// `GET /readyz` when the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Always `"ready"`; a store that does not answer is 503 `unavailable` instead.
    pub status: ReadyStatus,
    /// Whether this node hears other nodes' revocations. `lost` is still ready, only
    /// slower: every check reads the store.
    pub revocation_feed: FeedStatus,
}

/// The one `status` of a 200 from `GET /readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    /// `"ready"`.
    Ready,
}

/// The revocation feed as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeedStatus {
    /// Subscribed: the session cache is trusted.
    Subscribed,
    /// Not yet or no longer subscribed: the cache is off, every check reads the store.
    Lost,
    /// A store without a feed (the embedded one: a single process).
    None,
}
