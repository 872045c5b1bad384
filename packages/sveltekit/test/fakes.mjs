// A SvelteKit request event and a scripted redauth, for unit tests without a server.

/** A cookie jar with SvelteKit's `cookies` API; `jar` holds what the browser has. */
export function fakeCookies(initial = {}) {
  const jar = { ...initial };
  const sets = [];
  return {
    jar,
    sets,
    get: (name) => jar[name],
    getAll: () => Object.entries(jar).map(([name, value]) => ({ name, value })),
    set: (name, value, opts) => {
      if (!opts || !opts.path) throw new Error('SvelteKit requires a path');
      jar[name] = value;
      sets.push({ name, value, opts });
    },
    delete: (name, opts) => {
      if (!opts || !opts.path) throw new Error('SvelteKit requires a path');
      delete jar[name];
      sets.push({ name, deleted: true, opts });
    },
    serialize: () => '',
  };
}

export function fakeEvent({ cookies = {}, url = 'http://localhost:5173/dashboard', ip = '203.0.113.9', ua = 'TestBrowser/1.0', form } = {}) {
  const body = form ? new URLSearchParams(form) : undefined;
  return {
    cookies: fakeCookies(cookies),
    locals: {},
    url: new URL(url),
    request: new Request(url, {
      method: form ? 'POST' : 'GET',
      headers: { 'user-agent': ua, ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body,
    }),
    getClientAddress: () => ip,
  };
}

export const NATIVE_CONFIG = {
  version: 1,
  login_issues: 'session',
  session_cookie: {
    mode: 'native',
    name: '__Host-redauth_session',
    path: '/',
    domain: null,
    secure: true,
    http_only: true,
    same_site: 'lax',
    max_age: 86400,
  },
  cookie_secure: true,
  refresh_cookie: { name: '__Secure-redauth_refresh', path: '/api/auth', same_site: 'strict' },
  app_secret: { configured: true, trusted: true },
};

export const TOKEN_CONFIG = { ...NATIVE_CONFIG, login_issues: 'tokens', session_cookie: null };

/** A fetch that answers from `routes` ("METHOD /path" → (request) => {status, body,
 * setCookies}) and records every request. `down: true` refuses connections. */
export function fakeRedauth(routes) {
  const calls = [];
  const state = { down: false };
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    const headers = new Headers(init.headers);
    const call = { method: init.method ?? 'GET', path: u.pathname, headers, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    if (state.down) throw new TypeError('fetch failed (ECONNREFUSED)');
    const route = routes[`${call.method} ${call.path}`] ?? (call.path.startsWith('/api/auth/sessions/') ? routes['DELETE /api/auth/sessions/:id'] : undefined);
    if (!route) return new Response(JSON.stringify({ error: 'not_found' }), { status: 404 });
    const r = await route(call);
    const h = new Headers({ 'content-type': 'application/json' });
    for (const c of r.setCookies ?? []) h.append('set-cookie', c);
    return new Response(r.body === undefined ? null : JSON.stringify(r.body), { status: r.status ?? 200, headers: h });
  };
  return { fetch, calls, state };
}

/** A JWT-shaped token (unsigned: the package never verifies, redauth does) expiring at `exp`. */
export function jwt(exp, sub = 'u1') {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256' })}.${part({ sub, exp })}.sig`;
}

export const ALICE = { id: 'u1', username: 'alice', roles: ['reader'], permissions: ['reports:read'] };
