/** The signed-in user, the same shape in every mode (cookie sessions, tokens, compat). */
export interface RedauthUser {
  /** redauth's user id (`sub` of access tokens; `user_id` in compat session data). */
  id: string;
  username: string;
  roles: string[];
  permissions: string[];
}

/** The login session behind the request. */
export interface RedauthSession {
  /** `session`: a session cookie (native or compat); `tokens`: access + refresh tokens. */
  mode: 'session' | 'tokens';
  /** redauth's login-session id (what `listSessions` marks `current`); null for an
   * anonymous cookie session. */
  id: string | null;
  /** Unix seconds; null when unknown. */
  expiresAt: number | null;
  /** Cookie-session data (always `{}` in token mode). */
  data: Record<string, unknown>;
}

/** One entry of `listSessions`. */
export interface RedauthSessionInfo {
  id: string;
  current: boolean;
  createdAt: number;
  lastSeen: number;
  expiresAt: number;
  absoluteExpiry: number;
  ip: string | null;
  userAgent: string | null;
}

/** What `GET /api/auth/config` says. */
export interface RedauthServerConfig {
  version: number;
  login_issues: 'tokens' | 'session' | 'both';
  session_cookie: null | {
    mode: 'native' | 'compat';
    name: string;
    path: string;
    domain: string | null;
    secure: boolean;
    http_only: boolean;
    same_site: 'strict' | 'lax' | 'none';
    max_age: number;
  };
  cookie_secure: boolean;
  refresh_cookie: { name: string; path: string; same_site: string };
  app_secret: { configured: boolean; trusted: boolean };
}

/** A failed call, as form actions get it back from `login` (through `fail`). */
export interface RedauthFailure {
  /** redauth's stable error code (`invalid_credentials`, `rate_limited`, …) or
   * `unavailable` when redauth could not be reached. */
  error: string;
  message: string;
  /** The username the form sent, to fill the field again. */
  username?: string;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace App {
    interface Locals {
      /** Set by `@redauth/sveltekit`'s handle: the signed-in user, or null. */
      user: import('./types.js').RedauthUser | null;
      /** Set by `@redauth/sveltekit`'s handle: the session, or null. */
      session: import('./types.js').RedauthSession | null;
    }
  }
}
