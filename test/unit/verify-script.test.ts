// Runs the real batched verification scripts in `sh` with fake `curl` and `systemctl` first on PATH,
// so the shell logic (readiness polling, restart window, base64 framing, metric filtering) is exercised.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildFollowUpScript, buildProbeScript, parseScriptOutput, PROBE_URLS } from '../../src/verify/vm-script.js';

const REF = path.resolve(process.cwd(), '../shared/envoy-reference');

const FAKE_CURL = String.raw`#!/bin/sh
out=/dev/stdout; fmt=; url=
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift 2 ;;
    -w) fmt=$2; shift 2 ;;
    --max-time) shift 2 ;;
    -*) shift ;;
    *) url=$1; shift ;;
  esac
done
echo "$url" >> "$FAKE_DIR/calls"
if [ "$url" = "http://localhost:15021/healthz/ready" ] && [ -s "$FAKE_DIR/ready-codes" ]; then
  code=$(head -n 1 "$FAKE_DIR/ready-codes")
  tail -n +2 "$FAKE_DIR/ready-codes" > "$FAKE_DIR/rc.tmp"; mv "$FAKE_DIR/rc.tmp" "$FAKE_DIR/ready-codes"
  if [ "$code" = 000 ]; then printf 000; exit 7; fi
  printf '%s' "$code"; exit 0
fi
key=$(printf '%s' "$url" | sha256sum | cut -c1-16)
if [ ! -f "$FAKE_DIR/resp/$key.rc" ]; then echo "curl: (7) Failed to connect to $url" >&2; printf 000; exit 7; fi
rc=$(cat "$FAKE_DIR/resp/$key.rc")
if [ "$rc" != 0 ]; then echo "curl: ($rc) fake failure for $url" >&2; printf 000; exit "$rc"; fi
cat "$FAKE_DIR/resp/$key.body" > "$out"
printf '%s' "$(cat "$FAKE_DIR/resp/$key.code")"
`;

// Answers `show -p A -p B … UNIT` with the properties asked for (MainPID from $FAKE_MAINPID, empty when
// unset), and `is-active`. Every call counts in $FAKE_DIR/systemctl-calls; with $FAKE_DIR/crash each call
// also sees one more restart.
const FAKE_SYSTEMCTL = String.raw`#!/bin/sh
echo "$*" >> "$FAKE_DIR/systemctl-calls"
n=$(cat "$FAKE_DIR/nrestarts" 2>/dev/null || echo 0)
if [ -f "$FAKE_DIR/crash" ]; then n=$((n + 1)); echo "$n" > "$FAKE_DIR/nrestarts"; fi
state=$(cat "$FAKE_DIR/state")
case "$1" in
  is-active) echo "$state"; [ "$state" = active ] ;;
  show) shift
    while [ $# -gt 0 ]; do
      case "$1" in
        -p) case "$2" in
            LoadState) echo LoadState=loaded ;;
            ActiveState) echo "ActiveState=$state" ;;
            SubState) echo SubState=running ;;
            NRestarts) echo "NRestarts=$n" ;;
            MainPID) echo "MainPID=$FAKE_MAINPID" ;;
            ExecMainStartTimestamp) echo 'ExecMainStartTimestamp=Thu 2026-11-26 10:00:00 UTC' ;;
          esac; shift 2 ;;
        *) shift ;;
      esac
    done ;;
  *) exit 1 ;;
esac
`;

let dir: string;
const env = () => ({ ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, FAKE_DIR: dir });

function respond(url: string, rc: number, code: string, body: string) {
  const key = createHash('sha256').update(url).digest('hex').slice(0, 16);
  writeFileSync(`${dir}/resp/${key}.rc`, String(rc));
  writeFileSync(`${dir}/resp/${key}.code`, code);
  writeFileSync(`${dir}/resp/${key}.body`, body);
}

function run(script: string) {
  const started = Date.now();
  const r = spawnSync('sh', ['-s'], { input: script, env: env(), encoding: 'utf8', timeout: 30_000 });
  return { ...r, elapsed: Date.now() - started, output: parseScriptOutput(r.stdout) };
}

