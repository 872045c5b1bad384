//! The typed models redauth stores. Each has a `validate` that runs before every save:
//! a store never writes a model that fails it.

use std::collections::BTreeSet;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::error::ValidationError;
use crate::ids::is_valid_id;

/// A user's id: a [`random_id`](crate::ids::random_id), 22 base64url characters, assigned
/// at creation, never changed and never reused. In Redis it is also the hash tag
/// (`{u:<id>}`) of every key of the user, so per-user scripts touch one slot.
pub type UserId = String;
/// A login session's id (`sid`): a [`random_id`](crate::ids::random_id), named by both of
/// the session's tokens.
pub type SessionId = String;

/// The permission that guards every admin endpoint.
pub const ADMIN_PERMISSION: &str = "redauth:admin";

/// A user account as stored. `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Assigned at creation ([`UserId`]); names the user in tokens (`sub`) and storage
    /// keys.
    pub id: UserId,
    /// Display form as entered; uniqueness is on [`normalize_username`] of it.
    pub username: String,
    /// As entered, checked for shape ([`validate_email`]); unique up to
    /// [`normalize_email`] and refused when it looks like another user's
    /// ([`email_skeleton`]). Not verified: redauth sends no mail and never looks a user
    /// up by it.
    pub email: String,
    /// PHC string (`$argon2id$…`) or an imported bcrypt hash (`$2b$…`).
    pub password_hash: String,
    /// Names of roles held, no repeats. Each existed when it was granted; what it permits
    /// is read from the [`Role`] definitions at every check, so a role change applies at
    /// once.
    pub roles: Vec<String>,
    /// A disabled user cannot log in (the same answer as a wrong password) and has no
    /// live sessions: disabling ends them all.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: UnixTime,
    /// Unix seconds of the last write of any kind; never before `created_at`.
    pub updated_at: UnixTime,
    /// Unix seconds of the last password change (creation counts). Upgrading an imported
    /// bcrypt hash at login does not move it.
    pub password_changed_at: UnixTime,
    /// Incremented by every write of the user (password, roles, disable, logout
    /// everywhere…), in the same atomic step as the write. Writes are compare-and-set
    /// on it, so a slow read-modify-write (a password change that hashes for 100 ms)
    /// can never put back what a concurrent write removed; and a login creates its
    /// session only if the version it checked the password under is still current.
    /// Users stored before versions existed read as 0.
    #[serde(default)]
    pub security_version: u64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password hash stays out of Debug so it can never reach a log line.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Usernames compare case-insensitively: `Alice` and `alice` are one account.
/// The form a username is unique in: NFKC, case-folded, NFKC again (Unicode's
/// `NFKC_Casefold` as far as it matters here). So `ALICE`, `ａｌｉｃｅ` (fullwidth) and
/// `Kate` with a Kelvin sign name the same account as `alice` and `kate`.
pub fn normalize_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let nfkc: String = username.nfkc().collect();
    caseless::default_case_fold_str(&nfkc).nfkc().collect()
}

/// The lower-cased form usernames were unique in before [`normalize_username`]: stores
/// also look a name up under it, so accounts made then are still found.
pub fn legacy_normalized_username(username: &str) -> String {
    username.to_lowercase()
}

/// The UTS #39 skeleton of a username: two names with one skeleton look alike
/// (`аlice` with a Cyrillic а, `alıce` with a dotless ı, and `alice`), so a second
/// one is refused as taken.
pub fn username_skeleton(username: &str) -> String {
    unicode_security::skeleton(&normalize_username(username)).collect()
}

/// The form an email address is unique in: the same NFKC + case folding as
/// [`normalize_username`], over the whole address. So `Alice@Example.COM` and
/// `ａｌｉｃｅ@example.com` (fullwidth) are `alice@example.com`. The local part is folded
/// too: RFC 5321 lets a server tell `Alice@` from `alice@`, no real provider does, and
/// two accounts differing only there are far likelier an attack than two people.
pub fn normalize_email(email: &str) -> String {
    normalize_username(email)
}

/// The UTS #39 skeleton of an email address (of its [`normalize_email`] form): two
/// addresses with one skeleton look alike (`аlice@example.com` with a Cyrillic а and
/// `alice@example.com`), so a second one is refused as taken. Equal normalized forms
/// have equal skeletons, so this one key guards both.
pub fn email_skeleton(email: &str) -> String {
    unicode_security::skeleton(&normalize_email(email)).collect()
}

