// Reads several of the sidecar's localhost admin URLs (15021 /healthz/ready, 15000 /stats,
// /config_dump, 15090 /stats/prometheus) in ONE round trip (fetch-local.sh).
import { readFileSync } from 'node:fs';
import type { VmSession } from '../session.js';
import { asUser, composeScript, runScript } from './protocol.js';

export interface LocalUrlResult {
  url: string;
  /** HTTP status; 0 when no response (connection refused, timeout). */
  status: number;
  body: string;
  /** curl's exit code when it failed (7 refused, 28 timeout), else undefined. */
  transportError?: number;
}

export interface FetchLocalOptions {
  /** Per URL; default 5 s. */
  timeoutSeconds?: number;
  /** Cut each body at this many bytes; default 4 MiB. */
  maxBodyBytes?: number;
}

const LOCAL_URL = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\]):\d{1,5}\/[^\s]*$/;

const FETCH_LOCAL = readFileSync(new URL('./fetch-local.sh', import.meta.url), 'utf8');

export function fetchLocalScript(urls: string[], options: FetchLocalOptions = {}): string {
  for (const url of urls) {
    if (!LOCAL_URL.test(url)) throw new Error(`fetchLocalUrl only reads http://localhost:PORT/… URLs, not ${url}`);
  }
  const values = {
    IVO_URLS: urls.join('\n'),
    IVO_TIMEOUT: Math.max(1, Math.min(options.timeoutSeconds ?? 5, 120)),
    IVO_MAX_BYTES: Math.max(1024, options.maxBodyBytes ?? 4 * 1024 * 1024),
  };
  return asUser(composeScript({ values, text: FETCH_LOCAL }));
}

export async function fetchLocalUrl(
  session: VmSession,
  urls: string[],
  options: FetchLocalOptions = {},
): Promise<LocalUrlResult[]> {
  if (urls.length === 0) return [];
  const timeout = options.timeoutSeconds ?? 5;
  const output = await runScript(session, fetchLocalScript(urls, options), {
    what: 'read local URLs',
    timeoutMs: (timeout * urls.length + 30) * 1000,
  });
  return urls.map((url, index) => {
    const status = Number(output.get(`status.${index}`) ?? '0') || 0;
    const rc = Number(output.get(`rc.${index}`) ?? '0');
    return {
      url,
      status,
      body: output.get(`body.${index}`) ?? '',
      ...(status === 0 && rc !== 0 ? { transportError: rc } : {}),
    };
  });
}
