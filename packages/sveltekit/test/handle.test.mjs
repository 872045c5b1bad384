import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHttpError, isRedirect, isActionFailure } from '@sveltejs/kit';

import {
  redauth,
  login,
  logout,
  logoutEverywhere,
  listSessions,
  revokeSession,
  requireUser,
  requirePermission,
  parseSetCookie,
} from '../dist/index.js';
import { ALICE, NATIVE_CONFIG, TOKEN_CONFIG, fakeEvent, fakeRedauth, jwt } from './fakes.mjs';

const SECRET = 'app-secret-0123456789-0123456789-abcdef';
const resolve = async () => new Response('page');
const config = (c) => () => ({ body: c });
const now = () => Math.floor(Date.now() / 1000);

function setup(routes, extra = {}) {
  const fake = fakeRedauth(routes);
  const handle = redauth({ url: 'http://redauth.test', appSecret: SECRET, fetch: fake.fetch, ...extra });
  return { fake, handle };
}

async function run(handle, event) {
  await handle({ event, resolve });
  return event;
}

function thrown(fn) {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail('expected a throw');
}

test('cookie sessions: the cookie name comes from redauth, locals are filled, renewals reach the browser', async () => {
  const { fake, handle } = setup({
    'GET /api/auth/config': config(NATIVE_CONFIG),
    'GET /api/auth/session': () => ({
      body: { user: ALICE, session: { id: 'ls1', expires_at: 99 }, data: { theme: 'dark' } },
      setCookies: ['__Host-redauth_session=v1.new.mac; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Lax'],
    }),
  });
  const event = await run(handle, fakeEvent({ cookies: { '__Host-redauth_session': 'v1.old.mac' } }));
  assert.deepEqual(event.locals.user, ALICE);
  assert.deepEqual(event.locals.session, { mode: 'session', id: 'ls1', expiresAt: 99, data: { theme: 'dark' } });
  const call = fake.calls.find((c) => c.path === '/api/auth/session');
  assert.equal(call.headers.get('cookie'), '__Host-redauth_session=v1.old.mac');
  // Forwarded with the secret: redauth trusts the browser's address and agent.
  assert.equal(call.headers.get('x-redauth-app-secret'), SECRET);
  assert.equal(call.headers.get('x-redauth-client-ip'), '203.0.113.9');
  assert.equal(call.headers.get('x-redauth-client-user-agent'), 'TestBrowser/1.0');
  assert.equal(call.headers.get('origin'), null, 'no Origin: a server call, not a browser');
  const set = event.cookies.sets.at(-1);
  assert.equal(set.value, 'v1.new.mac');
  assert.deepEqual(set.opts, { path: '/', httpOnly: true, secure: true, sameSite: 'lax', maxAge: 86400 });
});

test('an insecure dev redauth names its cookie differently: the hook follows it', async () => {
  const insecure = { ...NATIVE_CONFIG, cookie_secure: false, session_cookie: { ...NATIVE_CONFIG.session_cookie, name: 'redauth_session', secure: false } };
  const { fake, handle } = setup({
    'GET /api/auth/config': config(insecure),
    'GET /api/auth/session': () => ({ body: { user: ALICE, session: { id: 'ls1', expires_at: 1 }, data: {} } }),
  });
  const event = await run(handle, fakeEvent({ cookies: { redauth_session: 'v1.a.b' } }));
  assert.equal(event.locals.user?.username, 'alice');
  assert.equal(fake.calls.filter((c) => c.path === '/api/auth/config').length, 1);
  await run(handle, fakeEvent({ cookies: { redauth_session: 'v1.a.b' } }));
  assert.equal(fake.calls.filter((c) => c.path === '/api/auth/config').length, 1, 'config is cached');
});

test('compat cookies are sent percent-encoded as the browser holds them', async () => {
  const compat = { ...NATIVE_CONFIG, session_cookie: { ...NATIVE_CONFIG.session_cookie, mode: 'compat', name: 'session', same_site: 'strict' } };
  const { fake, handle } = setup({
    'GET /api/auth/config': config(compat),
    'GET /api/auth/session': () => ({ body: { user: { user_id: 'u1', username: 'alice', roles: [], permissions: [] }, session: {}, data: {} } }),
  });
  // SvelteKit hands the handle the decoded value.
  const event = await run(handle, fakeEvent({ cookies: { session: 'abc.M16+/x=' } }));
  assert.equal(fake.calls.at(-1).headers.get('cookie'), 'session=abc.M16%2B%2Fx%3D');
  assert.equal(event.locals.user?.id, 'u1', 'the same id field in every mode');
});

test('an invalid session cookie is cleared and the request goes on anonymous', async () => {
  const { handle } = setup({
    'GET /api/auth/config': config(NATIVE_CONFIG),
    'GET /api/auth/session': () => ({
      status: 401,
      body: { error: 'invalid_session', message: '' },
      setCookies: ['__Host-redauth_session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax'],
    }),
  });
  const event = await run(handle, fakeEvent({ cookies: { '__Host-redauth_session': 'v1.x.y' } }));
  assert.equal(event.locals.user, null);
  assert.equal(event.cookies.jar['__Host-redauth_session'], undefined);
});

