// Issue 19 item 1, through dist/ on Istio's real istiod and sidecar: a fleet sidecar upgrade. Four VMs are
// onboarded at the lab's version A; the lab serves two more versions of the same package, B and C, each
// declaring a dependency A did not have. A VM whose dpkg database lacks it refuses the new version for that
// real reason: dpkg leaves it unconfigured, and the apply fails.
//   - B depends on faketime (on the lab machine, so on every VM) and vm3 has it removed: the group's canary
//     is upgraded and checked first (the log order shows it), vm3 is rolled back to A and checked healthy
//     there, the other two are upgraded; the report, summary and plan show from → to; the job fails naming vm3.
//   - C depends on a package no VM has: the canary fails and is rolled back, the rest of the group is
//     skipped-canary (never changed), each naming the canary and why.
//   - a version Istio does not support with this istiod is refused before any VM is touched.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { actionLogTail, runAction, snapshotDist, vmOf, type ActionRun } from './action-harness.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { downLab, newLabDir, upLab } from './testing.js';
import { execInVm } from './vm/exec.js';

const VMS = ['vm1', 'vm2', 'vm3', 'vm4'];
const DEPENDENCY = 'faketime';
/** A package no VM has (C's new dependency). */
const ABSENT_DEPENDENCY = 'ivo-lab-runtime';

let dir: string;
let state: LabState;
let entry: string;
let versionA: string;
let versionB: string;
let versionC: string;

/** The real istiod's minor, patch n (the lab labels its package x.y.0). */
function patch(version: string, n: number): string {
  return version.replace(/\.\d+$/, `.${n}`);
}

function extraPackage(version: string) {
  const extra = state.package.extra?.find((item) => item.version === version);
  if (!extra) throw new Error(`the lab serves no ${version}`);
  return extra;
}

function action(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction(state, { 'max-unavailable': '2', ...inputs }, { entry, timeoutMs: 600_000 });
}

function upgradeTo(version: string, mode = 'onboard'): Promise<ActionRun> {
  return action({ mode, 'istio-version': version, 'sidecar-package-sha256': extraPackage(version).sha256 });
}

async function installedVersion(vm: string): Promise<string> {
  const r = await execInVm(state, vm, ['dpkg-query', '-W', '-f=${Version}', 'istio-sidecar'], { timeoutMs: 30_000 });
  return r.stdout.trim();
}

async function removeDependency(vm: string): Promise<void> {
  const r = await execInVm(state, vm, ['dpkg', '--remove', DEPENDENCY], { timeoutMs: 60_000, allowFailure: true });
  expect([r.code, r.stderr]).toEqual([0, r.stderr]);
}

/** Where in the log a VM's apply line stands. */
function applyLine(r: ActionRun, vm: string): number {
  return r.log.split('\n').findIndex((line) => line.includes(`[${vm}] apply: package upgraded`));
}

