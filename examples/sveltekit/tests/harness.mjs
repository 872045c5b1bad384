// Starts what the browser tests need, each on a free port, and stops it afterwards:
// redis-server, the redauth binary (built by `cargo test`/`cargo build`), the example app
// (built by `npm test` before the tests run) and Debian's chromium through playwright-core.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';

const here = path.dirname(fileURLToPath(import.meta.url));
export const APP_DIR = path.resolve(here, '..');
export const ROOT = path.resolve(APP_DIR, '../..');
export const PASSWORD = 'correct horse battery staple';
export const APP_SECRET = 'example-app-secret-0123456789-0123456789';
export const JWT_SECRET = 'example-jwt-secret-0123456789-0123456789';
export const SESSION_SECRET = 'example-session-secret-0123456789-012345';

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export function redauthBin() {
  const bin = process.env.REDAUTH_BIN ?? path.join(ROOT, 'target/debug/redauth');
  if (!existsSync(bin)) {
    throw new Error(`no redauth binary at ${bin}: run \`cargo build -p redauth-server\` first (or set REDAUTH_BIN)`);
  }
  return bin;
}

export function chromiumPath() {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
  return candidates.find((p) => existsSync(p)) ?? null;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawns `cmd` and resolves once a line of its output matches `ready` (returns the match). */
function startUntil(cmd, args, { env, ready, name }) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const seen = [];
  return new Promise((resolve, reject) => {
    let done = false;
    const onLine = (line) => {
      seen.push(line);
      if (process.env.EXAMPLE_VERBOSE) console.error(`[${name}] ${line}`);
      const m = !done && line.match(ready);
      if (m) {
        done = true;
        resolve({ child, match: m, stop: () => stop(child) });
      }
    };
    readline.createInterface({ input: child.stdout }).on('line', onLine);
    readline.createInterface({ input: child.stderr }).on('line', onLine);
    child.once('exit', (code) => {
      children.delete(child);
      if (!done) reject(new Error(`${name} exited (${code}) before it was ready:\n${seen.join('\n')}`));
    });
  });
}

/** SIGTERM, and SIGKILL if it has not exited within 3 s (the app keeps its Redis
 * connection open, so its graceful shutdown never ends on its own). */
function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startRedis() {
  const port = await freePort();
  const r = await startUntil('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    env: process.env,
    ready: /Ready to accept connections/,
    name: 'redis',
  });
  return { ...r, url: `redis://127.0.0.1:${port}/` };
}

/** redauth's settings for one mode, on the shared Redis under its own key prefix. */
export function redauthEnv(redisUrl, prefix, extra = {}) {
  return {
    PATH: process.env.PATH,
    REDIS_URL: redisUrl,
    JWT_SECRET,
    REDAUTH_KEY_PREFIX: prefix,
    REDAUTH_APP_SECRET: APP_SECRET,
    // Cheap hashing: the tests log in often.
    REDAUTH_ARGON2_MEMORY_KIB: '64',
    REDAUTH_ARGON2_ITERATIONS: '1',
    ...extra,
  };
}

export function cli(env, args, stdin = '') {
  const r = spawnSync(redauthBin(), args, { env, input: stdin, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redauth ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Creates alice (admin) and bob (no role). */
export function seedUsers(env) {
  cli(env, ['role', 'set', 'admin', 'redauth:admin']);
  cli(env, ['user', 'add', 'alice', '--email', 'alice@example.com', '--role', 'admin', '--password-stdin'], `${PASSWORD}\n`);
  cli(env, ['user', 'add', 'bob', '--email', 'bob@example.com', '--password-stdin'], `${PASSWORD}\n`);
}

export async function startRedauth(env) {
  const r = await startUntil(redauthBin(), ['serve', '--listen', '127.0.0.1:0', '--log-format', 'json'], {
    env,
    ready: /"redauth listening".*?"addr":"([^"]+)"|"addr":"([^"]+)".*"redauth listening"/,
    name: 'redauth',
  });
  return { ...r, url: `http://${r.match[1] ?? r.match[2]}` };
}

/** The built example app (`build/`) under this Node (22, from the `node` package). */
export async function startApp(extraEnv) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const r = await startUntil(process.execPath, ['build'], {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), ORIGIN: origin, ...extraEnv },
    ready: /Listening on/,
    name: 'app',
  });
  return { ...r, origin };
}

/** Another site (another origin and site: `localhost` is not `127.0.0.1`) that links to `target`. */
export async function startOtherSite(target) {
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><title>Elsewhere</title><p>A page on another site.</p><a id="to-app" href="${target}">Open my dashboard</a>`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { origin: `http://localhost:${port}`, stop: () => new Promise((resolve) => server.close(resolve)) };
}
