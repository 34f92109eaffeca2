// The scheduled-verify example's issue step (docs/examples/scheduled-verify.yml), run as the runner runs it
// (bash, jq) against a verify report, with a stand-in `gh` on the PATH that records its calls: one issue
// per drifted VM group, created or updated; closed when every VM of the group verified without drift; a
// group failing its checks without drift keeps its issue; VMs of other shards are not judged.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

interface Step {
  name?: string;
  run?: string;
  env?: Record<string, string>;
}

const workflow = parse(readFileSync('docs/examples/scheduled-verify.yml', 'utf8')) as {
  jobs: { verify: { steps: Step[] } };
};
const step = workflow.jobs.verify.steps.find((candidate) => /drift issue/.test(candidate.name ?? ''));

const vm = (name: string, group: string, outcome: string, drift: object[] = []) => ({
  name,
  group,
  address: `10.0.0.${name.slice(2)}:22`,
  outcome,
  drift,
});
const edited = {
  kind: 'file',
  subject: '/var/lib/istio/envoy/cluster.env',
  change: 'edited',
  detail: '/var/lib/istio/envoy/cluster.env was edited on the VM',
};

function runStep(report: object, openIssues: { number: number; title: string }[]) {
  const dir = mkdtempSync(path.join(tmpdir(), 'scheduled verify '));
  try {
    const log = path.join(dir, 'gh.log');
    const gh = path.join(dir, 'gh');
    writeFileSync(
      gh,
      '#!/bin/bash\nprintf \'%s\\n\' "$*" >> "$GH_LOG"\n' +
        `if [ "$1 $2" = "issue list" ]; then cat <<'JSON'\n${JSON.stringify(openIssues)}\nJSON\nfi\n`,
    );
    chmodSync(gh, 0o755);
    writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report));
    writeFileSync(log, '');
    // As GitHub runs a `run:` script on Linux: `bash --noprofile --norc -eo pipefail {0}`.
    const script = path.join(dir, 'step.sh');
    writeFileSync(script, step!.run!);
    const result = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', script], {
      encoding: 'utf8',
      env: {
        PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        GH_LOG: log,
        RUNNER_TEMP: dir,
        REPORT: path.join(dir, 'report.json'),
        RUN_URL: 'https://github.example/o/r/actions/runs/1',
      },
    });
    const body = (() => {
      try {
        return readFileSync(path.join(dir, 'drift-issue.md'), 'utf8');
      } catch {
        return '';
      }
    })();
    return { code: result.status, stderr: result.stderr, calls: readFileSync(log, 'utf8').trim().split('\n'), body };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('scheduled-verify: one drift issue per VM group', () => {
  it('reads the report through env, with least permissions', () => {
    expect(step?.env).toMatchObject({ REPORT: '${{ steps.verify.outputs.report-path }}' });
    const permissions = (parse(readFileSync('docs/examples/scheduled-verify.yml', 'utf8')) as { permissions: object })
      .permissions;
    expect(permissions).toEqual({ contents: 'read', issues: 'write' });
  });

  it('opens an issue for a drifted group, closes the healthy group’s, keeps a failing group’s open', () => {
    const result = runStep(
      {
        vms: [
          vm('vm1', 'a', 'failed', [edited]),
          vm('vm2', 'a', 'verified'),
          vm('vm3', 'b', 'verified'),
          vm('vm4', 'c', 'failed'),
          vm('vm5', 'd', 'skipped-shard'),
        ],
      },
      [
        { number: 7, title: 'Drift: VM group b' },
        { number: 8, title: 'Drift: VM group c' },
        { number: 9, title: 'Drift: VM group bb' },
      ],
    );
    expect([result.code, result.stderr]).toEqual([0, '']);
    expect(result.calls.filter((call) => !call.startsWith('issue list'))).toEqual([
      expect.stringMatching(/^issue create --title Drift: VM group a --body-file /),
      'issue close 7 --comment Every VM of group b verified without drift: https://github.example/o/r/actions/runs/1',
    ]);
    expect(result.body).toContain('### `vm1` (10.0.0.1:22)');
    expect(result.body).toContain(`- file \`${edited.subject}\`: edited — ${edited.detail}`);
    expect(result.body).not.toContain('vm2');
  });

  it('updates the open issue of a group still drifted instead of opening another', () => {
    const result = runStep({ vms: [vm('vm1', 'a', 'failed', [edited])] }, [{ number: 3, title: 'Drift: VM group a' }]);
    expect(result.code).toBe(0);
    expect(result.calls.filter((call) => !call.startsWith('issue list'))).toEqual([
      expect.stringMatching(/^issue edit 3 --body-file /),
    ]);
  });
});