test('redauth unreachable: public pages render, guards answer 503', async () => {
  const { fake, handle } = setup({ 'GET /api/auth/config': config(NATIVE_CONFIG) });
  fake.state.down = true;
  const event = await run(handle, fakeEvent({ cookies: { '__Host-redauth_session': 'v1.x.y' } }));
  assert.equal(event.locals.user, null, 'the handle did not throw');
  const e = thrown(() => requireUser(event));
  assert.ok(isHttpError(e, 503), String(e));
  assert.match(e.body.message, /unavailable/);
});

test('anonymous: requireUser redirects to login with the page to come back to; permissions give 403', async () => {
  const { handle } = setup({
    'GET /api/auth/config': config(NATIVE_CONFIG),
    'GET /api/auth/session': () => ({ body: { user: ALICE, session: { id: 's', expires_at: 1 }, data: {} } }),
  });
  const anon = await run(handle, fakeEvent({ url: 'http://localhost:5173/account?tab=2' }));
  const r = thrown(() => requireUser(anon));
  assert.ok(isRedirect(r));
  assert.equal(r.location, '/login?redirectTo=%2Faccount%3Ftab%3D2');
  const alice = await run(handle, fakeEvent({ cookies: { '__Host-redauth_session': 'v1.x.y' } }));
  assert.equal(requirePermission(alice, 'reports:read').username, 'alice');
  assert.ok(isHttpError(thrown(() => requirePermission(alice, 'redauth:admin')), 403));
});

test('tokens: a fresh access token is checked with /me; an expired one is refreshed once for concurrent requests', async () => {
  let refreshes = 0;
  const { fake, handle } = setup({
    'GET /api/auth/config': config(TOKEN_CONFIG),
    'GET /api/auth/me': () => ({ body: { ...ALICE, session_id: 'ls1', session_expires_at: 5 } }),
    'POST /api/auth/refresh': async (call) => {
      refreshes++;
      assert.equal(call.body.refresh_token, 'rt-old');
      await new Promise((r) => setTimeout(r, 20));
      return { body: { access_token: jwt(now() + 900), expires_in: 900, refresh_token: 'rt-new', refresh_expires_in: 259200 } };
    },
  });
  const fresh = await run(handle, fakeEvent({ cookies: { redauth_access: jwt(now() + 600), redauth_refresh: 'rt-old' } }));
  assert.equal(fresh.locals.user?.username, 'alice');
  assert.equal(refreshes, 0);

  const expired = { redauth_access: jwt(now() - 1), redauth_refresh: 'rt-old' };
  const events = await Promise.all([1, 2, 3, 4, 5].map(() => run(handle, fakeEvent({ cookies: expired }))));
  assert.equal(refreshes, 1, 'five tabs, one refresh');
  for (const e of events) {
    assert.equal(e.locals.user?.username, 'alice');
    assert.equal(e.cookies.jar.redauth_refresh, 'rt-new');
    const set = e.cookies.sets.find((s) => s.name === 'redauth_refresh');
    assert.equal(set.opts.maxAge, 259200, 'the refresh cookie lives as long as the refresh token');
  }
  // A request that left the browser before the new cookies arrived gets them too.
  const late = await run(handle, fakeEvent({ cookies: expired }));
  assert.equal(late.locals.user?.username, 'alice');
  assert.equal(refreshes, 1);
  assert.ok(!fake.calls.some((c) => c.path === '/api/auth/me' && c.headers.get('authorization')?.includes(expired.redauth_access)), 'an expired token is not even tried');
});

test('tokens: a dead refresh token clears both cookies (no 401 loop)', async () => {
  const { handle } = setup({
    'GET /api/auth/config': config(TOKEN_CONFIG),
    'POST /api/auth/refresh': () => ({ status: 401, body: { error: 'invalid_refresh_token' } }),
  });
  const event = await run(handle, fakeEvent({ cookies: { redauth_access: jwt(now() - 10), redauth_refresh: 'rt-dead' } }));
  assert.equal(event.locals.user, null);
  assert.deepEqual(event.cookies.jar, {});
});