const OPTIONS = { restartWindowMs: 600, readyTimeoutMs: 3000, readyPollMs: 200, logTailLines: 5 };

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ivo-verify-script-'));
  mkdirSync(`${dir}/bin`);
  mkdirSync(`${dir}/resp`);
  writeFileSync(`${dir}/bin/curl`, FAKE_CURL);
  writeFileSync(`${dir}/bin/systemctl`, FAKE_SYSTEMCTL);
  chmodSync(`${dir}/bin/curl`, 0o755);
  chmodSync(`${dir}/bin/systemctl`, 0o755);
  // No real DNS lookups from unit tests.
  writeFileSync(`${dir}/bin/getent`, '#!/bin/sh\necho "getent $*" >> "$FAKE_DIR/calls"\nexit 2\n');
  chmodSync(`${dir}/bin/getent`, 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function reset(state: string, readyCodes: string[]) {
  writeFileSync(`${dir}/state`, state);
  writeFileSync(`${dir}/ready-codes`, readyCodes.map((c) => `${c}\n`).join(''));
  writeFileSync(`${dir}/nrestarts`, '0');
  rmSync(`${dir}/crash`, { force: true });
  rmSync(`${dir}/resp`, { recursive: true, force: true });
  mkdirSync(`${dir}/resp`);
  writeFileSync(`${dir}/calls`, '');
  writeFileSync(`${dir}/systemctl-calls`, '');
}

const systemctlCalls = () => readFileSync(`${dir}/systemctl-calls`, 'utf8').split('\n').filter(Boolean);

describe('probe script (round trip 1)', () => {
  it('stops with a reason when mktemp fails, and never falls back to a predictable /tmp path', () => {
    // A mktemp that fails (a full or read-only /tmp); TMPDIR points where a fallback would show up.
    const r = spawnSync('sh', ['-s'], {
      input: `mktemp() { return 1; }\n${buildProbeScript(OPTIONS)}`,
      env: { ...env(), TMPDIR: dir },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(97);
    expect(r.stderr).toContain('mktemp -d failed');
    expect(r.stdout).not.toContain('@@ivo section');
    expect(readdirSync(dir).filter((name) => name.startsWith('ivo-verify.'))).toEqual([]);
    expect(existsSync('/tmp/ivo-verify.' + String(r.pid))).toBe(false);
  });

  it('polls readiness until 200, keeps the restart window, frames every body losslessly', () => {
    reset('active', ['503', '503', '200']);
    const stats =
      readFileSync(path.join(REF, 'stats/stats_text.constructed.txt'), 'utf8') +
      '@@ivo-end stats@@\n\u0000\u00ff ünïcode\n';
    respond(PROBE_URLS.stats, 0, '200', stats);
    const dump = readFileSync(path.join(REF, 'config_dump/secrets_config_dump.istio-testdata.json'), 'utf8');
    respond(PROBE_URLS.secrets, 0, '200', dump);
    respond(
      PROBE_URLS.prometheus,
      0,
      '200',
      readFileSync(path.join(REF, 'stats/stats_prometheus.constructed.txt'), 'utf8'),
    );
    const r = run(buildProbeScript(OPTIONS));
    expect(r.status).toBe(0);
    const s = r.output.sections;
    expect(r.output.tools).toEqual({ curl: true, base64: true, systemctl: true });
    expect(s.get('ready')).toMatchObject({ http: '200' });
    expect(s.get('ready')?.body).toMatch(
      /^attempts=3 elapsed_ms=\d+ outcome=ready start_ms=\d{13} curl_rc=0 utc_offset=[+-]\d{4}\n$/,
    );
    expect(s.get('stats')).toMatchObject({ rc: 0, http: '200', body: stats });
    expect(s.get('secrets')?.body).toBe(dump);
    expect(s.get('certs')).toMatchObject({ rc: 7, http: '000' });
    expect(s.get('certs')?.stderr).toMatch(/Failed to connect/);
    // Only the mTLS counters travel back.
    expect(s.get('prometheus')?.body.split('\n').filter(Boolean)).toEqual([
      '# TYPE istio_requests_total counter',
      expect.stringMatching(
        /^istio_requests_total\{reporter="destination",.*connection_security_policy="mutual_tls"\} 37$/,
      ),
    ]);
    // The current run had lasted at least the restart window when the window ended.
    expect(Number(/up_ms=(\d+)/.exec(s.get('window')!.body)![1])).toBeGreaterThanOrEqual(600);
    expect(s.get('unit-before')?.body).toContain('is-active=active');
    expect(s.get('unit-after')?.body).toContain('NRestarts=0');
    // Without a main process: systemd's start time of the last run, as epoch seconds (date -d on the VM).
    expect(s.get('unit-started')?.body.trim()).toBe(`s=${Date.UTC(2026, 10, 26, 10, 0, 0) / 1000}`);
    // The stats URL carries the filter Envoy expects.
    expect(readFileSync(`${dir}/calls`, 'utf8')).toContain('/stats?usedonly&filter=%5E(cluster%5C.xds-grpc%7C');
  });

  it('looks at the unit with one systemctl call per look: 2 in round trip 1 for a ready sidecar, 2 in round trip 2', () => {
    reset('active', ['200']);
    const r = spawnSync('sh', ['-s'], {
      input: buildProbeScript({ ...OPTIONS, deferWindowWhenReady: true }),
      env: { ...env(), FAKE_MAINPID: '1' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const s = parseScriptOutput(r.stdout).sections;
    expect(s.get('window')?.body).toMatch(/deferred=1/);
    expect(s.get('unit-before')?.body).toMatch(/^ActiveState=active$/m);
    expect(s.get('unit-before')?.body).toMatch(/^is-active=active$/m);
    expect(s.get('unit-started')?.body.trim()).toMatch(/^ms=\d+$/);
    expect(systemctlCalls()).toEqual([
      'show -p LoadState -p ActiveState -p SubState -p NRestarts -p MainPID -p ExecMainStartTimestamp istio',
      'show -p LoadState -p ActiveState -p SubState -p NRestarts -p MainPID -p ExecMainStartTimestamp istio',
    ]);
    writeFileSync(`${dir}/systemctl-calls`, '');
    const startMs = /start_ms=(\d+)/.exec(s.get('ready')!.body)![1]!;
    const f = spawnSync('sh', ['-s'], {
      input: buildFollowUpScript({
        readPrometheus: false,
        vmToMeshTimeoutMs: 1000,
        restartWindow: { windowMs: 300, probeStartMs: Number(startMs) },
      }),
      env: { ...env(), FAKE_MAINPID: '1' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(parseScriptOutput(f.stdout).sections.get('unit-after')?.body).toMatch(/^is-active=active$/m);
    expect(systemctlCalls()).toHaveLength(2);
  });

  it('finishes the window in round trip 1 when the sidecar is not ready, even when asked to defer it', () => {
    reset('active', Array(20).fill('503'));
    const r = run(buildProbeScript({ ...OPTIONS, readyTimeoutMs: 400, deferWindowWhenReady: true }));
    const window = r.output.sections.get('window')!.body;
    expect(window).not.toMatch(/deferred=1/);
    expect(window).toMatch(/^window_ms=\d+ up_ms=\d+\n$/);
    expect(r.output.sections.get('ready')?.body).toMatch(/outcome=timeout/);
  });

  it('dates the current run by its main process start (/proc), to the tick', () => {
    reset('active', ['200']);
    const r = spawnSync('sh', ['-s'], {
      input: buildProbeScript(OPTIONS),
      env: { ...env(), FAKE_MAINPID: String(process.pid) },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const body = parseScriptOutput(r.stdout).sections.get('unit-started')?.body.trim() ?? '';
    expect(body).toMatch(/^ms=\d+$/);
    // This jest worker is that "main process": the script's answer is its start time.
    const startedMs = Date.now() - process.uptime() * 1000;
    expect(Math.abs(Number(body.slice(3)) - startedMs)).toBeLessThan(1500);
  });

  it('does not wait out the restart window for a run that started long ago (a rerun)', () => {
    reset('active', ['200']);
    const slow = { ...OPTIONS, restartWindowMs: 5_000 };
    const started = Date.now();
    // pid 1 has run since boot: its run is far older than the window.
    const r = spawnSync('sh', ['-s'], {
      input: buildProbeScript(slow),
      env: { ...env(), FAKE_MAINPID: '1' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const elapsed = Date.now() - started;
    const window = parseScriptOutput(r.stdout).sections.get('window')!.body;
    expect(Number(/up_ms=(\d+)/.exec(window)![1])).toBeGreaterThan(5_000);
    expect(elapsed).toBeLessThan(4_000);
  });

  it('watches a run that just started until it is as old as the restart window', () => {
    reset('active', ['200']);
    const fresh = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const started = Date.now();
      const r = spawnSync('sh', ['-s'], {
        input: buildProbeScript({ ...OPTIONS, restartWindowMs: 1_500 }),
        env: { ...env(), FAKE_MAINPID: String(fresh.pid) },
        encoding: 'utf8',
        timeout: 30_000,
      });
      const elapsed = Date.now() - started;
      const window = parseScriptOutput(r.stdout).sections.get('window')!.body;
      expect(Number(/up_ms=(\d+)/.exec(window)![1])).toBeGreaterThanOrEqual(1_500);
      // It waited for the run to age (most of the window), not for a whole window after the probe began.
      expect(elapsed).toBeGreaterThanOrEqual(1_000);
    } finally {
      fresh.kill('SIGKILL');
    }
  });

  it('stops polling when the unit restarts, and reports the grown restart count', () => {
    reset('active', Array(50).fill('503'));
    writeFileSync(`${dir}/crash`, '');
    const r = run(buildProbeScript(OPTIONS));
    const s = r.output.sections;
    expect(s.get('ready')?.body).toMatch(/attempts=1 .*outcome=restarted/);
    const before = Number(/NRestarts=(\d+)/.exec(s.get('unit-before')!.body)![1]);
    const after = Number(/NRestarts=(\d+)/.exec(s.get('unit-after')!.body)![1]);
    expect(after).toBeGreaterThan(before);
  });

  it('gives up at the readiness timeout (bounded), and tries once when the unit is not active', () => {
    reset('active', Array(100).fill('503'));
    const r = run(buildProbeScript({ ...OPTIONS, readyTimeoutMs: 1000 }));
    expect(r.output.sections.get('ready')?.body).toMatch(/outcome=timeout/);
    expect(r.output.sections.get('ready')?.http).toBe('503');
    expect(r.elapsed).toBeLessThan(6000);
    reset('failed', ['000']);
    const r2 = run(buildProbeScript(OPTIONS));
    expect(r2.output.sections.get('ready')?.body).toMatch(/^attempts=1 .* curl_rc=7 utc_offset=[+-]\d{4}\n$/);
    expect(r2.output.sections.get('ready')?.http).toBe('000');
  });
});

describe('follow-up script (round trip 2)', () => {
  it('reads the counters again and makes the vm-to-mesh call with curl exit code and stderr', () => {
    reset('active', []);
    const url = "http://mesh-echo.lab.svc.cluster.local:8080/it's";
    respond(url, 6, '000', '');
    const r = run(buildFollowUpScript({ readPrometheus: true, verifyUrl: url, vmToMeshTimeoutMs: 2000 }));
    const s = r.output.sections;
    expect(s.get('vm-to-mesh')).toMatchObject({ rc: 6, http: '000' });
    expect(s.get('vm-to-mesh')?.stderr).toContain(url);
    expect(s.get('resolve')?.rc).toBe(2);
    expect(readFileSync(`${dir}/calls`, 'utf8')).toContain('getent hosts mesh-echo.lab.svc.cluster.local');
    expect(s.get('prometheus')?.rc).toBe(7);
    respond(url, 0, '200', 'ok');
    expect(
      run(buildFollowUpScript({ readPrometheus: false, verifyUrl: url, vmToMeshTimeoutMs: 2000 })).output.sections.get(
        'vm-to-mesh',
      ),
    ).toMatchObject({ rc: 0, http: '200', body: 'ok' });
  });

  it('ignores noise and truncated sections in the output', () => {
    const out = parseScriptOutput(
      'motd\n@@ivo64 a.err \n@@ivo64 a.body aGk=\n@@ivo section a rc=0 http=200\n' +
        '@@ivo tools curl=yes base64=no\n@@ivo64 b.err \n@@ivo64 b.body aGk=\n',
    );
    expect([...out.sections.keys()]).toEqual(['a']);
    expect(out.sections.get('a')?.body).toBe('hi');
    expect(out.tools).toEqual({ curl: true, base64: false });
  });
});
