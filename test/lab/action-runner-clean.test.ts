// A clean runner (issue 19 item 6), through dist/: after the main step — passed, or cancelled the way
// GitHub's runner cancels — the post step (dist/post.js, action.yml runs.post with post-if: always())
// leaves nothing of the action's in RUNNER_TEMP or TMPDIR, and no process of the run survives. The report
// stays, and only where report-path says.
//
// The runner's cancellation, from GitHub's workflow cancellation reference
// (https://docs.github.com/en/actions/reference/workflow-cancellation-reference): SIGINT to the step's
// entry process (node); if it has not exited within 7500 ms, SIGTERM; if it still runs 2500 ms later,
// the runner kills the process tree. The post step then runs with the state the main step saved
// (GITHUB_STATE → STATE_* variables).
//
// Each run gets private, empty RUNNER_TEMP and TMPDIR folders. The runner's own files (GITHUB_OUTPUT,
// GITHUB_STATE, GITHUB_STEP_SUMMARY) and the workspace live elsewhere: they are not the action's.
//
// The lab runs on real Istio: the cancelled run is interrupted while it
// onboards against the real istiod, and the passing run onboards a VM whose real pilot-agent starts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { actionEnvironment, parseOutputFile } from './action-harness.js';
import { run } from './exec.js';
import type { LabState } from './state.js';
import { upRealLab } from './real-lab.js';
import { downLab, node24, processGone } from './testing.js';

let dir: string | undefined;
let state: LabState;
let distDir: string;

interface RunnerJob {
  runnerTemp: string;
  tmp: string;
  files: string;
  workspace: string;
  reportPath: string;
}

function newJob(name: string): RunnerJob {
  const root = mkdtempSync(path.join(state.dir, `${name} `));
  const job: RunnerJob = {
    runnerTemp: path.join(root, 'runner temp'),
    tmp: path.join(root, 'tmp'),
    files: path.join(root, 'runner files'),
    workspace: path.join(root, 'workspace'),
    reportPath: path.join(root, 'reports', 'report.json'),
  };
  for (const folder of [job.runnerTemp, job.tmp, job.files, job.workspace]) mkdirSync(folder, { recursive: true });
  for (const file of ['output', 'state', 'summary']) writeFileSync(path.join(job.files, file), '');
  return job;
}

function stepEnvironment(job: RunnerJob, inputs: Record<string, string>): Record<string, string> {
  return {
    ...actionEnvironment(state, { 'report-path': job.reportPath, ...inputs }),
    RUNNER_TEMP: job.runnerTemp,
    TMPDIR: job.tmp,
    GITHUB_WORKSPACE: job.workspace,
    GITHUB_OUTPUT: path.join(job.files, 'output'),
    GITHUB_STATE: path.join(job.files, 'state'),
    GITHUB_STEP_SUMMARY: path.join(job.files, 'summary'),
  };
}

/** Every path under a folder (relative), folders included. */
function tree(folder: string): string[] {
  const found: string[] = [];
  const walk = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      found.push(path.relative(folder, full));
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(folder);
  return found.sort();
}

/** Live processes (not zombies) in a process group, or whose cwd or open files are in one of `folders`. */
function survivors(pgid: number, folders: string[]): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const pid = Number(name);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const inGroup = Number(fields[2]) === pgid;
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      const touches = folders.some((folder) => cwd === folder || cwd.startsWith(`${folder}/`));
      if (inGroup || touches) found.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

const exited = (child: ChildProcess, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });

/**
 * Runs the main step; when `cancelOn` matches a log line, cancels it as the runner does. Returns the
 * log, the signals sent, and the process group it ran in.
 */
