/**
 * `@redauth/sveltekit`: redauth in a SvelteKit app.
 *
 * ```ts
 * // src/hooks.server.ts
 * import { redauth } from '@redauth/sveltekit';
 * export const handle = redauth(); // REDAUTH_URL, REDAUTH_APP_SECRET from the environment
 * ```
 *
 * The hook learns from redauth (`GET /api/auth/config`) whether it runs cookie sessions
 * (native or compat) or tokens, and the session cookie's name and attributes, so the
 * app and redauth cannot disagree about them.
 */
import { error, fail, redirect } from '@sveltejs/kit';
import type { ActionFailure, Cookies, RequestEvent } from '@sveltejs/kit';

/** SvelteKit's `Handle` (exported from `@sveltejs/kit` in 2.x, `@sveltejs/kit/hooks` in 3.x). */
export type Handle = (input: {
  event: RequestEvent;
  resolve: (event: RequestEvent, opts?: any) => Response | Promise<Response>;
}) => Promise<Response>;
import { createHash } from 'node:crypto';

import {
  RedauthClient,
  RedauthMisconfiguredError,
  RedauthUnavailableError,
  type CallResult,
} from './client.js';
import { applySetCookie, cookieHeader, parseSetCookie } from './cookies.js';
import type {
  RedauthFailure,
  RedauthServerConfig,
  RedauthSessionInfo,
  RedauthUser,
} from './types.js';

export type {
  RedauthFailure,
  RedauthServerConfig,
  RedauthSession,
  RedauthSessionInfo,
  RedauthUser,
} from './types.js';
export { RedauthMisconfiguredError, RedauthUnavailableError } from './client.js';
export { parseSetCookie } from './cookies.js';

export interface RedauthOptions {
  /** redauth's base URL, e.g. `http://127.0.0.1:8080`. Default: `process.env.REDAUTH_URL`. */
  url?: string | undefined;
  /** The secret shared with redauth (`REDAUTH_APP_SECRET`, at least 32 bytes). With it
   * redauth records each browser's own address and user agent and counts rate limits
   * per browser; without it every user looks like this server. Default:
   * `process.env.REDAUTH_APP_SECRET`. */
  appSecret?: string | undefined;
  /** `auto` (default): cookie sessions when redauth has them on, else tokens. */
  mode?: 'auto' | 'session' | 'tokens';
  /** Where `requireUser` sends anonymous visitors (default `/login`). */
  loginPath?: string;
  /** Per call to redauth (default 5000 ms). */
  timeoutMs?: number;
  /** How long redauth's config is reused before it is read again (default 60 s). */
  configTtlMs?: number;
  /** Names of the cookies that hold the tokens in token mode. */
  tokenCookies?: { access?: string; refresh?: string };
  /** For tests. */
  fetch?: typeof fetch;
}

/** What `handle` leaves for the helpers and guards of one request. */
interface RequestState {
  auth: Redauth;
  /** redauth could not be asked about this request's credentials. */
  unavailable: boolean;
  /** Token mode: the access token valid for this request (after a refresh, the new one). */
  access: string | null;
}

const states = new WeakMap<object, RequestState>();

function stateOf(event: { locals: object }): RequestState {
  const s = states.get(event.locals);
  if (!s) {
    throw new Error(
      "@redauth/sveltekit: this request did not go through redauth's handle. " +
        "Export it from src/hooks.server.ts: export const handle = redauth();",
    );
  }
  return s;
}

/** The SvelteKit `Handle` returned by `redauth()`, with the client it uses. */
export type RedauthHandle = Handle & { readonly redauth: Redauth };

/** Creates the hook. Export its result as `handle` from `src/hooks.server.ts` (or put
 * it in `sequence(...)`). */
export function redauth(options: RedauthOptions = {}): RedauthHandle {
  const auth = new Redauth(options);
  const handle: Handle = async ({ event, resolve }) => {
    await auth.authenticate(event);
    return resolve(event);
  };
  return Object.assign(handle, { redauth: auth });
}

interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token?: string;
  refresh_expires_in?: number;
}

/** How long a finished refresh is handed to requests that still carry the old refresh
 * token (they left the browser before the new cookies arrived). */
const REFRESH_SHARE_MS = 10_000;

export class Redauth {
  readonly client: RedauthClient;
  readonly mode: 'auto' | 'session' | 'tokens';
  readonly loginPath: string;
  readonly accessCookie: string;
  readonly refreshCookie: string;
  private refreshes = new Map<string, { result: Promise<TokenResponse | null>; until: number }>();
  private warnedInsecure = false;
  private warnedBoth = false;

  constructor(options: RedauthOptions = {}) {
    const url = options.url ?? process.env.REDAUTH_URL;
    if (!url) {
      throw new Error(
        '@redauth/sveltekit: no redauth URL. Set REDAUTH_URL (e.g. http://127.0.0.1:8080) or pass redauth({ url })',
      );
    }
    this.client = new RedauthClient({
      url,
      appSecret: (options.appSecret ?? process.env.REDAUTH_APP_SECRET) || undefined,
      timeoutMs: options.timeoutMs ?? 5000,
      configTtlMs: options.configTtlMs ?? 60_000,
      fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    });
    this.mode = options.mode ?? 'auto';
    this.loginPath = options.loginPath ?? '/login';
    this.accessCookie = options.tokenCookies?.access ?? 'redauth_access';
    this.refreshCookie = options.tokenCookies?.refresh ?? 'redauth_refresh';
  }

  /** Which kind of session this app keeps, per redauth's config. */
  sessionMode(config: RedauthServerConfig): 'session' | 'tokens' {
    if (this.mode !== 'auto') {
      if (this.mode === 'session' && !config.session_cookie) {
        throw new RedauthMisconfiguredError(
          "mode 'session' but redauth has cookie sessions off (REDAUTH_SESSION_COOKIE_MODE)",
        );
      }
      return this.mode;
    }
    if (config.session_cookie && config.login_issues === 'both' && !this.warnedBoth) {
      this.warnedBoth = true;
      console.warn(
        '[@redauth/sveltekit] redauth runs cookie sessions with REDAUTH_LOGIN_ISSUES=both: the app uses the session cookie, ' +
          'so nobody refreshes the tokens, and the login session ends after REDAUTH_IDLE_TTL_SECS however active the user is. ' +
          'Set REDAUTH_LOGIN_ISSUES=session.',
      );
    }
    return config.session_cookie && config.login_issues !== 'tokens' ? 'session' : 'tokens';
  }

  /** Fills `event.locals.user` / `locals.session`. Never throws for redauth being
   * down: the request goes on anonymous, and guards answer 503 where it matters. */
  async authenticate(event: RequestEvent): Promise<void> {
    const state: RequestState = { auth: this, unavailable: false, access: null };
    states.set(event.locals, state);
    event.locals.user = null;
    event.locals.session = null;
    try {
      const config = await this.client.serverConfig();
      if (this.sessionMode(config) === 'session') {
        await this.loadCookieSession(event, config);
      } else {
        await this.loadTokens(event, config, state);
      }
    } catch (e) {
      if (e instanceof RedauthUnavailableError) {
        state.unavailable = true;
        console.error(`[@redauth/sveltekit] ${e.message}`);
      } else if (e instanceof RedauthMisconfiguredError) {
        state.unavailable = true;
        console.error(`[@redauth/sveltekit] misconfigured: ${e.message}`);
      } else {
        throw e;
      }
    }
  }

  private passOnCookies(event: RequestEvent, r: CallResult, only: (name: string) => boolean) {
    for (const header of r.setCookies) {
      const c = parseSetCookie(header);
      if (!c || !only(c.name)) continue;
      this.checkSecureOverHttp(event, c.secure);
      applySetCookie(event.cookies, c);
    }
  }

