// `npm run bench`: the action against the seed's runbook as a script, Ansible and a lean OpenSSH
// reference, on the lab, in one run; writes bench/results.md and bench/results.json. Not a test:
// nothing here asserts — failed runs are recorded and reported as such.
//
// Environment (for trying it out; the committed results use the defaults):
//   BENCH_SIZES=1,5,10,20   BENCH_REPS=3   BENCH_SLOW_SIZES=1,10 (where (a) and (b) run)
//   BENCH_DEADLINE_MIN=30 (repetitions not started by then are recorded as skipped)
//   BENCH_OUT=bench (where results.md/json go)
//   BENCH_ONLY=startup (only the action's start-up, bench/lib/startup.ts: no lab, no root, ~1 min; prints a
//     table and writes nothing)
//   BENCH_ONLY=render (no measuring: results.md and the summary in results.json written again from the raw
//     measurements in BENCH_OUT/results.json, judged by the current goals)
//   BENCH_STARTUP_BEFORE=DIR[,DIR…] (bundle folders to compare the start-up with, measured in the same run,
//     samples interleaved; e.g. the committed bundle: `git archive HEAD dist | tar -x -C SOMEWHERE`, then
//     SOMEWHERE/dist)
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../test/lab/exec.js';
import { REPO_ROOT } from '../test/lab/testing.js';
import { runActionMeasured } from './lib/action.js';
import { ensureAnsible, runBaseline, type BaselineName } from './lib/baselines.js';
import { snapshotDist } from './lib/dist.js';
import {
  labDown,
  labUp,
  PACKAGE_SIZE_MB,
  removeBaselineFiles,
  renderBaselineFiles,
  resetVms,
  type BenchLab,
} from './lib/lab.js';
import { measurePlan } from './lib/plan.js';
import {
  measureStartups,
  startupComparisonTable,
  startupMedians,
  type StartupComparison,
  type StartupMeasurement,
} from './lib/startup.js';
import { renderMarkdown, summarize, type Machine, type RawResults, type Repetition } from './lib/results.js';
import { secs } from './lib/stats.js';

const list = (value: string | undefined, fallback: number[]): number[] =>
  value
    ? value
        .split(',')
        .map((v) => Number(v.trim()))
        .filter((v) => Number.isInteger(v) && v > 0)
    : fallback;

const SIZES = list(process.env.BENCH_SIZES, [1, 5, 10, 20]);
const REPS = Math.max(1, Math.min(5, Number(process.env.BENCH_REPS ?? 3) || 3));
const SLOW_SIZES = list(process.env.BENCH_SLOW_SIZES, [1, 10]);
const DEADLINE_MS = (Number(process.env.BENCH_DEADLINE_MIN ?? 30) || 30) * 60_000;
const OUT_DIR = path.resolve(REPO_ROOT, process.env.BENCH_OUT ?? 'bench');
const PLAN_REPS = 3;
const STARTUP_SAMPLES = 11;
const ONLY = process.env.BENCH_ONLY ?? '';
const STARTUP_BEFORE = (process.env.BENCH_STARTUP_BEFORE ?? '')
  .split(',')
  .map((dir) => dir.trim())
  .filter((dir) => dir !== '');

const started = performance.now();
function log(line: string): void {
  process.stderr.write(`[bench ${secs(performance.now() - started).padStart(6)} s] ${line}\n`);
}

async function machine(ansible: string): Promise<Machine> {
  const ssh = await run(['ssh', '-V'], { allowFailure: true });
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: os.availableParallelism(),
    memoryGiB: os.totalmem() / 1024 ** 3,
    kernel: os.release(),
    node: process.version,
    openssh: (ssh.stderr || ssh.stdout).trim().split(',')[0] ?? 'OpenSSH',
    ansible,
    loadAverageStart: os.loadavg(),
    loadAverageEnd: [],
  };
}

