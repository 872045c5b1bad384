//! `/api/admin/*`: user and role administration, guarded by the `redauth:admin`
//! permission.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use redauth_core::service::NewUser;
use redauth_core::{Role, User};
use serde::{Deserialize, Serialize};

use crate::Redauth;
use crate::error::ApiError;
use crate::extract::{AdminUser, ApiJson};

/// A user as admins see it: everything but the password hash.
#[derive(Serialize)]
pub struct AdminUserView {
    id: String,
    username: String,
    email: String,
    roles: Vec<String>,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    password_changed_at: i64,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    email: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

pub async fn create_user(
    State(state): State<Redauth>,
    _: AdminUser,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<AdminUserView>), ApiError> {
    let new = NewUser {
        username: req.username,
        email: req.email,
        password: req.password,
        roles: req.roles,
    };
    let user = state.service.create_user(new).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

pub async fn list_users(
    State(state): State<Redauth>,
    _: AdminUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let users: Vec<AdminUserView> = state
        .service
        .list_users()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "users": users })))
}

pub async fn get_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(state.service.get_user(&id).await?.into()))
}

pub async fn delete_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_user(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn disable_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(state.service.set_disabled(&id, true).await?.into()))
}

pub async fn enable_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(state.service.set_disabled(&id, false).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    roles: Vec<String>,
}

pub async fn set_user_roles(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetRoles>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(
        state.service.set_user_roles(&id, req.roles).await?.into(),
    ))
}

pub async fn list_roles(
    State(state): State<Redauth>,
    _: AdminUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({ "roles": state.service.list_roles().await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRole {
    permissions: Vec<String>,
}

pub async fn put_role(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PutRole>,
) -> Result<Json<Role>, ApiError> {
    Ok(Json(
        state
            .service
            .put_role(Role {
                name,
                permissions: req.permissions,
            })
            .await?,
    ))
}
