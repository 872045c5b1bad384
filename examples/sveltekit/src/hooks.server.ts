import { redauth } from '@redauth/sveltekit';

// REDAUTH_URL and REDAUTH_APP_SECRET come from the environment. The hook asks redauth
// which mode it runs (cookie sessions, tokens, compat) and which cookie it uses.
export const handle = redauth();
