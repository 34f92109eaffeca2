// Reads several of the sidecar's localhost admin URLs (15021 /healthz/ready, 15000 /stats,
// /config_dump, 15090 /stats/prometheus) in ONE round trip, for the verification layer.
import type { VmSession } from '../session.js';
import { runScript } from './protocol.js';
import { asUser, shQuote } from './shell.js';

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

export function fetchLocalScript(urls: string[], options: FetchLocalOptions = {}): string {
  for (const url of urls) {
    if (!LOCAL_URL.test(url)) throw new Error(`fetchLocalUrl only reads http://localhost:PORT/… URLs, not ${url}`);
  }
  const timeout = Math.max(1, Math.min(options.timeoutSeconds ?? 5, 120));
  const max = Math.max(1024, options.maxBodyBytes ?? 4 * 1024 * 1024);
  const calls = urls.map((url, index) => `ivo_get ${index} ${shQuote(url)}`).join('\n');
  return asUser(`ivo_tmp=$(mktemp 2>/dev/null) || ivo_fail tmp "cannot create a temp file"
trap 'rm -f "$ivo_tmp"' EXIT
ivo_get() {
  : > "$ivo_tmp"
  if command -v curl >/dev/null 2>&1; then
    ivo_code=$(curl -s -o "$ivo_tmp" -w '%{http_code}' --max-time ${timeout} "$2" 2>/dev/null)
    ivo_rc=$?
  elif command -v wget >/dev/null 2>&1; then
    ivo_code=$(wget -S -q -T ${timeout} -t 1 --content-on-error -O "$ivo_tmp" "$2" 2>&1 | awk '$1 ~ /^HTTP\\// {c=$2} END {print c}')
    ivo_rc=0
  else
    ivo_fail no-http-client "neither curl nor wget on the VM to read $2"
  fi
  ivo_emit "status.$1" "\${ivo_code:-000}"
  ivo_emit "rc.$1" "$ivo_rc"
  printf '@@ivo64 body.%s ' "$1"
  head -c ${max} "$ivo_tmp" | ivo_b64
  printf '\\n'
}
${calls}
ivo_emit done yes
`);
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
