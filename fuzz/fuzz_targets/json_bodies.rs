//! The JSON request bodies of the HTTP API (`redauth_axum::dto`): `LoginRequest`,
//! `RefreshRequest`, `ChangePasswordRequest` (auth) and `CreateUserRequest`,
//! `SetRolesRequest`, `PutRoleRequest` (admin).
//!
//! The first byte picks a `Content-Type`; the rest is the body. Every body goes to every
//! type, both through `serde_json::from_slice` and through the server's own `ApiJson`
//! extractor (what the handlers use).
//!
//! Properties: nothing panics; the extractor fails only with 400 or 415 (never 5xx);
//! with `Content-Type: application/json` it accepts exactly what `from_slice` accepts;
//! a wrong content type is 415; a body that parses as a type is a JSON object with only
//! that type's fields, all its required fields and the right JSON types, and conversely
//! any JSON object of that shape parses (so `deny_unknown_fields` and the field types
//! are enforced exactly).

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use libfuzzer_sys::fuzz_target;
use redauth_axum::dto::{
    ChangePasswordRequest, CreateUserRequest, LoginRequest, PutRoleRequest, RefreshRequest,
    SetRolesRequest,
};
use redauth_axum::extract::ApiJson;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// What one body type accepts, as JSON shape.
enum Kind {
    Str,
    Strings,
    Delivery,
    Any,
}

struct Shape {
    name: &'static str,
    fields: &'static [(&'static str, Kind, bool)],
}

const LOGIN: Shape = Shape {
    name: "LoginRequest",
    fields: &[
        ("username", Kind::Str, true),
        ("password", Kind::Str, true),
        ("refresh_token_delivery", Kind::Delivery, false),
        ("session_data", Kind::Any, false),
    ],
};
const REFRESH: Shape = Shape {
    name: "RefreshRequest",
    fields: &[("refresh_token", Kind::Str, true)],
};
const CHANGE_PASSWORD: Shape = Shape {
    name: "ChangePasswordRequest",
    fields: &[
        ("current_password", Kind::Str, true),
        ("new_password", Kind::Str, true),
    ],
};
const CREATE_USER: Shape = Shape {
    name: "CreateUserRequest",
    fields: &[
        ("username", Kind::Str, true),
        ("email", Kind::Str, true),
        ("password", Kind::Str, true),
        ("roles", Kind::Strings, false),
    ],
};
const SET_ROLES: Shape = Shape {
    name: "SetRolesRequest",
    fields: &[("roles", Kind::Strings, true)],
};
const PUT_ROLE: Shape = Shape {
    name: "PutRoleRequest",
    fields: &[("permissions", Kind::Strings, true)],
};

impl Kind {
    fn accepts(&self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::Strings => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            // serde's externally tagged unit variants: "body", or {"body": null}.
            Kind::Delivery => {
                let variant = |s: &str| s == "cookie" || s == "body";
                match v {
                    Value::String(s) => variant(s),
                    Value::Object(m) => {
                        m.len() == 1 && m.iter().all(|(k, v)| variant(k) && v.is_null())
                    }
                    _ => false,
                }
            }
            Kind::Any => true,
        }
    }
}

impl Shape {
    fn fits(&self, obj: &Map<String, Value>) -> bool {
        obj.keys()
            .all(|k| self.fields.iter().any(|(name, _, _)| name == k))
            && self
                .fields
                .iter()
                .all(|(name, kind, required)| obj.get(*name).map_or(!required, |v| kind.accepts(v)))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json"),
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/problem+json"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
    Some("application/jsonx"),
    Some("APPLICATION/JSON"),
    Some(""),
    None,
];

fn check<T: DeserializeOwned>(shape: &Shape, content_type: Option<&str>, body: &[u8]) {
    // redauth's own body parser (objects only), not bare serde, which also reads a
    // struct from an array.
    let typed = redauth_axum::extract::parse_json::<T>(body);
    let value = serde_json::from_slice::<Value>(body);
    if typed.is_ok() {
        let value = value.as_ref().expect("typed parse implies JSON");
        let obj = value.as_object().expect("typed parse implies an object");
        assert!(shape.fits(obj), "{} accepted {value}", shape.name);
    }
    if let Ok(Value::Object(obj)) = &value {
        // Duplicate keys are lost in `Value`, so judge the shape on its re-serialised
        // form, which has none.
        let canonical = serde_json::to_vec(obj).unwrap();
        assert_eq!(
            serde_json::from_slice::<T>(&canonical).is_ok(),
            shape.fits(obj),
            "{} vs shape for {}",
            shape.name,
            String::from_utf8_lossy(&canonical)
        );
    }

    let mut req = Request::builder().method("POST").uri("/");
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let req = req.body(Body::from(body.to_vec())).unwrap();
    let extracted = runtime().block_on(ApiJson::<T>::from_request(req, &()));
    match extracted {
        Ok(_) => assert!(
            typed.is_ok(),
            "{}: extractor accepted what serde refuses",
            shape.name
        ),
        Err(e) => {
            assert!(
                matches!(
                    e.status(),
                    StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE
                ),
                "{}: status {}",
                shape.name,
                e.status()
            );
            if content_type == Some("application/json") {
                assert!(
                    typed.is_err(),
                    "{}: extractor refused ({} {}) what serde accepts",
                    shape.name,
                    e.status(),
                    e.message
                );
                assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            }
            if matches!(content_type, None | Some("text/plain" | "")) {
                assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            let res = axum::response::IntoResponse::into_response(e);
            assert!(!res.status().is_server_error());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ct, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(ct) % CONTENT_TYPES.len()];
    check::<LoginRequest>(&LOGIN, content_type, body);
    check::<RefreshRequest>(&REFRESH, content_type, body);
    check::<ChangePasswordRequest>(&CHANGE_PASSWORD, content_type, body);
    check::<CreateUserRequest>(&CREATE_USER, content_type, body);
    check::<SetRolesRequest>(&SET_ROLES, content_type, body);
    check::<PutRoleRequest>(&PUT_ROLE, content_type, body);
});
