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
    pub error: ErrorCode,
    pub message: Cow<'static, str>,
}

/// How the client wants its refresh token. `cookie` (default) keeps it out of reach
/// of page scripts; `body` is for clients that cannot hold cookies (mobile, CLI,
/// server-to-server), which must then store it safely themselves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    #[default]
    Cookie,
    Body,
}

/// `POST /api/auth/login`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
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
    pub refresh_token: String,
}

/// `POST /api/auth/password`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `?limit=&cursor=` of `GET /api/auth/sessions`. Kept as text so that a malformed
/// value gets the service's own validation error, not the extractor's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionsQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A logged-in user as the user's own clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
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
    #[default]
    Bearer,
}

/// A successful login or refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Only with `refresh_token_delivery: "body"`; otherwise it is in the cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub user: UserView,
}

/// `GET /api/auth/me`: the user with the login session the access token belongs to.
/// Flat (the user's fields beside the session's), as it was before [`UserView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeView {
    #[serde(flatten)]
    pub user: UserView,
    pub session_id: String,
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
    pub id: String,
    /// The session the request's access token belongs to.
    pub current: bool,
    #[schema(value_type = i64)]
    pub created_at: UnixTime,
    #[schema(value_type = i64)]
    pub last_seen: UnixTime,
    /// When it ends unless refreshed: the earlier of the idle and absolute expiries.
    #[schema(value_type = i64)]
    pub expires_at: UnixTime,
    #[schema(value_type = i64)]
    pub absolute_expiry: UnixTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl SessionView {
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
    pub sessions: Vec<SessionView>,
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
    pub session: CookieSessionInfo,
    /// The session's data, without redauth's own link.
    pub data: Value,
}

/// A login that sets a session cookie and issues no tokens (`REDAUTH_LOGIN_ISSUES=session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CookieLoginResponse {
    pub user: UserView,
    pub session: CookieSessionInfo,
}

/// `POST /api/admin/users`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    #[schema(value_type = Vec<RoleName>)]
    pub roles: Vec<String>,
}

/// `PUT /api/admin/users/{id}/roles`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    #[schema(value_type = Vec<RoleName>)]
    pub roles: Vec<String>,
}

/// `PUT /api/admin/roles/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoleRequest {
    #[schema(value_type = Vec<RoleName>)]
    pub permissions: Vec<String>,
}

/// A user as admins see it: the stored record, everything but the password hash (and
/// the security version, an internal counter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminUserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    #[schema(value_type = i64)]
    pub created_at: UnixTime,
    #[schema(value_type = i64)]
    pub updated_at: UnixTime,
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
    pub users: Vec<AdminUserView>,
}

/// `GET /api/admin/roles`. (`PUT /api/admin/roles/{name}` answers with the one role.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<RoleView>,
}

/// A role and the permissions it grants: the stored [`Role`], field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    #[schema(value_type = RoleName)]
    pub name: String,
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
    pub status: HealthStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// `GET /readyz` when the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    pub revocation_feed: FeedStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
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