impl User {
    /// Checks every field a store relies on: the id's shape, the username and email
    /// rules, a hash of a known scheme, role names without repeats, `updated_at` not
    /// before `created_at`. The error names the first field that fails.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !is_valid_id(&self.id) {
            return Err(ValidationError::new("id", "must be a redauth id"));
        }
        validate_username(&self.username)?;
        validate_email(&self.email)?;
        if !(self.password_hash.starts_with("$argon2id$") || is_bcrypt_hash(&self.password_hash)) {
            return Err(ValidationError::new(
                "password_hash",
                "must be an Argon2id or bcrypt hash",
            ));
        }
        let mut seen = BTreeSet::new();
        for role in &self.roles {
            validate_name("roles", role)?;
            if !seen.insert(role) {
                return Err(ValidationError::new("roles", "must not repeat a role"));
            }
        }
        if self.updated_at < self.created_at {
            return Err(ValidationError::new(
                "updated_at",
                "must not precede created_at",
            ));
        }
        Ok(())
    }
}

pub(crate) fn is_bcrypt_hash(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

/// 3 to 64 characters of letters, digits, `.`, `_`, `-`, `@`: safe in URLs, logs and
/// Redis keys, and wide enough for "name@example.com"-style usernames.
pub fn validate_username(username: &str) -> Result<(), ValidationError> {
    let len = username.chars().count();
    if !(3..=64).contains(&len) {
        return Err(ValidationError::new(
            "username",
            "must be 3 to 64 characters",
        ));
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(ValidationError::new(
            "username",
            "may contain only letters, digits, '.', '_', '-' and '@'",
        ));
    }
    Ok(())
}

/// A deliberately plain check (one `@`, a dotted domain, no spaces, at most 254 bytes):
/// the only real proof of an address is mail that arrives.
pub fn validate_email(email: &str) -> Result<(), ValidationError> {
    let invalid = || ValidationError::new("email", "must be an address like name@example.com");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(invalid());
    }
    Ok(())
}

/// Role and permission names: 1 to 64 of `[a-z0-9_:.-]`.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), ValidationError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b':' | b'.' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "must be 1 to 64 of a-z 0-9 _ : . -",
        ))
    }
}

/// A named set of permissions. Users hold roles, never permissions directly, so changing
/// a role changes the rights of every holder at once (every cached principal is dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The role's identity and what [`User::roles`] lists: 1 to 64 of `a-z 0-9 _ : . -`
    /// ([`validate_name`]).
    pub name: String,
    /// What holding the role grants, same character rules: the names guards check, such
    /// as [`ADMIN_PERMISSION`].
    pub permissions: Vec<String>,
}

impl Role {
    /// Checks the name and every permission with [`validate_name`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)?;
        for p in &self.permissions {
            validate_name("permissions", p)?;
        }
        Ok(())
    }
}

/// A login session: the entity that refresh tokens, access tokens and cookies hang off.
/// Revoking it revokes all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id; with `user_id`, what both of its tokens name.
    pub sid: SessionId,
    /// The owner. A session is only ever looked up under its owner's id, so a token
    /// naming one user with another user's session finds nothing.
    pub user_id: UserId,
    /// Unix seconds of the login.
    pub created_at: UnixTime,
    /// Unix seconds of the last refresh-token rotation (the login, until the first one).
    /// Checking an access token does not touch it.
    pub last_seen: UnixTime,
    /// Hard end of the session, fixed at login.
    pub absolute_expiry: UnixTime,
    /// End of the session if it is not refreshed; each refresh pushes it forward
    /// (never past `absolute_expiry`).
    pub idle_expiry: UnixTime,
    /// The client's address at login, at most 64 bytes; `None` when it was unknown. Shown
    /// in the user's session list.
    pub ip: Option<String>,
    /// The `User-Agent` at login, cut to 512 bytes; `None` when the request had none.
    pub user_agent: Option<String>,
    /// How many times the refresh token has been rotated.
    pub refresh_generation: u64,
}

impl Session {
    /// The moment the session stops being valid, whichever limit comes first.
    pub fn expires_at(&self) -> UnixTime {
        self.absolute_expiry.min(self.idle_expiry)
    }

    /// Whether `now` is before [`Self::expires_at`] (at that second the session is over).
    pub fn is_live(&self, now: UnixTime) -> bool {
        now < self.expires_at()
    }

