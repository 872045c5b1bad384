// Compat mode only: the app keeps using @ethercorps/sveltekit-redis-session on the Redis
// redauth uses, with the same secret (REDAUTH_SESSION_SECRET), and both see one session.
import { IoRedisSessionStore } from '@ethercorps/sveltekit-redis-session';
import { Redis } from 'ioredis';

let store: IoRedisSessionStore | null = null;

export function librarySessions(): IoRedisSessionStore | null {
  const url = process.env.REDIS_URL;
  const secret = process.env.SESSION_SECRET;
  if (!url || !secret) return null;
  store ??= new IoRedisSessionStore({
    redisClient: new Redis(url),
    secret,
    cookieName: 'session',
    // What redauth's compat mode writes; the library's defaults.
    sessionPrefix: 'sk_ioredis_session',
    userSessionsPrefix: 'sk_ioredis_user_sessions',
    cookiesOptions: { secure: process.env.SESSION_COOKIE_SECURE !== 'false' },
  });
  return store;
}