  /** A `Secure` cookie set over plain http is dropped by browsers (except on
   * localhost): every login would bounce back to the login page without an error. */
  private checkSecureOverHttp(event: RequestEvent, secure: boolean) {
    const host = event.url.hostname;
    const local = host === 'localhost' || host === '127.0.0.1' || host === '[::1]' || host.endsWith('.localhost');
    if (secure && event.url.protocol === 'http:' && !local && !this.warnedInsecure) {
      this.warnedInsecure = true;
      console.error(
        `[@redauth/sveltekit] this app is served over plain http at ${event.url.origin}, but redauth's cookies are Secure, ` +
          'so browsers will drop them and nobody can stay logged in. Serve the app over https, use http://localhost, ' +
          'or (development only) start redauth with REDAUTH_COOKIE_SECURE=false.',
      );
    }
  }

  private sessionCookieName(config: RedauthServerConfig): string {
    if (!config.session_cookie) throw new RedauthMisconfiguredError('redauth has cookie sessions off');
    return config.session_cookie.name;
  }

  private async loadCookieSession(event: RequestEvent, config: RedauthServerConfig) {
    const name = this.sessionCookieName(config);
    const value = event.cookies.get(name);
    if (!value) return;
    const r = await this.client.call('/api/auth/session', { event, cookie: cookieHeader(name, value) });
    // Renewal, a new id after a privilege change, or the cookie cleared.
    this.passOnCookies(event, r, (n) => n === name);
    if (r.status === 200 && r.body) {
      event.locals.user = r.body.user ? toUser(r.body.user) : null;
      event.locals.session = {
        mode: 'session',
        id: r.body.session?.id ?? null,
        expiresAt: r.body.session?.expires_at ?? null,
        data: r.body.data ?? {},
      };
    } else if (r.status === 401) {
      event.cookies.delete(name, { path: config.session_cookie?.path ?? '/' });
    }
  }

  private tokenCookieOptions(config: RedauthServerConfig) {
    // Lax, both: a link from another site to the app arrives logged in. Both cookies go
    // only to the app's server, which alone talks to redauth.
    return { path: '/', httpOnly: true, secure: config.cookie_secure, sameSite: 'lax' as const };
  }

  /** @internal */
  storeTokens(event: RequestEvent, config: RedauthServerConfig, t: TokenResponse) {
    const base = this.tokenCookieOptions(config);
    this.checkSecureOverHttp(event, base.secure);
    event.cookies.set(this.accessCookie, t.access_token, { ...base, maxAge: t.expires_in });
    if (t.refresh_token) {
      event.cookies.set(this.refreshCookie, t.refresh_token, {
        ...base,
        maxAge: t.refresh_expires_in ?? 7 * 24 * 3600,
      });
    }
  }

  private clearTokens(event: RequestEvent) {
    event.cookies.delete(this.accessCookie, { path: '/' });
    event.cookies.delete(this.refreshCookie, { path: '/' });
  }

  private async loadTokens(event: RequestEvent, config: RedauthServerConfig, state: RequestState) {
    let access = event.cookies.get(this.accessCookie) ?? null;
    const refresh = event.cookies.get(this.refreshCookie) ?? null;
    if (access && expiresWithin(access, 2)) access = null;
    if (access) {
      const me = await this.client.call('/api/auth/me', { event, bearer: access });
      if (me.status === 200) {
        this.setTokenLocals(event, state, access, me.body);
        return;
      }
      if (me.status !== 401) return;
    }
    if (!refresh) {
      if (access) event.cookies.delete(this.accessCookie, { path: '/' });
      return;
    }
    const tokens = await this.refreshOnce(event, refresh);
    if (!tokens) {
      // The refresh token is dead: drop both cookies, so no request tries it again.
      this.clearTokens(event);
      return;
    }
    this.storeTokens(event, config, tokens);
    const me = await this.client.call('/api/auth/me', { event, bearer: tokens.access_token });
    if (me.status === 200) this.setTokenLocals(event, state, tokens.access_token, me.body);
  }