test('login in a form action: cookies through event.cookies, redirect; failures come back as fail()', async () => {
  const { fake, handle } = setup({
    'GET /api/auth/config': config(TOKEN_CONFIG),
    'POST /api/auth/login': (call) =>
      call.body.password === 'right'
        ? { body: { access_token: jwt(now() + 900), expires_in: 900, refresh_token: 'rt1', refresh_expires_in: 3600, user: { id: 'u1', username: 'alice', roles: [] } } }
        : { status: 401, body: { error: 'invalid_credentials', message: 'invalid username or password' } },
  });
  const bad = await run(handle, fakeEvent({ url: 'http://localhost:5173/login', form: { username: 'alice', password: 'wrong' } }));
  const failure = await login(bad);
  assert.ok(isActionFailure(failure));
  assert.equal(failure.status, 400);
  assert.deepEqual(failure.data, { error: 'invalid_credentials', message: 'Wrong username or password.', username: 'alice' });

  const good = await run(handle, fakeEvent({ url: 'http://localhost:5173/login?redirectTo=/account', form: { username: 'alice', password: 'right' } }));
  const r = await login(good).catch((e) => e);
  assert.ok(isRedirect(r));
  assert.equal(r.location, '/account');
  assert.equal(good.cookies.jar.redauth_refresh, 'rt1');
  const call = fake.calls.find((c) => c.path === '/api/auth/login' && c.body.password === 'right');
  assert.equal(call.body.refresh_token_delivery, 'body');
  assert.equal(call.headers.get('x-redauth-client-ip'), '203.0.113.9');

  const evil = await run(handle, fakeEvent({ url: 'http://localhost:5173/login?redirectTo=//evil.example', form: { username: 'alice', password: 'right' } }));
  assert.deepEqual(await login(evil), { user: { id: 'u1', username: 'alice', roles: [], permissions: [] } }, 'no open redirect');
  for (const target of ['//evil.example', '/\\evil.example', 'https://evil.example']) {
    const e = await run(handle, fakeEvent({ url: `http://localhost:5173/login?redirectTo=${encodeURIComponent(target)}`, form: { username: 'alice', password: 'right' } }));
    const r = await login(e, { redirectTo: '/dashboard' }).catch((x) => x);
    assert.equal(r.location, '/dashboard', `${target}: the app's default, never elsewhere`);
  }
});

test('redauth down at login: a 503 failure the form can show', async () => {
  const { fake, handle } = setup({ 'GET /api/auth/config': config(TOKEN_CONFIG) });
  const event = await run(handle, fakeEvent({ form: { username: 'a', password: 'b' } }));
  fake.state.down = true;
  const f = await login(event);
  assert.equal(f.status, 503);
});

test('session mode: list, revoke, logout everywhere and logout use the forwarded cookie', async () => {
  const { fake, handle } = setup({
    'GET /api/auth/config': config(NATIVE_CONFIG),
    'GET /api/auth/session': () => ({ body: { user: ALICE, session: { id: 'ls1', expires_at: 1 }, data: {} } }),
    'GET /api/auth/sessions': () => ({
      body: {
        sessions: [{ id: 'ls1', current: true, created_at: 1, last_seen: 2, expires_at: 3, absolute_expiry: 4, ip: '203.0.113.9', user_agent: 'TestBrowser/1.0' }],
        next_cursor: null,
      },
    }),
    'DELETE /api/auth/sessions/:id': () => ({ status: 204 }),
    'POST /api/auth/logout-all': () => ({ status: 204 }),
    'POST /api/auth/logout': () => ({ status: 204, setCookies: ['__Host-redauth_session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax'] }),
  });
  const cookies = { '__Host-redauth_session': 'v1.x.y' };
  const event = await run(handle, fakeEvent({ cookies }));
  const list = await listSessions(event);
  assert.deepEqual(list[0], { id: 'ls1', current: true, createdAt: 1, lastSeen: 2, expiresAt: 3, absoluteExpiry: 4, ip: '203.0.113.9', userAgent: 'TestBrowser/1.0' });
  assert.equal(fake.calls.at(-1).headers.get('cookie'), '__Host-redauth_session=v1.x.y');
  await revokeSession(event, 'other');
  assert.equal(fake.calls.at(-1).path, '/api/auth/sessions/other');
  assert.equal(event.cookies.jar['__Host-redauth_session'], 'v1.x.y', 'another session: ours stays');

  const everywhere = await run(handle, fakeEvent({ cookies }));
  const r = await logoutEverywhere(everywhere, { redirectTo: '/' }).catch((e) => e);
  assert.ok(isRedirect(r));
  assert.deepEqual(everywhere.cookies.jar, {});

  const out = await run(handle, fakeEvent({ cookies }));
  await logout(out);
  assert.equal(fake.calls.at(-1).path, '/api/auth/logout');
  assert.equal(fake.calls.at(-1).headers.get('x-redauth-app-secret'), SECRET, 'passes the CSRF guard by design');
  assert.deepEqual(out.cookies.jar, {});
  assert.equal(out.locals.user, null);
});

test('helpers used without the handle say what is missing', async () => {
  await assert.rejects(() => listSessions(fakeEvent()), /hooks\.server/);
});

test('Set-Cookie parsing', () => {
  assert.deepEqual(parseSetCookie('session=a%2Bb%3D; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Strict'), {
    name: 'session',
    value: 'a+b=',
    path: '/',
    maxAge: 86400,
    httpOnly: true,
    secure: true,
    sameSite: 'strict',
  });
});
