// The example app in Debian's chromium (playwright-core, no downloaded browser), against
// the real redauth binary in each mode: native cookie sessions, access + refresh tokens,
// and compat with @ethercorps/sveltekit-redis-session. Screenshots of the key pages go
// to docs/img/ when SCREENSHOTS=1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

import {
  PASSWORD,
  ROOT,
  SESSION_SECRET,
  APP_SECRET,
  chromiumPath,
  redauthEnv,
  seedUsers,
  startApp,
  startOtherSite,
  startRedauth,
  startRedis,
} from './harness.mjs';

const executablePath = chromiumPath();
if (!executablePath) {
  console.error(
    '\n*** SKIPPING the SvelteKit browser tests: no chromium (apt-get install chromium, or set CHROMIUM). ***\n',
  );
}
const SHOTS = process.env.SCREENSHOTS === '1' ? path.join(ROOT, 'docs/img') : null;
if (SHOTS) mkdirSync(SHOTS, { recursive: true });

let redis;
let browser;

before(async () => {
  if (!executablePath) return;
  redis = await startRedis();
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  await redis?.stop();
});

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `sveltekit-${name}.png`) });
}

/** Logs in through the login form; lands on the dashboard. */
async function logIn(page, origin, username = 'alice') {
  await page.goto(`${origin}/login`);
  await page.waitForSelector('html[data-hydrated]');
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(`${origin}/dashboard`), page.click('[data-testid=submit]')]);
  assert.equal(await page.textContent('[data-testid=dashboard]'), `Hello, ${username}`);
}

async function expectLoggedOut(page, origin, path = '/dashboard') {
  await page.goto(`${origin}${path}`);
  assert.match(page.url(), /\/login\?redirectTo=/, `expected the login page, got ${page.url()}`);
}

/** One redauth in `mode` with the example app in front of it. */
async function stack(prefix, redauthExtra, appExtra = {}) {
  const env = redauthEnv(redis.url, prefix, redauthExtra);
  seedUsers(env);
  const redauth = await startRedauth(env);
  const app = await startApp({ REDAUTH_URL: redauth.url, REDAUTH_APP_SECRET: APP_SECRET, ...appExtra });
  return { redauth, app, origin: app.origin };
}

