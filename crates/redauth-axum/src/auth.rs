//! `/api/auth/*`: login, refresh, logout, the caller's principal and sessions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redauth_core::service::IssuedTokens;
use redauth_core::{AuthError, Session, ValidationError};
use serde::{Deserialize, Serialize};

use crate::Redauth;
use crate::error::ApiError;
use crate::extract::{
    ApiJson, AuthUser, bearer_token, client_info, cookie, is_json, parse_json,
    unsupported_media_type,
};

/// How the client wants its refresh token. `cookie` (default) keeps it out of reach
/// of page scripts; `body` is for clients that cannot hold cookies (mobile, CLI,
/// server-to-server), which must then store it safely themselves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    #[default]
    Cookie,
    Body,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    refresh_token_delivery: Delivery,
    /// Initial data of the session cookie (a JSON object), when login sets one.
    #[serde(default)]
    session_data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    username: &'a str,
    roles: &'a [String],
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// Seconds the refresh token (the login session) stays usable if not refreshed
    /// sooner: the earlier of the idle and the absolute expiry. Refreshing moves it.
    refresh_expires_in: i64,
    user: UserView<'a>,
}

pub(super) fn token_response(
    state: &Redauth,
    issued: &IssuedTokens,
    delivery: Delivery,
) -> Response {
    let p = &issued.principal;
    let refresh_expires_in = (p.session_expires_at - state.service.now()).max(0);
    let body = TokenResponse {
        access_token: &issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_token: (delivery == Delivery::Body).then(|| issued.refresh_token.as_str()),
        refresh_expires_in,
        user: UserView {
            id: &p.user_id,
            username: &p.username,
            roles: p.roles(),
        },
    };
    let mut res = Json(body).into_response();
    if delivery == Delivery::Cookie {
        set_cookie(
            &mut res,
            &state.refresh_cookie(issued.refresh_token.as_str(), refresh_expires_in),
        );
    }
    res
}

fn set_cookie(res: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub async fn login(
    State(state): State<Redauth>,
    parts: Parts,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    if let Some(sessions) = state
        .cookie_sessions
        .as_deref()
        .filter(|s| s.issues_session)
    {
        return crate::cookie::login(
            &state,
            sessions,
            &parts,
            (&req.username, &req.password),
            client_info(&parts, &state.http),
            req.session_data,
            req.refresh_token_delivery,
        )
        .await;
    }
    if req.session_data.is_some() {
        return Err(ApiError::invalid_request(
            "session_data needs login to set a session cookie (REDAUTH_LOGIN_ISSUES)",
        ));
    }
    let issued = state
        .service
        .login(
            &req.username,
            &req.password,
            client_info(&parts, &state.http),
        )
        .await?;
    Ok(token_response(&state, &issued, req.refresh_token_delivery))
}

/// The refresh token from a JSON body (`{"refresh_token": …}`) if there is a body,
/// else from the cookie. Tokens in the URL are never read.
fn presented_refresh_token(
    state: &Redauth,
    parts: &Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Option<String>, Delivery), ApiError> {
    let body = body?;
    if body.is_empty() {
        return Ok((
            cookie(parts, &state.http.refresh_cookie_name)?.map(str::to_owned),
            Delivery::Cookie,
        ));
    }
    if !is_json(&parts.headers) {
        return Err(unsupported_media_type());
    }
    let req: RefreshRequest = parse_json(&body)?;
    Ok((Some(req.refresh_token), Delivery::Body))
}

pub async fn refresh(
    State(state): State<Redauth>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (token, delivery) = presented_refresh_token(&state, &parts, body)?;
    let token = token.ok_or(AuthError::InvalidRefreshToken)?;
    match state
        .service
        .refresh(&token, &client_info(&parts, &state.http))
        .await
    {
        Ok(issued) => Ok(token_response(&state, &issued, delivery)),
        Err(e @ (AuthError::InvalidRefreshToken | AuthError::RefreshTokenReused))
            if delivery == Delivery::Cookie =>
        {
            // The cookie can never work again: drop it along with the error.
            let mut res = ApiError::from(e).into_response();
            set_cookie(&mut res, &state.clear_refresh_cookie());
            Ok(res)
        }
        Err(e) => Err(e.into()),
    }
}

/// Idempotent: always 204 and a cleared cookie, whether or not a session was found.
pub async fn logout(
    State(state): State<Redauth>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (refresh, _) = presented_refresh_token(&state, &parts, body)?;
    let bearer = bearer_token(&parts).ok().flatten();
    state.service.logout(bearer, refresh.as_deref()).await?;
    let mut res = state.no_content_clearing_cookie();
    if let Some(sessions) = state.cookie_sessions.as_deref() {
        crate::cookie::logout(sessions, &parts, &mut res).await?;
    }
    Ok(res)
}

pub async fn logout_all(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
) -> Result<Response, ApiError> {
    state.service.revoke_all_sessions(&p.user_id, None).await?;
    Ok(state.no_content_clearing_cookie())
}

pub async fn me(AuthUser(p): AuthUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "id": p.user_id,
        "username": p.username,
        "roles": p.roles(),
        "permissions": p.permissions(),
        "session_id": p.session_id,
        "session_expires_at": p.session_expires_at,
    }))
}

