import { requireUser } from '@redauth/sveltekit';
import { librarySessions } from '#lib/server/library.ts';
import type { PageServerLoad } from './$types';

/** The same session, read by @ethercorps/sveltekit-redis-session straight from Redis. */
export const load: PageServerLoad = async (event) => {
  const user = requireUser(event);
  const store = librarySessions();
  if (!store) return { user, library: null };
  const { data, error, message } = await store.getSession(event.cookies);
  const link = (data as { redauth?: { user_id: string; username: string; roles: string[] } } | null)?.redauth;
  return { user, library: { error, message, userId: link?.user_id ?? null, username: link?.username ?? null, roles: link?.roles ?? [] } };
};
