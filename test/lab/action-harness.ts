// Runs the bundled action (dist/index.js) against a lab the way a GitHub runner would: INPUT_*
// variables (from the lab's action.env plus the key, known_hosts and kubeconfig as contents),
// GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, RUNNER_TEMP. Returns what a workflow would see.
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';
import { parseActionEnv } from './files.js';
import type { LabState } from './state.js';
import { node24, REPO_ROOT } from './testing.js';
import type { RunReport } from '../../src/report/model.js';
import type { CheckResult } from '../../src/verify/types.js';

export interface ActionRun {
  code: number;
  /** Everything the action printed, minus ::add-mask:: commands (the runner never shows those). */
  log: string;
  /** The raw stdout, ::add-mask:: lines included. */
  raw: string;
  outputs: Record<string, string>;
  summary: string;
  report: RunReport | undefined;
  durationMs: number;
}

/** The INPUT_* environment for a lab; `inputs` override or add (names as in action.yml). */
export function actionEnvironment(state: LabState, inputs: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...parseActionEnv(readFileSync(state.files.actionEnv, 'utf8')),
    'INPUT_SSH-PRIVATE-KEY': readFileSync(state.files.privateKey, 'utf8'),
    'INPUT_SSH-KNOWN-HOSTS': readFileSync(state.files.knownHosts, 'utf8'),
    INPUT_KUBECONFIG: readFileSync(state.files.kubeconfig ?? path.join(state.dir, 'kubeconfig'), 'utf8'),
    'INPUT_MAX-UNAVAILABLE': '100%',
  };
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value;
  return env;
}

/** Parses the GITHUB_OUTPUT file (name<<delimiter … delimiter blocks, or name=value lines). */
export function parseOutputFile(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heredoc = /^([^<=]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delimiter] = heredoc;
      const value: string[] = [];
      for (i += 1; i < lines.length && lines[i] !== delimiter; i++) value.push(lines[i]!);
      outputs[name!] = value.join('\n');
    } else if (line.includes('=')) {
      outputs[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
    }
  }
  return outputs;
}

/**
 * Copies the bundled action (dist/, without the CLI) into `targetDir` and returns the entry to pass as
 * `runAction(…, { entry })`. Other contributors rebuild dist/ in the shared tree while tests run (the
 * build removes dist/ first); a test that runs the action many times pins one build, as a runner pins
 * the commit it checked out. Waits (bounded) for a dist/index.js to exist.
 */
export async function snapshotDist(targetDir: string, options: { waitMs?: number } = {}): Promise<string> {
  const source = path.join(REPO_ROOT, 'dist');
  const deadline = Date.now() + (options.waitMs ?? 120_000);
  // A build writes index.js at its end, but removes dist/ at its start: take two looks 1 s apart.
  for (let i = 0; i < 240; i++) {
    // The action's files: the entry, the bundle it loads, the post step.
    const complete = () =>
      ['index.js', 'run.js', 'post.js', 'package.json'].every((file) => existsSync(path.join(source, file)));
    if (complete()) {
      await new Promise((r) => setTimeout(r, 1_000));
      if (complete()) break;
    }
    if (Date.now() > deadline)
      throw new Error(`no complete ${source}/index.js within ${options.waitMs ?? 120_000} ms (run npm run build)`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const target = path.join(targetDir, 'dist');
  cpSync(source, target, { recursive: true, filter: (file) => !file.startsWith(path.join(source, 'cli')) });
  return path.join(target, 'index.js');
}

export async function runAction(
  state: LabState,
  inputs: Record<string, string> = {},
  options: {
    timeoutMs?: number;
    /** Bundle to run (default REPO_ROOT/dist/index.js); see snapshotDist. */ entry?: string;
  } = {},
): Promise<ActionRun> {
  const work = mkdtempSync(path.join(state.dir, 'action-'));
  const outputFile = path.join(work, 'output');
  const summaryFile = path.join(work, 'summary');
  const stateFile = path.join(work, 'state');
  writeFileSync(outputFile, '');
  writeFileSync(summaryFile, '');
  writeFileSync(stateFile, '');
  const env = {
    ...actionEnvironment(state, inputs),
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    GITHUB_STATE: stateFile,
    RUNNER_TEMP: work,
    GITHUB_WORKSPACE: work,
  };
  const started = Date.now();
  const result = await run([node24(), options.entry ?? path.join(REPO_ROOT, 'dist', 'index.js')], {
    cwd: work,
    env,
    timeoutMs: options.timeoutMs ?? 300_000,
    allowFailure: true,
  });
  const outputs = parseOutputFile(readFileSync(outputFile, 'utf8'));
  let report: RunReport | undefined;
  try {
    report = JSON.parse(
      readFileSync(outputs['report-path'] ?? path.join(work, 'istio-vm-onboard-report.json'), 'utf8'),
    ) as RunReport;
  } catch {
    report = undefined;
  }
  return {
    code: result.code ?? -1,
    raw: result.stdout,
    log: result.stdout
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n'),
    outputs,
    summary: readFileSync(summaryFile, 'utf8'),
    report,
    durationMs: Date.now() - started,
  };
}

/** One VM's entry in a report, or a clear failure naming what was there. */
export function vmOf(report: RunReport | undefined, name: string): RunReport['vms'][number] {
  const vm = report?.vms.find((entry) => entry.name === name);
  if (!vm)
    throw new Error(
      `no VM ${name} in the report (${report?.vms.map((entry) => entry.name).join(', ') ?? 'no report'})`,
    );
  return vm;
}

/** The checks of one VM in a run's report, by name. */
export function checksOf(r: ActionRun, vm: string): Map<string, CheckResult> {
  return new Map(vmOf(r.report, vm).checks.map((check) => [check.name, check]));
}

/** The end of the action's log without the Kubernetes request lines, for a failing assertion's context. */
export function actionLogTail(r: ActionRun, lines = 60): string {
  return r.log
    .split('\n')
    .filter((line) => !line.startsWith('::debug::kube '))
    .slice(-lines)
    .join('\n');
}