async function mainStep(
  job: RunnerJob,
  inputs: Record<string, string>,
  cancelOn?: RegExp,
): Promise<{ log: string; signals: string[]; pgid: number; code: number | null }> {
  // Its own process group, so "the process tree" can be killed as one (by its id).
  const child = spawn(node24(), [path.join(distDir, 'index.js')], {
    cwd: job.workspace,
    env: stepEnvironment(job, inputs),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pgid = child.pid!;
  let log = '';
  const signals: string[] = [];
  const cancelled = new Promise<void>((resolve) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      log += chunk.toString('utf8');
      if (cancelOn && cancelOn.test(log)) resolve();
    });
    child.once('exit', () => resolve());
  });
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
  try {
    if (cancelOn) {
      await Promise.race([cancelled, exited(child, 240_000)]);
      if (child.exitCode === null && child.signalCode === null) {
        signals.push('SIGINT');
        child.kill('SIGINT');
        if (!(await exited(child, 7_500))) {
          signals.push('SIGTERM');
          child.kill('SIGTERM');
          if (!(await exited(child, 2_500))) signals.push('SIGKILL');
        }
      }
    }
    await exited(child, cancelOn ? 0 : 240_000);
  } finally {
    // The runner kills the process tree; here the tree is the process group (also after a failed assertion).
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // the group is empty
    }
    await exited(child, 5_000);
  }
  return { log, signals, pgid, code: child.exitCode };
}

async function postStep(job: RunnerJob): Promise<{ code: number | null; log: string }> {
  const saved = parseOutputFile(readFileSync(path.join(job.files, 'state'), 'utf8'));
  const env: Record<string, string> = { ...stepEnvironment(job, {}) };
  for (const [name, value] of Object.entries(saved)) env[`STATE_${name}`] = value;
  const result = await run([node24(), path.join(distDir, 'post.js')], {
    cwd: job.workspace,
    env,
    timeoutMs: 60_000,
    allowFailure: true,
  });
  return { code: result.code, log: result.stdout + result.stderr };
}

beforeAll(async () => {
  let entry: string;
  ({ dir, state, entry } = await upRealLab('action-runner-clean', 1));
  distDir = path.dirname(entry);
}, 600_000);

afterAll(async () => {
  if (!dir) return;
  const result = await downLab(dir);
  expect(result.code).toBe(0);
}, 120_000);

describe('nothing of the action is left on the runner after its post step', () => {
  it('a run cancelled mid-onboarding (SIGINT, SIGTERM after 7.5 s, the tree killed 2.5 s later), then the post step', async () => {
    const job = newJob('cancelled');
    const main = await mainStep(job, { context: 'lab' }, /^\[vm1\] /m);
    expect(main.signals[0]).toBe('SIGINT');
    expect(main.log).toMatch(/^istio-vm-onboard \S+: mode onboard, inventory /m);
    // The precondition that makes the rest mean something: the main step did write on the runner.
    expect(tree(job.runnerTemp)).not.toEqual([]);
    expect(processGone(main.pgid)).toBe(true);

    const post = await postStep(job);
    expect({ runnerTemp: tree(job.runnerTemp), tmp: tree(job.tmp) }).toEqual({ runnerTemp: [], tmp: [] });
    expect([post.code, post.log]).toEqual([0, expect.stringContaining(`removed ${job.runnerTemp}`)]);
    expect(survivors(main.pgid, [job.runnerTemp, job.tmp, job.workspace])).toEqual([]);
  }, 300_000);

  it('a run that passes: the post step leaves only the report, where report-path says', async () => {
    const job = newJob('passed');
    const main = await mainStep(job, { context: 'lab', 'verify-after-onboard': 'false' });
    expect([main.code, main.log.slice(-1500)]).toEqual([0, expect.anything()]);
    expect(tree(job.runnerTemp)).not.toEqual([]);

    const post = await postStep(job);
    expect(post.code).toBe(0);
    expect({ runnerTemp: tree(job.runnerTemp), tmp: tree(job.tmp) }).toEqual({ runnerTemp: [], tmp: [] });
    expect(existsSync(job.reportPath)).toBe(true);
    expect(tree(job.workspace)).toEqual([]);
    expect(survivors(main.pgid, [job.runnerTemp, job.tmp, job.workspace])).toEqual([]);
  }, 300_000);
});