describe('native cookie sessions', { skip: !executablePath }, () => {
  let s;
  before(async () => {
    s = await stack('n:', { REDAUTH_SESSION_COOKIE_MODE: 'native', REDAUTH_LOGIN_ISSUES: 'session' });
  });
  after(async () => {
    await s?.app.stop();
    await s?.redauth.stop();
  });

  test('login, reload stays logged in, wrong password shows an error, permission guard', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${s.origin}/login`);
    await page.waitForSelector('html[data-hydrated]');
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'not the password');
    await page.click('[data-testid=submit]');
    assert.equal(await page.textContent('[data-testid=login-error]'), 'Wrong username or password.');
    await page.waitForSelector('html[data-hydrated]');
    await shot(page, 'login');
    await logIn(page, s.origin);
    const cookies = await ctx.cookies();
    const session = cookies.find((c) => c.name === '__Host-redauth_session');
    assert.ok(session, `the session cookie redauth's config names: ${JSON.stringify(cookies.map((c) => c.name))}`);
    assert.equal(session.sameSite, 'Lax');
    assert.ok(session.httpOnly && session.secure);
    await page.reload();
    assert.equal(await page.textContent('[data-testid=dashboard]'), 'Hello, alice');
    await shot(page, 'dashboard');
    await page.goto(`${s.origin}/admin`);
    assert.equal(await page.textContent('[data-testid=admin]'), 'Administration');

    const bob = await (await browser.newContext()).newPage();
    await logIn(bob, s.origin, 'bob');
    const r = await bob.goto(`${s.origin}/admin`);
    assert.equal(r.status(), 403);
    await bob.context().close();
    await ctx.close();
  });

  test('a link from another site keeps the user logged in (SameSite=Lax)', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await logIn(page, s.origin);
    const other = await startOtherSite(`${s.origin}/dashboard`);
    try {
      await page.goto(other.origin);
      await Promise.all([page.waitForURL(`${s.origin}/dashboard`), page.click('#to-app')]);
      assert.equal(await page.textContent('[data-testid=dashboard]'), 'Hello, alice');
    } finally {
      await other.stop();
      await ctx.close();
    }
  });

  test('logout in one tab ends the other', async () => {
    const ctx = await browser.newContext();
    const one = await ctx.newPage();
    await logIn(one, s.origin);
    const two = await ctx.newPage();
    await two.goto(`${s.origin}/dashboard`);
    assert.equal(await two.textContent('[data-testid=dashboard]'), 'Hello, alice');
    await Promise.all([one.waitForURL(`${s.origin}/`), one.click('[data-testid=logout]')]);
    assert.equal(await one.locator('[data-testid=login-link]').count(), 1);
    await expectLoggedOut(two, s.origin, '/account');
    assert.equal((await ctx.cookies()).filter((c) => c.name === '__Host-redauth_session').length, 0);
    // Logging in again from there leads back to the page the user wanted.
    await two.waitForSelector('html[data-hydrated]');
    await two.fill('input[name=username]', 'alice');
    await two.fill('input[name=password]', PASSWORD);
    await Promise.all([two.waitForURL(`${s.origin}/account`), two.click('[data-testid=submit]')]);
    await ctx.close();
  });

  test('account page lists both browsers with their own user agent; revoke and log out everywhere', async () => {
    const first = await (await browser.newContext({ userAgent: 'FirstBrowser/1.0 (test)' })).newPage();
    const second = await (await browser.newContext({ userAgent: 'SecondBrowser/2.0 (test)' })).newPage();
    const third = await (await browser.newContext({ userAgent: 'ThirdBrowser/3.0 (test)' })).newPage();
    await logIn(first, s.origin);
    await logIn(second, s.origin);
    await logIn(third, s.origin);
    await second.goto(`${s.origin}/account`);
    const rows = second.locator('[data-testid=session-row]');
    const text = (await rows.allTextContents()).join('\n');
    // Forwarded by the app with the app secret: each browser's own agent, not "node".
    for (const ua of ['FirstBrowser/1.0', 'SecondBrowser/2.0 (test)(this browser)', 'ThirdBrowser/3.0']) {
      assert.ok(text.includes(ua), `${ua} in\n${text}`);
    }
    assert.ok(!/\bnode\b/.test(text), text);
    await shot(second, 'account');

    // Revoke the third browser's session from the second.
    const thirdRow = rows.filter({ hasText: 'ThirdBrowser' });
    await Promise.all([second.waitForLoadState('load'), thirdRow.locator('[data-testid=revoke]').click()]);
    await second.waitForFunction(() => !document.body.innerText.includes('ThirdBrowser'));
    await expectLoggedOut(third, s.origin);

    // "Log out everywhere" from the second ends the first.
    await Promise.all([second.waitForURL(/\/login$/), second.click('[data-testid=logout-everywhere]')]);
    await expectLoggedOut(first, s.origin);
    await expectLoggedOut(second, s.origin);
    for (const p of [first, second, third]) await p.context().close();
  });

  test('redauth stopped: the public page renders, a protected page shows the 503 page', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await logIn(page, s.origin);
    await s.redauth.stop();
    const home = await page.goto(`${s.origin}/`);
    assert.equal(home.status(), 200);
    assert.ok(await page.isVisible('[data-testid=public]'));
    const dash = await page.goto(`${s.origin}/dashboard`);
    assert.equal(dash.status(), 503);
    assert.equal(await page.textContent('[data-testid=unavailable]'), 'Sign-in is temporarily unavailable');
    await shot(page, 'unavailable');
    const login = await page.goto(`${s.origin}/login`);
    assert.equal(login.status(), 200, 'the login page still renders');
    await ctx.close();
  });
});

