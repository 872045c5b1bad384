import { login } from '@redauth/sveltekit';
import type { Actions } from './$types';

export const actions: Actions = {
  // Back to the page requireUser sent the user from (?redirectTo=, paths on this site
  // only), else the dashboard.
  default: (event) => login(event, { redirectTo: '/dashboard' }),
};
