//! A [`Store`] decorator that stops one chosen call before it reaches the real store,
//! until the test lets it go: deterministic interleavings of service operations
//! (a login paused after its password check, a password change paused between its read
//! and its write) without sleeps and without test hooks in the service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redauth_core::clock::UnixTime;
use redauth_core::model::SessionId;
use redauth_core::store::{
    EndSessions, InvalidationSink, LinkedCookieSession, PageRequest, PrincipalRecord,
    RotateOutcome, RotateRequest, SessionPage, UserUpdate,
};
use redauth_core::token::refresh::TokenHash;
use redauth_core::{Role, Session, Store, StoreError, User};
use tokio::sync::oneshot;

const REPLY_OF_LOAD_PRINCIPAL: &str = "load_principal:reply";

pub struct PausingStore {
    inner: Arc<dyn Store>,
    armed: Mutex<HashMap<&'static str, Armed>>,
}

struct Armed {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The test's end of one pause.
pub struct PauseHandle {
    op: &'static str,
    reached: Option<oneshot::Receiver<()>>,
    release: oneshot::Sender<()>,
}

impl PauseHandle {
    /// Resolves once the paused call has arrived (and is now held).
    pub async fn reached(&mut self) {
        if let Some(rx) = self.reached.take() {
            let arrived = tokio::time::timeout(std::time::Duration::from_secs(30), rx).await;
            assert!(
                matches!(arrived, Ok(Ok(()))),
                "the paused call `{}` never arrived",
                self.op
            );
        }
    }

    /// Lets the held call through to the real store.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl PausingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            armed: Mutex::new(HashMap::new()),
        })
    }

    /// Holds the next call of the store method named `op` (e.g. `"create_session"`)
    /// before it reaches the store. Later calls pass.
    pub fn pause_next(&self, op: &'static str) -> PauseHandle {
        self.arm(op)
    }

    /// Lets the next call of `op` run against the store, then holds its reply: a slow
    /// answer to a read that has already happened. Only `load_principal` supports it.
    pub fn pause_next_reply(&self, op: &'static str) -> PauseHandle {
        assert_eq!(
            op, "load_principal",
            "pause_next_reply supports load_principal"
        );
        self.arm(REPLY_OF_LOAD_PRINCIPAL)
    }

    fn arm(&self, op: &'static str) -> PauseHandle {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.armed.lock().unwrap_or_else(|e| e.into_inner()).insert(
            op,
            Armed {
                reached: reached_tx,
                release: release_rx,
            },
        );
        PauseHandle {
            op,
            reached: Some(reached_rx),
            release: release_tx,
        }
    }

    async fn gate(&self, op: &'static str) {
        let armed = self
            .armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(op);
        if let Some(armed) = armed {
            let _ = armed.reached.send(());
            let _ = armed.release.await;
        }
    }
}

#[async_trait]
impl Store for PausingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.gate("ping").await;
        self.inner.ping().await
    }
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.gate("create_user").await;
        self.inner.create_user(user).await
    }
    async fn update_user(
        &self,
        user: &User,
        end: EndSessions<'_>,
    ) -> Result<UserUpdate, StoreError> {
        self.gate("update_user").await;
        self.inner.update_user(user, end).await
    }
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.gate("get_user").await;
        self.inner.get_user(id).await
    }
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.gate("find_user_by_username").await;
        self.inner.find_user_by_username(username).await
    }
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.gate("list_users").await;
        self.inner.list_users().await
    }
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        self.gate("delete_user").await;
        self.inner.delete_user(id).await
    }
    async fn put_role(&self, role: &Role) -> Result<(), StoreError> {
        self.gate("put_role").await;
        self.inner.put_role(role).await
    }
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        self.gate("list_roles").await;
        self.inner.list_roles().await
    }
    async fn create_session(
        &self,
        session: &Session,
        refresh: &TokenHash,
        user_version: u64,
        max_sessions: u32,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.gate("create_session").await;
        self.inner
            .create_session(session, refresh, user_version, max_sessions, now)
            .await
    }
    async fn load_principal(
        &self,
        user_id: &str,
        session_id: &str,
        now: UnixTime,
    ) -> Result<Option<PrincipalRecord>, StoreError> {
        self.gate("load_principal").await;
        let reply = self.inner.load_principal(user_id, session_id, now).await;
        self.gate(REPLY_OF_LOAD_PRINCIPAL).await;
        reply
    }
    async fn rotate_refresh(&self, req: &RotateRequest) -> Result<RotateOutcome, StoreError> {
        self.gate("rotate_refresh").await;
        self.inner.rotate_refresh(req).await
    }
    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
        page: &PageRequest,
    ) -> Result<SessionPage, StoreError> {
        self.gate("list_sessions").await;
        self.inner.list_sessions(user_id, now, page).await
    }
    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        proof: Option<&TokenHash>,
    ) -> Result<bool, StoreError> {
        self.gate("revoke_session").await;
        self.inner.revoke_session(user_id, session_id, proof).await
    }
    async fn linked_cookie_sessions(
        &self,
        user_id: &str,
    ) -> Result<Vec<LinkedCookieSession>, StoreError> {
        self.gate("linked_cookie_sessions").await;
        self.inner.linked_cookie_sessions(user_id).await
    }
    async fn replace_linked_cookie_data(
        &self,
        cookie: &LinkedCookieSession,
        data: &str,
    ) -> Result<bool, StoreError> {
        self.gate("replace_linked_cookie_data").await;
        self.inner.replace_linked_cookie_data(cookie, data).await
    }
    fn subscribe_invalidations(&self, sink: InvalidationSink) {
        self.inner.subscribe_invalidations(sink);
    }
    fn cookie_session_store(
        &self,
        layout: &redauth_core::cookie_store::CookieSessionLayout,
    ) -> Result<Arc<dyn redauth_core::cookie_store::CookieSessionStore>, StoreError> {
        self.inner.cookie_session_store(layout)
    }
    fn rate_limiter(&self) -> Arc<dyn redauth_core::rate_limit::RateLimiter> {
        self.inner.rate_limiter()
    }
}
