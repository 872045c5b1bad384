// Drives @ethercorps/sveltekit-redis-session 1.3.1 (with ioredis) like a SvelteKit app
// would, one operation per run, and prints one JSON line: the library's answer and the
// Set-Cookie headers SvelteKit would send.
//
//   node --conditions=svelte --import ./register.mjs interop.mjs <redis-url> <secret> <op> [args]
//
// ops: create <userId> <json data> | get <cookie header> | update-expiry <cookie header>
//      | update <cookie header> <json data> | delete <cookie header> [userId]
//      | list <userId> | delete-user <userId>
// env: RENEW=1 (renewSessionBeforeExpire), RENEW_BEFORE=<secs>
import cookie from 'cookie';
import Redis from 'ioredis';

// The library logs with console.log; keep stdout for the one result line.
console.log = (...args) => console.error(...args);

const { IoRedisSessionStore } = await import('@ethercorps/sveltekit-redis-session');

const [redisUrl, secret, op, ...args] = process.argv.slice(2);

/** SvelteKit's `cookies` for one request: `get` decodes like kit, `set`/`delete`
 * serialize with `cookie.serialize` (encodeURIComponent), as kit does. */
function cookieJar(header) {
  const jar = cookie.parse(header ?? '');
  const setCookie = [];
  return {
    setCookie,
    get: (name) => jar[name],
    getAll: () => Object.entries(jar).map(([name, value]) => ({ name, value })),
    set(name, value, opts) {
      setCookie.push(cookie.serialize(name, value, opts));
      jar[name] = value;
    },
    delete(name, opts) {
      setCookie.push(cookie.serialize(name, '', { ...opts, maxAge: 0 }));
      delete jar[name];
    },
    serialize: (name, value, opts) => cookie.serialize(name, value, opts),
  };
}

const redisClient = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
const store = new IoRedisSessionStore({
  redisClient,
  secret,
  renewSessionBeforeExpire: process.env.RENEW === '1',
  ...(process.env.RENEW_BEFORE ? { renewBeforeSeconds: Number(process.env.RENEW_BEFORE) } : {}),
});

let result;
let jar = cookieJar(undefined);
try {
  switch (op) {
    case 'create':
      result = await store.createSession(jar, JSON.parse(args[1]), args[0]);
      break;
    case 'get':
      jar = cookieJar(args[0]);
      result = await store.getSession(jar);
      break;
    case 'update-expiry':
      jar = cookieJar(args[0]);
      result = await store.updateSessionExpiry(jar);
      break;
    case 'update':
      jar = cookieJar(args[0]);
      result = await store.updateSession(jar, JSON.parse(args[1]));
      break;
    case 'delete':
      jar = cookieJar(args[0]);
      result = await store.deleteSession(jar, args[1] ?? null);
      break;
    case 'list':
      result = await store.getSessionsByUserId(args[0]);
      break;
    case 'delete-user':
      result = await store.deleteSessionsByUserId(args[0]);
      break;
    default:
      throw new Error(`unknown op ${op}`);
  }
  process.stdout.write(JSON.stringify({ result, setCookie: jar.setCookie }) + '\n');
} finally {
  await redisClient.quit();
}
