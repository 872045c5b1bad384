//! Every Redis key redauth uses, in one place. All keys start with the configured
//! prefix (default `redauth:`). Keys of one user share the hash tag `{u:<user id>}`, so
//! the per-user scripts touch one hash slot.
//!
//! | key | type | TTL | written by | deleted by |
//! |---|---|---|---|---|
//! | `P{u:<uid>}:user` | string, JSON [`User`](redauth_core::User) | none | create/update user | delete user |
//! | `Pusername:<normalized>` | string, the user id | none | create user (`SET NX`: the uniqueness guard) | delete user |
//! | `Pusername-look:<skeleton>` | string, the user id | none | create user (the look-alike guard: [`username_skeleton`](redauth_core::model::username_skeleton)); a user's next write, if it predates skeletons | delete user |
//! | `Pemail-look:<skeleton>` | string, the user id | none | create user, an email change (moved: the new one taken, the old one released, in one script); a user's next write, if it predates email claims | delete user, an email change |
//! | `Pusers` | set of user ids | none | create user | delete user |
//! | `Proles` | hash, role name → JSON [`Role`](redauth_core::Role) | none | put role | (roles are never deleted) |
//! | `P{u:<uid>}:s:<sid>` | hash, one login session (fields below) | `EXPIREAT` idle expiry, moved by each refresh | login, refresh | logout, revoke, theft detection, expiry, delete user |
//! | `P{u:<uid>}:sessions` | sorted set, sid scored by absolute expiry; at most the per-user cap of live ids | `EXPIREAT` latest absolute expiry | login | login (dead ids, and the oldest live ones past the cap), list (dead ids on the page), revoke, a user write ending sessions, delete user; no script reads more of it than the cap plus one batch |
//! | `Pinvalidations` | pub/sub channel: `sid:<sid>`, `user:<uid>`, `all` | — | every revoking write | — |
//! | `Prl:<kind>:<id>` | string, GCRA arrival time in ms | `PX` until drained | rate limiter | its TTL |
//!
//! Session hash fields: `uid created last_seen abs_exp idle_exp ip ua gen` (metadata),
//! `cur` (HMAC of the current refresh token), `prev` (HMAC of the token it replaced),
//! `rot_at` (time of the last rotation, which anchors the reuse grace window), `bind`
//! (the client binding of that rotation: only it gets the successor of `prev` again),
//! `old` (the first 16 characters of the HMACs of up to 32 tokens before `prev`, newest
//! first, space-separated: presenting one of them is theft, presenting anything else
//! is just invalid), `ck` (the cookie sessions linked to this login session, one per
//! line: `n|c` TAB cookie-session key TAB user-index key TAB id; every script that ends
//! the login session deletes them, so no process needs the cookie-session settings to
//! end them; written by the cookie-session create and rename scripts), `ver` (the
//! user's security version the session was created under: a logout-all that ends a
//! pre-cap index in several calls ends only sessions below the version it wrote;
//! sessions from before this field have none and count as older).
//!
//! The user JSON carries `security_version`: every user write is a compare-and-set on
//! it and increments it, and `CREATE_SESSION` refuses a version other than the one the
//! login checked the password under.

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn user(&self, uid: &str) -> String {
        format!("{}{{u:{uid}}}:user", self.prefix)
    }

    /// `user(uid)` is `user_key_prefix() + uid + USER_KEY_SUFFIX`; scripts that read
    /// users by id build the key from these parts.
    pub fn user_key_prefix(&self) -> String {
        format!("{}{{u:", self.prefix)
    }

    pub const USER_KEY_SUFFIX: &'static str = "}:user";

    pub fn username(&self, normalized: &str) -> String {
        format!("{}username:{normalized}", self.prefix)
    }

    /// `Pusername-look:<skeleton>`: string, the user id; the guard against names that
    /// look alike ([`redauth_core::model::username_skeleton`]). No TTL; written by
    /// create user (and claimed by a user's next write if it predates it), deleted by
    /// delete user.
    pub fn username_skeleton(&self, skeleton: &str) -> String {
        format!("{}username-look:{skeleton}", self.prefix)
    }

    /// The three keys a user's name claims: its NFKC form, its look-alike skeleton and
    /// its pre-NFKC lower-cased form (read by create, released by delete).
    pub fn username_claims(&self, username: &str) -> [String; 3] {
        use redauth_core::model::{
            legacy_normalized_username, normalize_username, username_skeleton,
        };
        [
            self.username(&normalize_username(username)),
            self.username_skeleton(&username_skeleton(username)),
            self.username(&legacy_normalized_username(username)),
        ]
    }

    /// `Pemail-look:<skeleton>`: string, the user id; the uniqueness and look-alike
    /// guard of emails ([`redauth_core::model::email_skeleton`], which is equal for
    /// equal [`normalize_email`](redauth_core::model::normalize_email) forms, so one key
    /// guards both). No TTL; written by create user and by an email change (and claimed
    /// by a user's next write if it predates it), deleted by delete user and by an email
    /// change (the old address's).
    pub fn email_skeleton(&self, skeleton: &str) -> String {
        format!("{}email-look:{skeleton}", self.prefix)
    }

    /// The key an email claims ([`Self::email_skeleton`] of its skeleton).
    pub fn email_claim(&self, email: &str) -> String {
        self.email_skeleton(&redauth_core::model::email_skeleton(email))
    }

    pub fn users(&self) -> String {
        format!("{}users", self.prefix)
    }

    pub fn roles(&self) -> String {
        format!("{}roles", self.prefix)
    }

    pub fn session(&self, uid: &str, sid: &str) -> String {
        format!("{}{sid}", self.session_prefix(uid))
    }

    /// `session(uid, sid)` is `user_key_prefix() + uid + SESSION_KEY_INFIX + sid`, for
    /// scripts that read a login session named in a cookie session's data.
    pub const SESSION_KEY_INFIX: &'static str = "}:s:";

    pub fn session_prefix(&self, uid: &str) -> String {
        format!("{}{{u:{uid}}}:s:", self.prefix)
    }

    pub fn user_sessions(&self, uid: &str) -> String {
        format!("{}{{u:{uid}}}:sessions", self.prefix)
    }

    pub fn rate_limit(&self, key: &str) -> String {
        format!("{}rl:{key}", self.prefix)
    }

    pub fn invalidation_channel(&self) -> String {
        format!("{}invalidations", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn scripts_build_the_same_keys_from_the_parts() {
        let k = Keys::new("p:");
        assert_eq!(
            format!("{}u1{}", k.user_key_prefix(), Keys::USER_KEY_SUFFIX),
            k.user("u1")
        );
        assert_eq!(
            format!("{}u1{}s1", k.user_key_prefix(), Keys::SESSION_KEY_INFIX),
            k.session("u1", "s1")
        );
    }
}
