// Issue 19 item 2, through dist/ on Istio's real istiods and sidecar: a revision move. The lab runs the default
// istiod and a second real one, revision `canary` (`up --extra-revision canary`: istioctl's revision install, the
// same plugged-in CA), both behind the east-west address's 15012, routed by SNI as expose-istiod-rev routes them.
// Three VMs are onboarded on the default revision, then moved to `canary` with the `revision` input:
//   - with the gateway not exposing istiod-canary (fault revision-unexposed: that SNI reaches the default istiod,
//     which the real pilot-agent refuses — "certificate is valid for … istiod.istio-system.svc, not
//     istiod-canary.istio-system.svc"), the group's canary is moved, fails its checks for that named reason and
//     is rolled back to the default revision; the other VMs are never changed (skipped-canary);
//   - plan shows the move; with the route in place the canary moves first, then the rest; each VM's entry is
//     kept by the canary istiod's pod, and a rerun changes nothing.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { actionLogTail, runAction, vmOf, type ActionRun } from './action-harness.js';
import { upRealLab } from './real-lab.js';
import type { LabState } from './state.js';
import { downLab, faultCli } from './testing.js';
import { execInVm } from './vm/exec.js';

const VMS = ['vm1', 'vm2', 'vm3'];
const DEFAULT_ISTIOD = 'istiod.istio-system.svc:15012';
const CANARY_ISTIOD = 'istiod-canary.istio-system.svc:15012';

let dir: string;
let state: LabState;
let entry: string;

function action(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction(state, { 'max-unavailable': '2', ...inputs }, { entry, timeoutMs: 600_000 });
}

/** The CA_ADDR line of the VM's cluster.env ('' when it sets none: the default revision in istio-system). */
async function caAddressOnVm(vm: string): Promise<string> {
  const r = await execInVm(state, vm, ['sh', '-c', "sed -n 's/^CA_ADDR=//p' /var/lib/istio/envoy/cluster.env"], {
    timeoutMs: 30_000,
  });
  return r.stdout.trim().replace(/^'|'$/g, '');
}

function checkOf(r: ActionRun, vm: string, check: string) {
  return vmOf(r.report, vm).checks.find((c) => c.name === check);
}