async function repetition(vms: number, index: number, distDir: string): Promise<Repetition> {
  const rep: Repetition = {
    vms,
    repetition: index,
    loadAverage1m: os.loadavg()[0] ?? Number.NaN,
    baselines: [],
    errors: [],
    notes: [],
  };
  let lab: BenchLab | undefined;
  let filesRoot: string | undefined;
  try {
    lab = await labUp(vms);
    rep.labUpMs = lab.upMs;
    log(`${vms} VM(s) #${index}: lab up in ${secs(lab.upMs)} s`);
    rep.first = await runActionMeasured(lab, distDir, 'first');
    log(
      `${vms} VM(s) #${index}: action first install ${rep.first.ok ? 'ok' : 'FAILED'}: onboarding ${secs(rep.first.onboardingMs)} s, verification ${secs(rep.first.verificationMs)} s, whole ${secs(rep.first.wallMs)} s${rep.first.ok ? '' : ` — ${rep.first.problems.join('; ')}`}`,
    );
    if (rep.first.ok) {
      rep.rerun = await runActionMeasured(lab, distDir, 'rerun');
      log(
        `${vms} VM(s) #${index}: action rerun ${rep.rerun.ok ? 'ok' : 'FAILED'}: whole ${secs(rep.rerun.wallMs)} s, restarts ${rep.rerun.restarts}${rep.rerun.ok ? '' : ` — ${rep.rerun.problems.join('; ')}`}`,
      );
    } else {
      // after a failed first install the failed VMs are rolled back: a rerun would reinstall them, which
      // is not "a rerun with no changes" — so it is not run (and saves the time budget)
      rep.notes.push('rerun not run: the first install did not fully succeed');
    }
    filesRoot = await renderBaselineFiles(lab, distDir);
    const baselines: BaselineName[] = SLOW_SIZES.includes(vms) ? ['lean', 'runbook', 'ansible'] : ['lean'];
    for (const name of baselines) {
      await resetVms(lab);
      const b = await runBaseline(name, lab, filesRoot);
      rep.baselines.push(b);
      log(
        `${vms} VM(s) #${index}: ${name} ${b.ok ? 'ok' : 'FAILED'} in ${secs(b.wallMs)} s${b.ok ? '' : ` — ${b.problems.join('; ')}`}`,
      );
    }
  } catch (error) {
    rep.errors.push(error instanceof Error ? error.message : String(error));
    log(`${vms} VM(s) #${index}: ERROR ${rep.errors.at(-1)}`);
  } finally {
    if (filesRoot) removeBaselineFiles(filesRoot);
    if (lab) {
      const problem = await labDown(lab.dir);
      if (problem) rep.notes.push(problem);
    }
  }
  return rep;
}

/** The action's start-up alone, for the bundle under test and each BENCH_STARTUP_BEFORE folder (interleaved). */
async function startupPart(distDir: string): Promise<{ startup: StartupMeasurement; compared: StartupComparison[] }> {
  const before = STARTUP_BEFORE.map((dir) => path.resolve(dir));
  for (const dir of before) {
    if (!existsSync(path.join(dir, 'index.js'))) throw new Error(`BENCH_STARTUP_BEFORE: no index.js in ${dir}`);
  }
  const [startup, ...others] = await measureStartups([distDir, ...before], STARTUP_SAMPLES);
  const compared = others.map((measurement, i) => ({ label: STARTUP_BEFORE[i]!, measurement }));
  const figures = startupMedians(startup!);
  log(
    `start-up: first log line ${secs(figures.firstVisibleLineMs)} s; rollout ready ${secs(figures.readyFreshMs)} s fresh, ${secs(figures.readyReusedMs)} s with the compile cache (medians of ${STARTUP_SAMPLES})`,
  );
  return { startup: startup!, compared };
}

