// locals.user and locals.session are typed by @redauth/sveltekit.
declare global {
  namespace App {}
}

export {};
