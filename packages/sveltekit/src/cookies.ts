import type { Cookies } from '@sveltejs/kit';

/** One `Set-Cookie` header, taken apart. */
export interface ParsedSetCookie {
  name: string;
  /** Percent-decoded: SvelteKit's `cookies.set` encodes it again the same way. */
  value: string;
  path: string;
  domain?: string;
  maxAge?: number;
  httpOnly: boolean;
  secure: boolean;
  sameSite?: 'strict' | 'lax' | 'none';
}

export function parseSetCookie(header: string): ParsedSetCookie | null {
  const [pair, ...attributes] = header.split(';');
  if (!pair) return null;
  const eq = pair.indexOf('=');
  if (eq <= 0) return null;
  const name = pair.slice(0, eq).trim();
  let value = pair.slice(eq + 1).trim();
  try {
    value = decodeURIComponent(value);
  } catch {
    // Not percent-encoded: keep it as it is.
  }
  const parsed: ParsedSetCookie = { name, value, path: '/', httpOnly: false, secure: false };
  for (const attribute of attributes) {
    const [rawKey, ...rest] = attribute.split('=');
    const key = (rawKey ?? '').trim().toLowerCase();
    const v = rest.join('=').trim();
    if (key === 'path') parsed.path = v;
    else if (key === 'domain') parsed.domain = v;
    else if (key === 'max-age') parsed.maxAge = Number(v);
    else if (key === 'httponly') parsed.httpOnly = true;
    else if (key === 'secure') parsed.secure = true;
    else if (key === 'samesite') {
      const s = v.toLowerCase();
      if (s === 'strict' || s === 'lax' || s === 'none') parsed.sameSite = s;
    }
  }
  return parsed;
}

/** Hands a cookie redauth set on to the browser through `event.cookies` (SvelteKit
 * refuses raw `Set-Cookie` headers from form actions). */
export function applySetCookie(cookies: Cookies, c: ParsedSetCookie): void {
  const options = {
    path: c.path,
    httpOnly: c.httpOnly,
    secure: c.secure,
    ...(c.domain ? { domain: c.domain } : {}),
    ...(c.sameSite ? { sameSite: c.sameSite } : {}),
  };
  if (c.maxAge !== undefined && c.maxAge <= 0) {
    cookies.delete(c.name, options);
  } else {
    cookies.set(c.name, c.value, {
      ...options,
      ...(c.maxAge !== undefined ? { maxAge: c.maxAge } : {}),
    });
  }
}

/** The value as the browser sent it (SvelteKit hands it back decoded). */
export function cookieHeader(name: string, value: string): string {
  return `${name}=${encodeURIComponent(value)}`;
}