/// For reverse proxies (`auth_request`, `forward_auth`) and SvelteKit hooks: 204 with
/// the identity in headers, or 401.
pub async fn verify(AuthUser(p): AuthUser) -> Response {
    const USER: HeaderName = HeaderName::from_static("x-auth-user");
    const USERNAME: HeaderName = HeaderName::from_static("x-auth-username");
    const ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
    const SESSION: HeaderName = HeaderName::from_static("x-auth-session");
    // Room for these and the headers the edge middleware adds, so the map never grows.
    let mut headers = HeaderMap::with_capacity(16);
    let roles = match p.roles() {
        [one] => std::borrow::Cow::Borrowed(one.as_str()),
        many => std::borrow::Cow::Owned(many.join(",")),
    };
    for (name, value) in [
        (USER, p.user_id.as_str()),
        (USERNAME, p.username.as_str()),
        (ROLES, &roles),
        (SESSION, p.session_id.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    *res.headers_mut() = headers;
    res
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    current: bool,
    created_at: i64,
    last_seen: i64,
    expires_at: i64,
    absolute_expiry: i64,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl SessionView {
    fn new(s: Session, current_sid: &str) -> Self {
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

/// `?limit=&cursor=` of `GET /api/auth/sessions`. Kept as text so that a malformed
/// value gets the service's own validation error, not the extractor's.
#[derive(Deserialize)]
pub struct SessionsQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// One page of the caller's sessions: `{"sessions": [...], "next_cursor": "…" | null}`.
/// Without `cursor` it is the first page, as before pagination (`sessions` unchanged);
/// a client follows `next_cursor` until it is null.
pub async fn sessions(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
    query: Result<Query<SessionsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::invalid_request("query: expected limit and cursor"))?;
    let limit = query
        .limit
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| AuthError::from(ValidationError::new("limit", "must be 1 to 100")))
        })
        .transpose()?;
    let page = state
        .service
        .list_sessions(&p.user_id, limit, query.cursor.as_deref())
        .await?;
    let list: Vec<_> = page
        .sessions
        .into_iter()
        .map(|s| SessionView::new(s, &p.session_id))
        .collect();
    Ok(Json(serde_json::json!({
        "sessions": list,
        "next_cursor": page.next.map(|c| c.to_string()),
    })))
}

pub async fn delete_session(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.revoke_session(&p.user_id, &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
    parts: Parts,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .change_password(
            &p,
            &req.current_password,
            &req.new_password,
            &client_info(&parts, &state.http),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
