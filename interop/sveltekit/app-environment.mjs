// Stand-in for SvelteKit's `$app/environment`, the only SvelteKit module the library
// imports. `dev = false` is production: the library's cookies are `Secure`.
export const dev = false;
export const browser = false;
export const building = false;
export const version = 'interop';
