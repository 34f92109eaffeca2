// Start-up of the bundled action, alone: spawn `node dist/index.js` (mode plan, a one-VM inline
// inventory) → its first visible log line, and → the rollout's first line (`plan: 1 VM(s) …`: everything
// loaded, inputs and inventory checked). The child is then killed (by its pid) before it reaches the
// cluster, whose kubeconfig points at a closed loopback port anyway; nothing leaves the machine. Each
// sample gets private, empty RUNNER_TEMP and TMPDIR folders. Two ways, each over the same number of samples:
//   fresh  — a fresh runner: RUNNER_TEMP empty, so Node's compile cache (src/main.ts) is empty too;
//   reused — a second use of the action in the same job: the compile cache the previous sample wrote.
// The first visible line does not depend on the cache (it is printed before dist/run.js is loaded).
// Not a test: nothing asserts; the figures go to bench/results.md.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { node24 } from '../../test/lab/testing.js';
import { median } from './stats.js';
import { fileURLToPath } from 'node:url';

export interface StartupSample {
  /** Spawn → first stdout line that is not a workflow command (`::…::`). */
  firstVisibleLineMs: number;
  /** Spawn → the rollout's first line (`plan: …`): everything loaded, inputs and inventory checked. */
  readyMs: number;
}

export interface StartupMeasurement {
  samples: number;
  fresh: StartupSample[];
  reused: StartupSample[];
}

const INVENTORY = [
  'version: 1',
  'mesh:',
  '  eastWestGateway:',
  '    address: 127.0.0.1',
  'groups:',
  '  - name: app',
  '    namespace: vm-app',
  '    serviceAccount: vm-app',
  '    vms:',
  '      - name: vm1',
  '        address: 127.0.0.1',
  '        user: bench',
  '',
].join('\n');

/** A kubeconfig whose API server is a closed port on loopback. */
const KUBECONFIG = [
  'apiVersion: v1',
  'kind: Config',
  'clusters: [{ name: none, cluster: { server: "https://127.0.0.1:1", insecure-skip-tls-verify: true } }]',
  'users: [{ name: none, user: { token: bench-token-not-a-secret } }]',
  'contexts: [{ name: none, context: { cluster: none, user: none } }]',
  'current-context: none',
  '',
].join('\n');

function sample(entry: string, runnerTemp: string, tmp: string): Promise<StartupSample> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let firstVisibleLineMs = Number.NaN;
    let readyMs = Number.NaN;
    let pending = '';
    const child = spawn(node24(), [entry], {
      cwd: tmp,
      stdio: ['ignore', 'pipe', 'ignore'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        RUNNER_TEMP: runnerTemp,
        TMPDIR: tmp,
        GITHUB_WORKSPACE: tmp,
        INPUT_MODE: 'plan',
        INPUT_INVENTORY: INVENTORY,
        INPUT_KUBECONFIG: KUBECONFIG,
        'INPUT_SSH-TRUST-ON-FIRST-USE': 'true',
      },
    });
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const now = performance.now() - started;
      for (const line of lines) {
        if (Number.isNaN(firstVisibleLineMs) && line !== '' && !line.startsWith('::')) firstVisibleLineMs = now;
        if (line.startsWith('plan: ')) {
          readyMs = now;
          child.kill('SIGKILL');
        }
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve({ firstVisibleLineMs, readyMs });
    });
  });
}

/** `samples` fresh-runner starts, then `samples` starts that reuse one runner's compile cache. */
export async function measureStartup(distDir: string, samples: number): Promise<StartupMeasurement> {
  const entry = path.join(distDir, 'index.js');
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ivo-bench-startup-'));
  try {
    const fresh: StartupSample[] = [];
    for (let i = 0; i < samples; i++) {
      const runnerTemp = mkdtempSync(path.join(scratch, 'runner-temp-'));
      fresh.push(await sample(entry, runnerTemp, mkdtempSync(path.join(scratch, 'tmp-'))));
      rmSync(runnerTemp, { recursive: true, force: true });
    }
    const shared = mkdtempSync(path.join(scratch, 'runner-temp-shared-'));
    await sample(entry, shared, mkdtempSync(path.join(scratch, 'tmp-'))); // fills the cache
    const reused: StartupSample[] = [];
    for (let i = 0; i < samples; i++) reused.push(await sample(entry, shared, mkdtempSync(path.join(scratch, 'tmp-'))));
    return { samples, fresh, reused };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function startupMedians(m: StartupMeasurement): {
  firstVisibleLineMs: number;
  readyFreshMs: number;
  readyReusedMs: number;
} {
  return {
    firstVisibleLineMs: median([...m.fresh, ...m.reused].map((s) => s.firstVisibleLineMs)),
    readyFreshMs: median(m.fresh.map((s) => s.readyMs)),
    readyReusedMs: median(m.reused.map((s) => s.readyMs)),
  };
}

// `tsx bench/lib/startup.ts DIST_DIR [SAMPLES]`: the figures for one bundle folder, e.g. to compare a
// build with the one before it.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(fileURLToPath(import.meta.url))) {
  const dir = path.resolve(process.argv[2] ?? 'dist');
  const measured = await measureStartup(dir, Number(process.argv[3] ?? 9) || 9);
  const medians = startupMedians(measured);
  console.log(
    JSON.stringify(
      {
        dist: dir,
        samples: measured.samples,
        loadAverage: os.loadavg(),
        medians,
        fresh: measured.fresh,
        reused: measured.reused,
      },
      null,
      2,
    ),
  );
}