    /// Checks what a store relies on: well-formed ids, an idle expiry not past the
    /// absolute one, and the client strings within their byte limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !is_valid_id(&self.sid) {
            return Err(ValidationError::new("sid", "must be a redauth id"));
        }
        if !is_valid_id(&self.user_id) {
            return Err(ValidationError::new("user_id", "must be a redauth id"));
        }
        if self.idle_expiry > self.absolute_expiry {
            return Err(ValidationError::new(
                "idle_expiry",
                "must not exceed absolute_expiry",
            ));
        }
        if self.ip.as_ref().is_some_and(|ip| ip.len() > 64) {
            return Err(ValidationError::new("ip", "must be at most 64 bytes"));
        }
        if self.user_agent.as_ref().is_some_and(|ua| ua.len() > 512) {
            return Err(ValidationError::new(
                "user_agent",
                "must be at most 512 bytes",
            ));
        }
        Ok(())
    }
}

/// Everything a request needs to know about who is calling, assembled from one
/// session + user + roles read.
///
/// Shaped to be cheap to hold a million of in the [`SessionCache`](crate::cache):
/// ids and username are [`CompactString`]s (up to 24 bytes inline, so a 22-character
/// redauth id needs no heap allocation of its own), and the roles and permissions
/// live in an [`Access`] that the cache shares between all principals with the same
/// set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's [`UserId`] (the `sub` of the access token).
    pub user_id: CompactString,
    /// The username as the user typed it at creation, not normalized.
    pub username: CompactString,
    /// The login session's [`SessionId`]: revoking it ends this principal on every node.
    pub session_id: CompactString,
    /// When the login session ends unless refreshed ([`Session::expires_at`] at the
    /// read). The cache refuses the entry from then on, and no access token outlives it.
    pub session_expires_at: UnixTime,
    /// Roles and permissions, interned by the cache; read them through [`Self::roles`]
    /// and [`Self::permissions`].
    pub access: Arc<Access>,
}

/// A principal's roles and the permissions they grant. Real deployments have few
/// distinct ones, so the session cache interns them: equal sets share one `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Access {
    /// The role names the user holds, in the user's order.
    pub roles: Vec<String>,
    /// The union of what those roles grant (roles without a definition grant nothing).
    pub permissions: BTreeSet<String>,
}

impl Principal {
    /// Assembles the principal from one store read. Only the `roles` the user holds
    /// count, so a caller may pass every role definition.
    pub fn from_parts(session: &Session, user: &User, roles: &[Role]) -> Self {
        let permissions = roles
            .iter()
            .filter(|r| user.roles.contains(&r.name))
            .flat_map(|r| r.permissions.iter().cloned())
            .collect();
        Self {
            user_id: user.id.as_str().into(),
            username: user.username.as_str().into(),
            session_id: session.sid.as_str().into(),
            session_expires_at: session.expires_at(),
            access: Arc::new(Access {
                roles: user.roles.clone(),
                permissions,
            }),
        }
    }

    /// The role names the user held when the principal was read.
    pub fn roles(&self) -> &[String] {
        &self.access.roles
    }

    /// Everything those roles granted when the principal was read.
    pub fn permissions(&self) -> &BTreeSet<String> {
        &self.access.permissions
    }

    /// Whether one of the user's roles grants `permission` (exact name, no wildcards).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.access.permissions.contains(permission)
    }
}

