import type { RequestEvent } from '@sveltejs/kit';
import type { RedauthServerConfig } from './types.js';

/** Header names redauth reads from the app (see redauth's `trusted_app` module). */
export const APP_SECRET_HEADER = 'x-redauth-app-secret';
export const CLIENT_IP_HEADER = 'x-redauth-client-ip';
export const CLIENT_USER_AGENT_HEADER = 'x-redauth-client-user-agent';

/** redauth could not be reached, timed out, or answered 5xx. */
export class RedauthUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedauthUnavailableError';
  }
}

/** redauth refused the app itself (a wrong or missing `REDAUTH_APP_SECRET`). */
export class RedauthMisconfiguredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedauthMisconfiguredError';
  }
}

export interface ClientOptions {
  url: string;
  appSecret: string | undefined;
  timeoutMs: number;
  configTtlMs: number;
  fetch: typeof fetch;
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  bearer?: string;
  cookie?: string;
  /** The browser request this call is made for: its address and user agent are
   * forwarded (with the app secret, redauth trusts them). */
  event?: RequestEvent;
}

export interface CallResult {
  status: number;
  body: any;
  setCookies: string[];
}

function clientAddress(event: RequestEvent): string | null {
  try {
    return event.getClientAddress();
  } catch {
    return null;
  }
}

/** Talks to redauth, server to server. */
export class RedauthClient {
  private config: { value: RedauthServerConfig; fetchedAt: number } | null = null;
  private configInFlight: Promise<RedauthServerConfig> | null = null;
  private warnedNoSecret = false;

  constructor(readonly options: ClientOptions) {}

  async call(path: string, opts: CallOptions = {}): Promise<CallResult> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.appSecret) {
      headers[APP_SECRET_HEADER] = this.options.appSecret;
      if (opts.event) {
        const ip = clientAddress(opts.event);
        if (ip) headers[CLIENT_IP_HEADER] = ip;
        const ua = opts.event.request.headers.get('user-agent');
        if (ua) headers[CLIENT_USER_AGENT_HEADER] = ua;
      }
    } else if (!this.warnedNoSecret) {
      this.warnedNoSecret = true;
      console.warn(
        '[@redauth/sveltekit] no app secret (REDAUTH_APP_SECRET): redauth sees every user as this server, ' +
          'so rate limits are shared by all users and session lists show this server. ' +
          'Set the same REDAUTH_APP_SECRET on redauth and pass it to redauth({ appSecret }).',
      );
    }
    if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
    if (opts.cookie) headers.cookie = opts.cookie;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await this.options.fetch(new URL(path, this.options.url), {
        method: opts.method ?? 'GET',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (cause) {
      throw new RedauthUnavailableError(`redauth at ${this.options.url} is unreachable`, { cause });
    }
    const text = await res.text().catch(() => '');
    let parsed: any = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (res.status >= 500) {
      throw new RedauthUnavailableError(
        `redauth answered ${res.status}${parsed?.error ? ` ${parsed.error}` : ''}`,
      );
    }
    if (res.status === 401 && parsed?.error === 'invalid_app_secret') {
      throw new RedauthMisconfiguredError(`redauth refused this app: ${parsed.message}`);
    }
    return { status: res.status, body: parsed, setCookies: res.headers.getSetCookie?.() ?? [] };
  }

  /** `GET /api/auth/config`, cached for `configTtlMs`. A stale copy is used while
   * redauth is unreachable (cookie names do not change while it restarts). */
  async serverConfig(): Promise<RedauthServerConfig> {
    const now = Date.now();
    if (this.config && now - this.config.fetchedAt < this.options.configTtlMs) {
      return this.config.value;
    }
    this.configInFlight ??= (async () => {
      try {
        const r = await this.call('/api/auth/config');
        if (r.status !== 200 || !r.body || typeof r.body.login_issues !== 'string') {
          throw new RedauthMisconfiguredError(
            `GET ${this.options.url}/api/auth/config answered ${r.status}: is REDAUTH_URL a redauth server?`,
          );
        }
        const value = r.body as RedauthServerConfig;
        if (this.options.appSecret && !value.app_secret.trusted) {
          throw new RedauthMisconfiguredError('redauth did not accept the app secret');
        }
        this.config = { value, fetchedAt: Date.now() };
        return value;
      } catch (e) {
        if (this.config && e instanceof RedauthUnavailableError) return this.config.value;
        throw e;
      } finally {
        this.configInFlight = null;
      }
    })();
    return this.configInFlight;
  }
}