/** BENCH_ONLY=render: the last run's raw measurements judged and written again (after a change of the goals). */
function renderAgain(): void {
  const file = path.join(OUT_DIR, 'results.json');
  const { raw } = JSON.parse(readFileSync(file, 'utf8')) as { raw: RawResults };
  const summary = summarize(raw);
  writeFileSync(file, JSON.stringify({ summary, raw }, null, 2) + '\n');
  writeFileSync(path.join(OUT_DIR, 'results.md'), renderMarkdown(raw, summary));
  log(`wrote ${path.relative(REPO_ROOT, path.join(OUT_DIR, 'results.md'))} again from the measurements of ${raw.date}`);
}

/** BENCH_ONLY=startup: the start-up part alone, printed as a table (nothing written). */
async function startupOnly(): Promise<void> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ivo-bench-'));
  try {
    const dist = await snapshotDist(path.join(scratch, 'dist'));
    log(`bundle: ${dist.source} (${dist.actionSha256.slice(0, 12)}); load average ${os.loadavg().join(', ')}`);
    const { startup, compared } = await startupPart(dist.dir);
    process.stdout.write(`${startupComparisonTable(startup, compared).join('\n')}\n`);
    log(`load average ${os.loadavg().join(', ')}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (ONLY === 'startup') return startupOnly();
  if (ONLY === 'render') return renderAgain();
  if (ONLY !== '') throw new Error(`BENCH_ONLY=${ONLY}: only "startup" or "render" can run alone`);
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (the lab creates network namespaces)');
  log(`sizes ${SIZES.join(',')}, ${REPS} repetition(s), (a)/(b) at ${SLOW_SIZES.join(',')} VM(s)`);
  const ansible = await ensureAnsible();
  const info = await machine(ansible);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ivo-bench-'));
  try {
    const dist = await snapshotDist(path.join(scratch, 'dist'));
    log(`bundle: ${dist.source} (${dist.actionSha256.slice(0, 12)})`);
    // first, while no lab of ours runs: the pure part of planning 1,000 VMs
    const plan = await measurePlan(dist.dir, PLAN_REPS);
    log(
      `1,000-VM render: ${plan.map((p) => `${secs(p.wallMs)} s / ${Math.round(p.maxRssKiB / 1024)} MiB${p.ok ? '' : ' FAILED'}`).join(', ')}`,
    );
    // also before any lab: the action's start-up alone (the machine may still be shared: medians)
    const { startup, compared: startupCompared } = await startupPart(dist.dir);
    const repetitions: Repetition[] = [];
    // Repetitions interleave the sizes (1,5,10,20, 1,5,10,20, …) so that slow drift of the shared
    // machine's load spreads over all sizes instead of landing on one.
    for (let index = 1; index <= REPS; index++) {
      for (const vms of SIZES) {
        if (performance.now() - started > DEADLINE_MS) {
          repetitions.push({
            vms,
            repetition: index,
            loadAverage1m: os.loadavg()[0] ?? Number.NaN,
            baselines: [],
            errors: [],
            notes: [],
            skipped: `benchmark deadline of ${DEADLINE_MS / 60_000} min reached`,
          });
          continue;
        }
        repetitions.push(await repetition(vms, index, dist.dir));
      }
    }
    info.loadAverageEnd = os.loadavg();
    const { dir: _dir, ...distInfo } = dist;
    const raw: RawResults = {
      date: new Date().toISOString(),
      command: 'npm run bench',
      totalMs: performance.now() - started,
      machine: info,
      config: {
        sizes: SIZES,
        repetitions: REPS,
        slowBaselineSizes: SLOW_SIZES,
        packageSizeMB: PACKAGE_SIZE_MB,
        freshLabPerRepetition: true,
      },
      dist: distInfo,
      repetitions,
      plan,
      startup,
      ...(startupCompared.length > 0 ? { startupCompared } : {}),
    };
    const summary = summarize(raw);
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(path.join(OUT_DIR, 'results.json'), JSON.stringify({ summary, raw }, null, 2) + '\n');
    writeFileSync(path.join(OUT_DIR, 'results.md'), renderMarkdown(raw, summary));
    log(
      `wrote ${path.relative(REPO_ROOT, path.join(OUT_DIR, 'results.md'))} and results.json in ${secs(raw.totalMs)} s`,
    );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