/// The flat shape it always had: `user_id`, `username`, `roles`, `permissions`,
/// `session_id`, `session_expires_at`.
impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Principal", 6)?;
        st.serialize_field("user_id", self.user_id.as_str())?;
        st.serialize_field("username", self.username.as_str())?;
        st.serialize_field("roles", self.roles())?;
        st.serialize_field("permissions", self.permissions())?;
        st.serialize_field("session_id", self.session_id.as_str())?;
        st.serialize_field("session_expires_at", &self.session_expires_at)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_normalize_by_nfkc_and_case_folding_and_look_alikes_share_a_skeleton() {
        assert_eq!(normalize_username("ＡＬＩＣＥ"), "alice");
        assert_eq!(normalize_username("\u{212a}ate"), "kate");
        assert_eq!(normalize_username("Straße"), "strasse");
        assert_ne!(normalize_username("\u{430}lice"), "alice");
        assert_eq!(username_skeleton("\u{430}lice"), username_skeleton("alice"));
        assert_eq!(username_skeleton("al\u{131}ce"), username_skeleton("alice"));
        assert_ne!(username_skeleton("alice"), username_skeleton("alicia"));
        assert_eq!(legacy_normalized_username("Straße"), "straße");
    }

    #[test]
    fn emails_normalize_by_nfkc_and_case_folding_and_look_alikes_share_a_skeleton() {
        assert_eq!(normalize_email("Alice@Example.COM"), "alice@example.com");
        assert_eq!(
            normalize_email("ａｌｉｃｅ@ｅｘａｍｐｌｅ.com"),
            "alice@example.com"
        );
        assert_eq!(
            normalize_email("\u{212a}ate@example.com"),
            "kate@example.com"
        );
        // Cyrillic а is a letter of its own: not the same address, but it looks the same.
        assert_ne!(
            normalize_email("\u{430}lice@example.com"),
            "alice@example.com"
        );
        assert_eq!(
            email_skeleton("\u{430}lice@example.com"),
            email_skeleton("alice@example.com")
        );
        assert_eq!(
            email_skeleton("alice@ex\u{430}mple.com"),
            email_skeleton("ALICE@example.com")
        );
        assert_eq!(
            email_skeleton("al\u{131}ce@example.com"),
            email_skeleton("alice@example.com")
        );
        assert_ne!(
            email_skeleton("alice@example.com"),
            email_skeleton("alicia@example.com")
        );
        assert_ne!(
            email_skeleton("alice@example.com"),
            email_skeleton("alice@example.org")
        );
        // The address is kept as entered: normalization decides uniqueness only.
        let mut u = user();
        u.email = "Alice@Example.COM".into();
        u.validate().unwrap();
        assert_eq!(u.email, "Alice@Example.COM");
    }
    use crate::ids::random_id;

    fn user() -> User {
        User {
            id: random_id().unwrap(),
            username: "Alice".into(),
            email: "alice@example.com".into(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            roles: vec!["admin".into()],
            disabled: false,
            created_at: 10,
            updated_at: 10,
            password_changed_at: 10,
            security_version: 0,
        }
    }

    #[test]
    fn a_good_user_validates() {
        user().validate().unwrap();
    }

    #[test]
    fn bad_fields_are_named() {
        type Mutation = Box<dyn Fn(&mut User)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("username", Box::new(|u| u.username = "a b".into())),
            ("username", Box::new(|u| u.username = "ab".into())),
            ("email", Box::new(|u| u.email = "not-an-email".into())),
            ("email", Box::new(|u| u.email = "a@b".into())),
            ("email", Box::new(|u| u.email = "a@@b.com".into())),
            (
                "password_hash",
                Box::new(|u| u.password_hash = "plaintext".into()),
            ),
            ("roles", Box::new(|u| u.roles = vec!["Admin".into()])),
            (
                "roles",
                Box::new(|u| u.roles = vec!["x".into(), "x".into()]),
            ),
            ("id", Box::new(|u| u.id = "../etc".into())),
        ];
        for (field, mutate) in cases {
            let mut u = user();
            mutate(&mut u);
            assert_eq!(u.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn debug_never_shows_the_hash() {
        assert!(!format!("{:?}", user()).contains("argon2id"));
    }

    #[test]
    fn principal_collects_permissions_of_held_roles_only() {
        let u = user();
        let s = Session {
            sid: random_id().unwrap(),
            user_id: u.id.clone(),
            created_at: 0,
            last_seen: 0,
            absolute_expiry: 100,
            idle_expiry: 50,
            ip: None,
            user_agent: None,
            refresh_generation: 0,
        };
        let roles = vec![
            Role {
                name: "admin".into(),
                permissions: vec!["redauth:admin".into()],
            },
            Role {
                name: "other".into(),
                permissions: vec!["other:perm".into()],
            },
        ];
        let p = Principal::from_parts(&s, &u, &roles);
        assert!(p.has_permission(ADMIN_PERMISSION));
        assert!(!p.has_permission("other:perm"));
        assert_eq!(p.session_expires_at, 50);
        assert_eq!(p.roles(), ["admin"]);
        // Serialized flat, as before roles and permissions moved into `Access`.
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "user_id": u.id,
                "username": "Alice",
                "roles": ["admin"],
                "permissions": ["redauth:admin"],
                "session_id": s.sid,
                "session_expires_at": 50,
            })
        );
    }

    #[test]
    fn ids_of_redauth_length_are_held_inline() {
        let id: CompactString = random_id().unwrap().into();
        assert_eq!(id.len(), 22);
        assert!(!id.is_heap_allocated());
    }
}
