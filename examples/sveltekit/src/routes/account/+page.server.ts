import { listSessions, logoutEverywhere, requireUser, revokeSession } from '@redauth/sveltekit';
import type { Actions, PageServerLoad } from './$types';

export const load: PageServerLoad = async (event) => {
  requireUser(event);
  return { sessions: await listSessions(event) };
};

export const actions: Actions = {
  revoke: async (event) => {
    const form = await event.request.formData();
    await revokeSession(event, String(form.get('id')));
  },
  everywhere: (event) => logoutEverywhere(event, { redirectTo: '/login' }),
};
