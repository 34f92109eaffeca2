// Start-up of the bundled action, alone: spawn `node dist/index.js` (mode plan, a one-VM inline
// inventory) → its first visible log line, and → the rollout's first line (`plan: 1 VM(s) …`: everything
// loaded, inputs and inventory checked). The child is then killed (by its pid) before it reaches the
// cluster, whose kubeconfig points at a closed loopback port anyway; nothing leaves the machine. Each
// sample gets private, empty RUNNER_TEMP and TMPDIR folders. Two ways, each over the same number of samples:
//   fresh  — a fresh runner: RUNNER_TEMP empty, so Node's compile cache (src/main.ts) is empty too;
//   reused — a second use of the action in the same job: the compile cache an earlier step wrote (that
//            step runs to its end — a plan against the closed port fails within seconds — because Node
//            writes the cache as the process exits, and a killed process writes none).
// The first visible line does not depend on the cache (it is printed before dist/run.js is loaded).
// Several bundle folders (e.g. the build before a change and after it) are measured in one run with
// their samples interleaved (A, B, A, B, …), so drifting load on a shared machine hits them alike: compare
// their ratios, not their absolute figures across runs.
// Not a test: nothing asserts; the figures go to bench/results.md.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { node24 } from '../../test/lab/testing.js';
import { median, num, ratio } from './stats.js';
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

/** One start; `untilExit`: let it run to its end (to write the compile cache) instead of killing it when ready. */
function sample(entry: string, runnerTemp: string, tmp: string, untilExit = false): Promise<StartupSample> {
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
        if (line.startsWith('plan: ') && Number.isNaN(readyMs)) {
          readyMs = now;
          if (!untilExit) child.kill('SIGKILL');
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
  const [measured] = await measureStartups([distDir], samples);
  return measured!;
}

/**
 * The same for several bundle folders in one run, their samples interleaved (A, B, A, B, …; the order
 * alternates each round so neither always goes first). Returns one measurement per folder, in order.
 */
export async function measureStartups(distDirs: string[], samples: number): Promise<StartupMeasurement[]> {
  const entries = distDirs.map((dir) => path.join(dir, 'index.js'));
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ivo-bench-startup-'));
  const tmp = () => mkdtempSync(path.join(scratch, 'tmp-'));
  const order = (round: number) => entries.map((_, i) => i).sort((a, b) => (round % 2 === 0 ? a - b : b - a));
  try {
    const results: StartupMeasurement[] = entries.map(() => ({ samples, fresh: [], reused: [] }));
    for (let round = 0; round < samples; round++) {
      for (const i of order(round)) {
        const runnerTemp = mkdtempSync(path.join(scratch, 'runner-temp-'));
        results[i]!.fresh.push(await sample(entries[i]!, runnerTemp, tmp()));
        rmSync(runnerTemp, { recursive: true, force: true });
      }
    }
    // one runner per bundle: an earlier step of the job fills its compile cache, later steps reuse it
    const shared = entries.map(() => mkdtempSync(path.join(scratch, 'runner-temp-shared-')));
    for (const [i, entry] of entries.entries()) await sample(entry, shared[i]!, tmp(), true);
    for (let round = 0; round < samples; round++) {
      for (const i of order(round)) results[i]!.reused.push(await sample(entries[i]!, shared[i]!, tmp()));
    }
    return results;
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

/** A bundle folder measured beside the one under test (BENCH_STARTUP_BEFORE), by the name it was given. */
export interface StartupComparison {
  label: string;
  measurement: StartupMeasurement;
}

/**
 * A markdown table: the bundle under test and each compared one, medians, and the bundle under test's
 * figure as a ratio of the compared one's (below 1× = faster). Samples of one run, interleaved.
 */
export function startupComparisonTable(current: StartupMeasurement, compared: StartupComparison[]): string[] {
  const now = startupMedians(current);
  const cell = (value: number, base?: number) =>
    base === undefined ? `${num(value)} ms` : `${num(value)} ms (this build ${ratio(base / value)})`;
  const lines = [
    `| bundle (median of ${current.samples} starts each, interleaved) | spawn → first log line | → rollout ready, fresh runner | → rollout ready, compile cache of an earlier step |`,
    '| --- | ---: | ---: | ---: |',
    `| this build | ${cell(now.firstVisibleLineMs)} | ${cell(now.readyFreshMs)} | ${cell(now.readyReusedMs)} |`,
  ];
  for (const { label, measurement } of compared) {
    const then = startupMedians(measurement);
    lines.push(
      `| ${label} | ${cell(then.firstVisibleLineMs, now.firstVisibleLineMs)} | ${cell(then.readyFreshMs, now.readyFreshMs)} | ${cell(then.readyReusedMs, now.readyReusedMs)} |`,
    );
  }
  return lines;
}

// `tsx bench/lib/startup.ts DIST_DIR [SAMPLES]`: the figures for one bundle folder (the whole start-up
// part of the bench, with a comparison, is `BENCH_ONLY=startup npm run bench`).
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(fileURLToPath(import.meta.url))) {
  const dir = path.resolve(process.argv[2] ?? 'dist');
  const measured = await measureStartup(dir, Number(process.argv[3] ?? 11) || 11);
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
