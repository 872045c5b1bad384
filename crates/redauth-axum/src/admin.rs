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

/// `POST /api/admin/users` ([`CreateUserRequest`]): 201 with the new user
/// ([`AdminUserView`]). 400 for a field or role that fails its check, 409
/// `username_taken` or `email_taken`.
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

/// `GET /api/admin/users`: every user, sorted by username ([`UserList`]).
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

/// `GET /api/admin/users/{id}`: the user ([`AdminUserView`]), or 404.
pub async fn get_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(state.service.get_user(&id).await?.into()))
}

/// `DELETE /api/admin/users/{id}`: 204, and the user, its username and every session of
/// it (linked cookie sessions included) are gone. 409 `last_admin` for the last enabled
/// administrator.
pub async fn delete_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_user(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/users/{id}/disable`: the updated user. Every session of the user ends
/// at once, on every node. 409 `last_admin` for the last enabled administrator.
pub async fn disable_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(state.service.set_disabled(&id, true).await?.into()))
}

/// `POST /api/admin/users/{id}/enable`: the updated user, who may log in again (sessions
/// ended by disabling stay ended).
pub async fn enable_user(
    State(state): State<Redauth>,
    _: AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(state.service.set_disabled(&id, false).await?.into()))
}

/// `PUT /api/admin/users/{id}/roles` ([`SetRolesRequest`]): replaces the user's roles and
/// answers with the updated user. The user's sessions go on with the new rights. 400 for
/// an undefined role, 409 `last_admin` if no enabled administrator would be left.
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

/// `GET /api/admin/roles`: every role, sorted by name ([`RoleList`]).
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

/// `PUT /api/admin/roles/{name}` ([`PutRoleRequest`]): creates the role or replaces its
/// permissions, and answers with the stored [`Role`]. Holders get the new rights at once.
/// 409 `last_admin` if no enabled administrator would be left.
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