beforeAll(async () => {
  ({ dir, state, entry } = await upRealLab('revision-move', VMS.length, ['--extra-revision', 'canary']));
  expect(state.istiod?.extra).toMatchObject({ revision: 'canary' });
}, 900_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('revision move through dist/, two real istiods behind one east-west address', () => {
  it('onboards three VMs on the default revision', async () => {
    const r = await action({ mode: 'onboard' });
    expect([r.code, actionLogTail(r)]).toEqual([0, actionLogTail(r)]);
    for (const vm of VMS) {
      expect(vmOf(r.report, vm)).toMatchObject({ outcome: 'installed' });
      expect(vmOf(r.report, vm).controlPlane).toBeUndefined();
      expect(await caAddressOnVm(vm)).toBe('');
      expect(checkOf(r, vm, 'workload-entry')?.evidence.join('\n')).toContain('kept by istiod pod istiod-lab');
    }
  }, 700_000);

  it('a canary moved to a revision the gateway does not expose fails for that reason and is rolled back; the rest wait', async () => {
    await faultCli(dir, 'fault', 'revision-unexposed');
    let r: ActionRun;
    try {
      r = await action({ mode: 'onboard', revision: 'canary' });
    } finally {
      await faultCli(dir, 'heal', 'revision-unexposed');
    }
    expect([r.code, actionLogTail(r)]).toEqual([1, actionLogTail(r)]);
    const canary = r.report!.vms.find((vm) => vm.canary?.self);
    expect(canary).toBeDefined();
    expect(canary!.outcome).toBe('rolled-back');
    expect(canary!.controlPlane).toEqual({ address: CANARY_ISTIOD, from: DEFAULT_ISTIOD });
    // The real agent's refusal, named: the revision's name reached another istiod.
    const ready = canary!.checks.find((c) => c.name === 'sidecar-ready');
    expect(ready).toMatchObject({ status: 'fail', hintId: 'istiod-name-mismatch' });
    expect(ready!.evidence.join('\n')).toMatch(/certificate is valid for .*, not istiod-canary\.istio-system\.svc/);
    expect(ready!.hint).toContain('expose-istiod-rev.yaml.tmpl');
    expect(canary!.steps.map((s) => `${s.name} ${s.status}`)).toContain('rollback ok');
    for (const vm of VMS.filter((name) => name !== canary!.name)) {
      expect(vmOf(r.report, vm)).toMatchObject({
        outcome: 'skipped-canary',
        canary: { vm: canary!.name, self: false },
      });
      // workload-entry may still pass on the entry the default istiod kept (its grace period after a disconnect).
      expect(vmOf(r.report, vm).error?.message).toMatch(
        new RegExp(
          `^not changed \\(istiod ${DEFAULT_ISTIOD} → ${CANARY_ISTIOD}\\): the group's canary ${canary!.name} was ` +
            'rolled back at verify: checks failed: sidecar-ready, xds-connected, workload-certificate',
        ),
      );
    }
    expect(r.summary).toContain('istiod.istio-system.svc → istiod-canary.istio-system.svc');
    // Nothing moved: every VM dials the default istiod again, and verify on the default revision passes.
    for (const vm of VMS) expect(await caAddressOnVm(vm)).toBe('');
    const after = await action({ mode: 'verify' });
    expect([after.code, actionLogTail(after)]).toEqual([0, actionLogTail(after)]);
  }, 700_000);

  it('plan shows the move before it happens and changes nothing', async () => {
    const r = await action({ mode: 'plan', revision: 'canary' });
    expect([r.code, actionLogTail(r)]).toEqual([0, actionLogTail(r)]);
    for (const vm of VMS) {
      expect(vmOf(r.report, vm).controlPlane).toEqual({ address: CANARY_ISTIOD, from: DEFAULT_ISTIOD });
      expect(r.log).toContain(`would move the sidecar from ${DEFAULT_ISTIOD} to ${CANARY_ISTIOD}`);
      expect(await caAddressOnVm(vm)).toBe('');
    }
  }, 300_000);

  it('moves the canary first, then the others; each entry is then kept by the canary istiod; a rerun changes nothing', async () => {
    const r = await action({ mode: 'onboard', revision: 'canary' });
    expect([r.code, actionLogTail(r)]).toEqual([0, actionLogTail(r)]);
    const canary = r.report!.vms.find((vm) => vm.canary?.self)!;
    expect(canary).toBeDefined();
    const lines = r.log.split('\n');
    const canaryVerified = lines.findIndex((line) => line.includes(`::group::${canary.name}: updated`));
    for (const vm of VMS) {
      const report = vmOf(r.report, vm);
      expect(report.outcome).toBe('updated');
      expect(report.controlPlane).toEqual({ address: CANARY_ISTIOD, from: DEFAULT_ISTIOD });
      expect(await caAddressOnVm(vm)).toBe(CANARY_ISTIOD);
      // workload-entry accepts the entry only once the VM side is done and istiod holds the VM: by then the
      // new agent's connection is the revision's (the old one, draining, kept the default istiod's name on it).
      expect(checkOf(r, vm, 'workload-entry')?.evidence.join('\n')).toContain('kept by istiod pod istiod-canary-lab');
      if (vm === canary.name) continue;
      const applied = lines.findIndex((line) => line.includes(`[${vm}] apply:`));
      expect(applied).toBeGreaterThan(canaryVerified);
    }
    expect(r.summary).toContain('istiod.istio-system.svc → istiod-canary.istio-system.svc');

    const rerun = await action({ mode: 'onboard', revision: 'canary' });
    expect([rerun.code, actionLogTail(rerun)]).toEqual([0, actionLogTail(rerun)]);
    for (const vm of VMS) {
      expect(vmOf(rerun.report, vm)).toMatchObject({ outcome: 'unchanged', restarted: false });
      expect(vmOf(rerun.report, vm).canary).toBeUndefined();
      // The WorkloadEntry still names the istiod pod holding the VM's connection: the revision's.
      expect(checkOf(rerun, vm, 'workload-entry')?.evidence.join('\n')).toContain(
        'kept by istiod pod istiod-canary-lab',
      );
    }
  }, 900_000);
});