beforeAll(async () => {
  istioBuild();
  realSidecarSources();
  const release = istioBuild().version;
  versionA = `${/^\d+\.\d+/.exec(release)![0]}.0`;
  versionB = patch(versionA, 1);
  versionC = patch(versionA, 2);
  dir = newLabDir('fleet-upgrade');
  state = await upLab(dir, VMS.length, [
    '--extra-versions',
    `${versionB},${versionC}`,
    '--extra-depends',
    `${versionB}=${DEPENDENCY},${versionC}=${ABSENT_DEPENDENCY}`,
  ]);
  expect(state.istioVersion).toBe(versionA);
  entry = await snapshotDist(dir);
}, 900_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('fleet sidecar upgrade through dist/, real istiod and sidecar', () => {
  it(`onboards four VMs at the lab's version`, async () => {
    const r = await action({ mode: 'onboard' });
    expect([r.code, actionLogTail(r)]).toEqual([0, actionLogTail(r)]);
    for (const vm of VMS) {
      expect(vmOf(r.report, vm)).toMatchObject({ outcome: 'installed', package: { version: versionA } });
      expect(await installedVersion(vm)).toBe(versionA);
    }
  }, 700_000);

  it('plan shows the upgrade before it happens', async () => {
    const r = await upgradeTo(versionB, 'plan');
    expect([r.code, actionLogTail(r)]).toEqual([0, actionLogTail(r)]);
    for (const vm of VMS) {
      expect(vmOf(r.report, vm).package).toEqual({ version: versionB, action: 'upgraded', from: versionA });
      expect(r.log).toContain(`[${vm}] plan: package would be upgraded ${versionA} → ${versionB};`);
      expect(await installedVersion(vm)).toBe(versionA);
    }
  }, 700_000);

  it('upgrades the canary first; vm3, which lacks the new dependency, is rolled back and healthy on the old version', async () => {
    await removeDependency('vm3');
    const r = await upgradeTo(versionB);
    expect([r.code, actionLogTail(r)]).toEqual([1, actionLogTail(r)]);
    const canary = VMS.find((vm) => vmOf(r.report, vm).canary?.self);
    // with max-unavailable 2 the first two VMs start: one of them is the canary
    expect(['vm1', 'vm2']).toContain(canary);
    expect(r.log).toContain(
      `[${canary}] canary of group ${vmOf(r.report, canary!).group}: sidecar ${versionA} → ${versionB} first`,
    );
    // the canary's upgrade and checks come before any other VM's apply
    const canaryDone = r.log.split('\n').findIndex((line) => line.includes(`${canary}: updated`));
    expect(applyLine(r, canary!)).toBeGreaterThanOrEqual(0);
    expect(canaryDone).toBeGreaterThan(applyLine(r, canary!));
    for (const vm of VMS.filter((name) => name !== canary && name !== 'vm3')) {
      expect(applyLine(r, vm)).toBeGreaterThan(canaryDone);
      expect(vmOf(r.report, vm)).toMatchObject({
        outcome: 'updated',
        package: { version: versionB, action: 'upgraded', from: versionA },
        canary: { vm: canary, self: false },
      });
      expect(await installedVersion(vm)).toBe(versionB);
    }
    expect(vmOf(r.report, canary!).outcome).toBe('updated');
    expect(await installedVersion(canary!)).toBe(versionB);

    const vm3 = vmOf(r.report, 'vm3');
    expect(vm3.outcome).toBe('rolled-back');
    expect(vm3.error?.step).toBe('apply');
    expect(vm3.error?.message).toContain(DEPENDENCY);
    expect(vm3.afterRollback).toMatchObject({ healthy: true, version: versionA });
    expect(vm3.afterRollback?.checks.every((check) => check.status !== 'fail')).toBe(true);
    expect(await installedVersion('vm3')).toBe(versionA);

    expect(r.outputs.failed).toBe('vm3');
    expect(r.log).toContain(`[${canary}] apply: package upgraded ${versionA} → ${versionB};`);
    expect(r.summary).toContain(`| ✅ updated | ${versionA} → ${versionB} |`);
    expect(r.summary).toContain(`| ↩️ rolled-back | ${versionA} → ${versionB} (rolled back to ${versionA}) |`);
    expect(r.summary).toContain(`- **after rollback**: healthy again on ${versionA} (every check passed)`);
  }, 700_000);

  it('a canary that fails the new version is rolled back and the rest of the group is not started', async () => {
    const r = await upgradeTo(versionC);
    expect([r.code, actionLogTail(r)]).toEqual([1, actionLogTail(r)]);
    const canary = VMS.find((vm) => vmOf(r.report, vm).canary?.self)!;
    expect(canary).toBeDefined();
    expect(vmOf(r.report, canary)).toMatchObject({
      outcome: 'rolled-back',
      afterRollback: { healthy: true },
      error: { step: 'apply', message: expect.stringContaining(ABSENT_DEPENDENCY) },
    });
    expect(await installedVersion(canary)).toBe(canary === 'vm3' ? versionA : versionB);
    for (const vm of VMS.filter((name) => name !== canary)) {
      const report = vmOf(r.report, vm);
      expect(report.outcome).toBe('skipped-canary');
      expect(report.error?.step).toBe('canary');
      expect(report.error?.message).toContain(`the group's canary ${canary} was rolled back at apply:`);
      expect(r.log).not.toContain(`[${vm}] apply:`);
      expect(await installedVersion(vm)).toBe(vm === 'vm3' ? versionA : versionB);
    }
    expect(r.outputs.failed).toBe(canary);
    expect(JSON.parse(r.outputs.result!).skipped).toHaveLength(3);
    expect(r.summary).toContain('⏭️ skipped-canary');
  }, 700_000);

  it('refuses a sidecar newer than istiod before touching any VM, with the rule and its source', async () => {
    const newer = versionA.replace(
      /^(\d+)\.(\d+)\..*$/,
      (_, major: string, minor: string) => `${major}.${Number(minor) + 1}.0`,
    );
    const r = await action({ mode: 'onboard', 'istio-version': newer });
    expect(r.code).not.toBe(0);
    expect(r.report?.fatal).toMatchObject({ stage: 'version-skew', hintId: 'version-skew' });
    expect(r.report?.fatal?.message).toContain('the data plane cannot be ahead of the control plane');
    expect(r.report?.fatal?.message).toContain('https://istio.io/latest/docs/releases/supported-releases/');
    for (const vm of VMS) {
      expect(vmOf(r.report, vm)).toMatchObject({ outcome: 'skipped-preflight', steps: [] });
    }
    expect(r.log).not.toMatch(/\[vm\d\] connect:/);
    expect(r.summary).toContain('**version-skew**');
  }, 300_000);
});