describe('access and refresh tokens', { skip: !executablePath }, () => {
  const ACCESS_TTL = 2;
  let s;
  before(async () => {
    s = await stack('t:', { REDAUTH_ACCESS_TTL_SECS: String(ACCESS_TTL) });
  });
  after(async () => {
    await s?.app.stop();
    await s?.redauth.stop();
  });

  const accessCookie = async (ctx) => (await ctx.cookies()).find((c) => c.name === 'redauth_access')?.value;
  /** Until the access token in the browser has expired (what is under test is expiry). */
  const untilExpired = (ms = (ACCESS_TTL + 1) * 1000) => new Promise((r) => setTimeout(r, ms));

  test('login, reload, the access token expires and the page still works', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await logIn(page, s.origin);
    assert.equal(await page.textContent('[data-testid=mode]'), 'tokens');
    const refreshCookie = (await ctx.cookies()).find((c) => c.name === 'redauth_refresh');
    assert.ok(refreshCookie.httpOnly);
    // refresh_expires_in from redauth: the idle timeout, 3 days.
    const lifetime = refreshCookie.expires - Date.now() / 1000;
    assert.ok(lifetime > 259_000 && lifetime <= 259_200, String(lifetime));
    await page.reload();
    assert.equal(await page.textContent('[data-testid=dashboard]'), 'Hello, alice');
    const before = await accessCookie(ctx);
    await untilExpired();
    await page.reload();
    assert.equal(await page.textContent('[data-testid=dashboard]'), 'Hello, alice');
    assert.notEqual(await accessCookie(ctx), before, 'refreshed');
    await ctx.close();
  });

  test('two tabs refreshing at the same moment both stay logged in', async () => {
    const ctx = await browser.newContext();
    const one = await ctx.newPage();
    await logIn(one, s.origin);
    const two = await ctx.newPage();
    await two.goto(`${s.origin}/account`);
    for (let round = 0; round < 2; round++) {
      await untilExpired();
      await Promise.all([one.reload(), two.reload()]);
      assert.equal(await one.textContent('[data-testid=dashboard]'), 'Hello, alice');
      assert.equal(await two.locator('[data-testid=session-row][data-current=true]').count(), 1);
    }
    await one.reload();
    assert.equal(await one.textContent('[data-testid=dashboard]'), 'Hello, alice', 'no theft detected');
    await ctx.close();
  });

  test('log out everywhere from a second browser ends the first; logout in one tab ends the other', async () => {
    const a = await browser.newContext();
    const b = await browser.newContext();
    const first = await a.newPage();
    const second = await b.newPage();
    await logIn(first, s.origin);
    await logIn(second, s.origin);
    await second.goto(`${s.origin}/account`);
    assert.ok((await second.locator('[data-testid=session-row]').count()) >= 2);
    await Promise.all([second.waitForURL(/\/login$/), second.click('[data-testid=logout-everywhere]')]);
    await expectLoggedOut(first, s.origin);

    const tab1 = await a.newPage();
    const tab2 = await a.newPage();
    await logIn(tab1, s.origin);
    await tab2.goto(`${s.origin}/dashboard`);
    await Promise.all([tab1.waitForURL(`${s.origin}/`), tab1.click('[data-testid=logout]')]);
    await expectLoggedOut(tab2, s.origin);
    await a.close();
    await b.close();
  });
});

describe('compat with @ethercorps/sveltekit-redis-session', { skip: !executablePath }, () => {
  let s;
  before(async () => {
    s = await stack(
      'c:',
      { REDAUTH_SESSION_COOKIE_MODE: 'compat', REDAUTH_LOGIN_ISSUES: 'session', REDAUTH_SESSION_SECRET: SESSION_SECRET },
      { REDIS_URL: redis.url, SESSION_SECRET },
    );
  });
  after(async () => {
    await s?.app.stop();
    await s?.redauth.stop();
  });

  test('one session read by the package (through redauth) and by the library (from Redis)', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await logIn(page, s.origin);
    const session = (await ctx.cookies()).find((c) => c.name === 'session');
    assert.ok(session, 'the library\'s cookie name, learned from redauth');
    await page.goto(`${s.origin}/library`);
    assert.equal(await page.textContent('[data-testid=via-redauth]'), 'alice');
    assert.equal(await page.textContent('[data-testid=via-library]'), 'alice');
    await shot(page, 'compat');
    await page.goto(`${s.origin}/dashboard`);
    await Promise.all([page.waitForURL(`${s.origin}/`), page.click('[data-testid=logout]')]);
    await expectLoggedOut(page, s.origin, '/library');
    await ctx.close();
  });
});
