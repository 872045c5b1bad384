// `node --import ./register.mjs`: resolves `$app/environment` to the stand-in.
import { register } from 'node:module';

register('./resolve-app-environment.mjs', import.meta.url);
