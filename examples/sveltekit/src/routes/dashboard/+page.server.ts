import { requireUser } from '@redauth/sveltekit';
import type { PageServerLoad } from './$types';

export const load: PageServerLoad = (event) => ({ user: requireUser(event), session: event.locals.session });
