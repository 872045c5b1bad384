//! `/api/auth/*`: login, refresh, logout, the caller's principal and sessions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use redauth_core::service::IssuedTokens;
use redauth_core::{AuthError, ValidationError};

use crate::dto::{
    ChangePasswordRequest, Delivery, LoginRequest, MeView, RefreshRequest, SessionPage,
    SessionView, SessionsQuery, TokenResponse, TokenType,
};
use crate::error::ApiError;
use crate::extract::{
    ApiJson, AuthUser, bearer_token, client_info, cookie, is_json, parse_json,
    unsupported_media_type,
};
use crate::{Redauth, append_set_cookie};

pub(super) fn token_response(
    state: &Redauth,
    issued: &IssuedTokens,
    delivery: Delivery,
) -> Result<Response, ApiError> {
    let p = &issued.principal;
    let refresh_expires_in = (p.session_expires_at - state.service.now()).max(0);
    let body = TokenResponse {
        access_token: issued.access_token.clone(),
        token_type: TokenType::Bearer,
        expires_in: issued.expires_in,
        refresh_token: (delivery == Delivery::Body)
            .then(|| issued.refresh_token.as_str().to_owned()),
        refresh_expires_in,
        user: p.as_ref().into(),
    };
    let mut res = Json(body).into_response();
    if delivery == Delivery::Cookie {
        append_set_cookie(
            &mut res,
            &state.refresh_cookie(issued.refresh_token.as_str(), refresh_expires_in)?,
        );
    }
    Ok(res)
}

/// `POST /api/auth/login` ([`LoginRequest`]): a [`TokenResponse`], with the refresh token
/// in a cookie unless `refresh_token_delivery` is `body`. When cookie sessions are set to
/// issue one, also a session cookie, and a
/// [`CookieLoginResponse`](crate::dto::CookieLoginResponse) instead of tokens when they
/// issue only sessions. 401 `invalid_credentials`, 429 `rate_limited`, 503 when password
/// checks are queued past the limit.
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
    token_response(&state, &issued, req.refresh_token_delivery)
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

/// `POST /api/auth/refresh`: the refresh token from the cookie (empty body) or from a
/// [`RefreshRequest`] body; the new tokens ([`TokenResponse`]) go back the same way. A
/// cookie that can never work again (`invalid_refresh_token`, `refresh_token_reused`) is
/// cleared with the error.
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
        Ok(issued) => token_response(&state, &issued, delivery),
        Err(e @ (AuthError::InvalidRefreshToken | AuthError::RefreshTokenReused))
            if delivery == Delivery::Cookie =>
        {
            // The cookie can never work again: drop it along with the error.
            let mut res = ApiError::from(e).into_response();
            append_set_cookie(&mut res, &state.clear_refresh_cookie());
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

/// `POST /api/auth/logout-all`: ends every session of the caller, this one included; 204
/// and a cleared refresh cookie.
pub async fn logout_all(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
) -> Result<Response, ApiError> {
    state.service.revoke_all_sessions(&p.user_id, None).await?;
    Ok(state.no_content_clearing_cookie())
}

/// `GET /api/auth/me`: the caller and the login session of its token ([`MeView`]).
pub async fn me(AuthUser(p): AuthUser) -> Json<MeView> {
    Json(p.as_ref().into())
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

/// One page of the caller's sessions: `{"sessions": [...], "next_cursor": "…" | null}`.
/// Without `cursor` it is the first page, as before pagination (`sessions` unchanged);
/// a client follows `next_cursor` until it is null.
pub async fn sessions(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
    query: Result<Query<SessionsQuery>, QueryRejection>,
) -> Result<Json<SessionPage>, ApiError> {
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
    Ok(Json(SessionPage {
        sessions: list,
        next_cursor: page.next.map(|c| c.to_string()),
    }))
}

/// `DELETE /api/auth/sessions/{sid}`: ends one of the caller's own sessions (the current
/// one too); 204, or 404 for a session that is not the caller's or has ended.
pub async fn delete_session(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.revoke_session(&p.user_id, &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/auth/password` ([`ChangePasswordRequest`]): 204, and every other session of
/// the caller ends. A wrong current password is 401 `invalid_credentials` and spends the
/// login budgets; too many in one session end that session. 400 for a new password the
/// policy refuses.
pub async fn change_password(
    State(state): State<Redauth>,
    AuthUser(p): AuthUser,
    parts: Parts,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
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
