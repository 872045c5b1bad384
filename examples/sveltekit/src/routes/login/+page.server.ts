import { login } from '@redauth/sveltekit';
import type { Actions } from './$types';

export const actions: Actions = {
  default: (event) => login(event, { redirectTo: event.url.searchParams.get('redirectTo') ?? '/dashboard' }),
};
