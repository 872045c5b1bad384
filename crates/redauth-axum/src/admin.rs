//! `/api/admin/*`: user and role administration, guarded by the `redauth:admin`
//! permission.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use redauth_core::Role;
use redauth_core::service::NewUser;

use crate::Redauth;
use crate::dto::{
    AdminUserView, CreateUserRequest, PutRoleRequest, RoleList, RoleView, SetRolesRequest, UserList,
};
use crate::error::ApiError;
use crate::extract::{AdminUser, ApiJson};

pub async fn create_user(
    State(state): State<Redauth>,
    _: AdminUser,
    ApiJson(req): ApiJson<CreateUserRequest>,
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
) -> Result<Json<UserList>, ApiError> {
    let users: Vec<AdminUserView> = state
        .service
        .list_users()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(UserList { users }))
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

pub async fn set_user_roles(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetRolesRequest>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(
        state.service.set_user_roles(&id, req.roles).await?.into(),
    ))
}

pub async fn list_roles(
    State(state): State<Redauth>,
    _: AdminUser,
) -> Result<Json<RoleList>, ApiError> {
    Ok(Json(RoleList {
        roles: state
            .service
            .list_roles()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

pub async fn put_role(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PutRoleRequest>,
) -> Result<Json<RoleView>, ApiError> {
    Ok(Json(
        state
            .service
            .put_role(Role {
                name,
                permissions: req.permissions,
            })
            .await?
            .into(),
    ))
}