  private setTokenLocals(event: RequestEvent, state: RequestState, access: string, me: any) {
    state.access = access;
    event.locals.user = toUser(me);
    event.locals.session = {
      mode: 'tokens',
      id: me.session_id ?? null,
      expiresAt: me.session_expires_at ?? null,
      data: {},
    };
  }

  /** One refresh per refresh token at a time in this process: concurrent requests of
   * one user (two tabs) share it, and requests that still carry the old token shortly
   * after get the same new tokens, instead of presenting a rotated token (which redauth
   * would treat as theft past its reuse window). */
  private refreshOnce(event: RequestEvent, refreshToken: string): Promise<TokenResponse | null> {
    const key = createHash('sha256').update(refreshToken).digest('base64url');
    const now = Date.now();
    for (const [k, v] of this.refreshes) if (v.until < now) this.refreshes.delete(k);
    const known = this.refreshes.get(key);
    if (known) return known.result;
    const result = (async () => {
      const r = await this.client.call('/api/auth/refresh', {
        method: 'POST',
        event,
        body: { refresh_token: refreshToken },
      });
      if (r.status === 200 && r.body?.access_token) return r.body as TokenResponse;
      return null;
    })();
    const entry = { result, until: now + REFRESH_SHARE_MS };
    this.refreshes.set(key, entry);
    // A failure (redauth down) is not shared: the next request tries again.
    result.catch(() => this.refreshes.delete(key));
    return result;
  }

  /** The identity of the user of `event` for redauth's per-user endpoints. */
  identity(event: RequestEvent, config: RedauthServerConfig): { bearer?: string; cookie?: string } {
    const state = stateOf(event);
    if (this.sessionMode(config) === 'tokens') {
      return state.access ? { bearer: state.access } : {};
    }
    const name = this.sessionCookieName(config);
    const value = event.cookies.get(name);
    return value ? { cookie: cookieHeader(name, value) } : {};
  }
}

function toUser(u: any): RedauthUser {
  return {
    id: String(u.id ?? u.user_id),
    username: String(u.username),
    roles: Array.isArray(u.roles) ? u.roles : [],
    permissions: Array.isArray(u.permissions) ? u.permissions : [],
  };
}

/** Whether a JWT's `exp` is less than `seconds` away (read, not verified: redauth
 * verifies; this only saves a round trip for a token that is surely expired). */
