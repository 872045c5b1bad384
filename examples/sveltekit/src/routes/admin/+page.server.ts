import { requirePermission } from '@redauth/sveltekit';
import type { PageServerLoad } from './$types';

export const load: PageServerLoad = (event) => ({ admin: requirePermission(event, 'redauth:admin') });
