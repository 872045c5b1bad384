import { logout } from '@redauth/sveltekit';
import type { Actions } from './$types';

export const actions: Actions = {
  default: (event) => logout(event, { redirectTo: '/' }),
};