function expiresWithin(jwt: string, seconds: number): boolean {
  const payload = jwt.split('.')[1];
  if (!payload) return true;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return typeof claims.exp !== 'number' || claims.exp - seconds <= Date.now() / 1000;
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------------
// Helpers for form actions, load functions and +server.ts
// ---------------------------------------------------------------------------------

const UNAVAILABLE_MESSAGE = 'The sign-in service is unavailable right now. Please try again in a moment.';

function unavailable(event: RequestEvent): never {
  stateOf(event).unavailable = true;
  error(503, UNAVAILABLE_MESSAGE);
}

async function configFor(event: RequestEvent): Promise<{ auth: Redauth; config: RedauthServerConfig }> {
  const { auth } = stateOf(event);
  try {
    return { auth, config: await auth.client.serverConfig() };
  } catch (e) {
    if (e instanceof RedauthUnavailableError || e instanceof RedauthMisconfiguredError) unavailable(event);
    throw e;
  }
}

export interface LoginOptions {
  /** Default: the `username` field of the request's form data. */
  username?: string;
  /** Default: the `password` field of the request's form data. */
  password?: string;
  /** Initial data of the cookie session (cookie-session mode). */
  data?: Record<string, unknown>;
  /** Where to go once logged in (303) when the URL has no `redirectTo` query parameter
   * naming a path on this site (`requireUser` sets it to the page the user wanted).
   * Neither: no redirect, the user is returned. */
  redirectTo?: string;
}

/** Logs the user in from a form action or `+server.ts`. On success it sets the cookies
 * through `event.cookies` and redirects (or returns the user); on failure it returns
 * `fail(status, { error, message, username })` for the form to show. */
export async function login(
  event: RequestEvent,
  options: LoginOptions = {},
): Promise<{ user: RedauthUser } | ActionFailure<RedauthFailure>> {
  let { username, password } = options;
  if (username === undefined || password === undefined) {
    const form = await event.request.formData();
    username ??= String(form.get('username') ?? '');
    password ??= String(form.get('password') ?? '');
  }
  const { auth, config } = await configFor(event);
  const mode = auth.sessionMode(config);
  const body: Record<string, unknown> = { username, password, refresh_token_delivery: 'body' };
  if (options.data && mode === 'session') body.session_data = options.data;
  let r: CallResult;
  try {
    r = await auth.client.call('/api/auth/login', {
      method: 'POST',
      event,
      body,
      // A session cookie already here is ended by redauth (a new id at every login).
      ...(mode === 'session' ? auth.identity(event, config) : {}),
    });
  } catch (e) {
    if (e instanceof RedauthUnavailableError || e instanceof RedauthMisconfiguredError) {
      return fail(503, { error: 'unavailable', message: UNAVAILABLE_MESSAGE, username });
    }
    throw e;
  }
  if (r.status !== 200) {
    const code: string = r.body?.error ?? 'error';
    const message =
      code === 'invalid_credentials'
        ? 'Wrong username or password.'
        : code === 'rate_limited'
          ? 'Too many attempts. Please wait a moment and try again.'
          : (r.body?.message ?? 'Login failed.');
    return fail(r.status === 401 ? 400 : r.status, { error: code, message, username });
  }
  const state = stateOf(event);
  if (mode === 'session') {
    const name = config.session_cookie?.name;
    for (const header of r.setCookies) {
      const c = parseSetCookie(header);
      if (c && c.name === name) applySetCookie(event.cookies, c);
    }
  } else {
    auth.storeTokens(event, config, r.body as TokenResponse);
    state.access = r.body.access_token;
  }
  const user: RedauthUser = { ...toUser(r.body.user), permissions: [] };
  event.locals.user = user;
  const target = safeRedirect(event.url.searchParams.get('redirectTo')) ?? options.redirectTo;
  if (target) redirect(303, target);
  return { user };
}

/** A path on this site, or null: `redirectTo` comes from the URL, so it must not send
 * the user elsewhere. */
function safeRedirect(target: string | null): string | null {
  if (!target || !target.startsWith('/') || target.startsWith('//') || target.startsWith('/\\')) return null;
  return target;
}

export interface LogoutOptions {
  /** Where to go afterwards (303); default: no redirect. */
  redirectTo?: string;
}

/** Ends this session at redauth and clears its cookies. */
export async function logout(event: RequestEvent, options: LogoutOptions = {}): Promise<void> {
  const { auth } = stateOf(event);
  let config: RedauthServerConfig | null = null;
  try {
    config = await auth.client.serverConfig();
  } catch {
    config = null;
  }
  if (config) {
    const mode = auth.sessionMode(config);
    const id = auth.identity(event, config);
    const refresh = event.cookies.get(auth.refreshCookie);
    try {
      await auth.client.call('/api/auth/logout', {
        method: 'POST',
        event,
        ...id,
        ...(mode === 'tokens' && refresh ? { body: { refresh_token: refresh } } : {}),
      });
    } catch (e) {
      if (!(e instanceof RedauthUnavailableError || e instanceof RedauthMisconfiguredError)) throw e;
      console.error('[@redauth/sveltekit] logout: redauth unreachable; the cookies are cleared here only');
    }
    clearLocalCookies(event.cookies, auth, config);
  } else {
    clearLocalCookies(event.cookies, auth, null);
  }
  event.locals.user = null;
  event.locals.session = null;
  if (options.redirectTo) redirect(303, options.redirectTo);
}

function clearLocalCookies(cookies: Cookies, auth: Redauth, config: RedauthServerConfig | null) {
  if (config?.session_cookie) {
    cookies.delete(config.session_cookie.name, {
      path: config.session_cookie.path,
      ...(config.session_cookie.domain ? { domain: config.session_cookie.domain } : {}),
    });
  }
  cookies.delete(auth.accessCookie, { path: '/' });
  cookies.delete(auth.refreshCookie, { path: '/' });
}

async function userCall(event: RequestEvent, path: string, method: string): Promise<CallResult> {
  if (!event.locals.user) {
    if (stateOf(event).unavailable) unavailable(event);
    error(401, 'Not logged in');
  }
  const { auth, config } = await configFor(event);
  try {
    return await auth.client.call(path, { method, event, ...auth.identity(event, config) });
  } catch (e) {
    if (e instanceof RedauthUnavailableError || e instanceof RedauthMisconfiguredError) unavailable(event);
    throw e;
  }
}

/** Ends every session of the user, on every device, and clears this browser's cookies. */
export async function logoutEverywhere(event: RequestEvent, options: LogoutOptions = {}): Promise<void> {
  const r = await userCall(event, '/api/auth/logout-all', 'POST');
  if (r.status !== 204) error(r.status, r.body?.message ?? 'Could not log out everywhere');
  const { auth, config } = await configFor(event);
  clearLocalCookies(event.cookies, auth, config);
  event.locals.user = null;
  event.locals.session = null;
  if (options.redirectTo) redirect(303, options.redirectTo);
}

/** The user's live sessions (every device), oldest first; `current` marks this one. */
export async function listSessions(event: RequestEvent): Promise<RedauthSessionInfo[]> {
  const r = await userCall(event, '/api/auth/sessions', 'GET');
  if (r.status !== 200) error(r.status, r.body?.message ?? 'Could not list sessions');
  return (r.body.sessions as any[]).map((s) => ({
    id: s.id,
    current: Boolean(s.current),
    createdAt: s.created_at,
    lastSeen: s.last_seen,
    expiresAt: s.expires_at,
    absoluteExpiry: s.absolute_expiry,
    ip: s.ip ?? null,
    userAgent: s.user_agent ?? null,
  }));
}

/** Ends one of the user's sessions (by the `id` from `listSessions`). Ending the
 * current one also clears this browser's cookies. */
export async function revokeSession(event: RequestEvent, id: string): Promise<void> {
  const current = event.locals.session?.id === id;
  const r = await userCall(event, `/api/auth/sessions/${encodeURIComponent(id)}`, 'DELETE');
  if (r.status !== 204 && r.status !== 404) error(r.status, r.body?.message ?? 'Could not end the session');
  if (current) {
    const { auth, config } = await configFor(event);
    clearLocalCookies(event.cookies, auth, config);
    event.locals.user = null;
    event.locals.session = null;
  }
}

// ---------------------------------------------------------------------------------
// Guards for load functions
// ---------------------------------------------------------------------------------

/** The signed-in user, or: 503 when redauth could not be asked, else a redirect to the
 * login page (with `redirectTo` set to this page). */
export function requireUser(event: { locals: App.Locals; url: URL }): RedauthUser {
  const state = stateOf(event);
  if (event.locals.user) return event.locals.user;
  if (state.unavailable) error(503, UNAVAILABLE_MESSAGE);
  const to = `${state.auth.loginPath}?redirectTo=${encodeURIComponent(event.url.pathname + event.url.search)}`;
  redirect(303, to);
}

/** Like `requireUser`, and 403 unless the user has `permission`. */
export function requirePermission(event: { locals: App.Locals; url: URL }, permission: string): RedauthUser {
  const user = requireUser(event);
  if (!user.permissions.includes(permission)) error(403, `You need the permission ${permission}.`);
  return user;
}
