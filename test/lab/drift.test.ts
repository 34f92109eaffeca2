// Issue 19 item 5, through dist/: drift. After onboarding, a managed file edited by hand on one VM, the
// group's Service and that VM's static WorkloadEntry deleted: verify fails naming the VM and each drift
// (with the file's diff), plan shows the same drift and what onboard would change, onboard repairs it all,
// and verify passes again.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { runAction, snapshotDist, vmOf, type ActionRun } from './action-harness.js';
import { run } from './exec.js';
import type { LabState } from './state.js';
import { downLab, newLabDir, upLab } from './testing.js';
import { execInVm } from './vm/exec.js';

const CLUSTER_ENV = '/var/lib/istio/envoy/cluster.env';
const TOKEN = '/var/lib/istio/tokens/istio-token';

describe('drift through dist/, on real Istio', () => {
  let dir: string;
  let state: LabState;
  let entry: string;
  let inventory: string;

  function kubectl(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return run(['kubectl', '--kubeconfig', state.files.kubeconfig!, ...args], {
      timeoutMs: 30_000,
      allowFailure: true,
    });
  }

  function action(mode: string): Promise<ActionRun> {
    return runAction(state, { mode, inventory }, { entry, timeoutMs: 240_000 });
  }

  function driftOf(result: ActionRun, vm: string): string[] {
    return (vmOf(result.report, vm).drift ?? []).map((record) => `${record.kind} ${record.subject}: ${record.change}`);
  }

  beforeAll(async () => {
    dir = newLabDir('drift');
    state = await upLab(dir, 2);
    entry = await snapshotDist(dir);
    // A static group with a Service: both are cluster objects the group owns.
    const doc = parse(readFileSync(state.files.inventory, 'utf8')) as { groups: Array<Record<string, unknown>> };
    doc.groups[0]!.registration = 'static';
    doc.groups[0]!.service = true;
    inventory = path.join(dir, 'drift.yaml');
    writeFileSync(inventory, stringify(doc));
  }, 300_000);

  afterAll(async () => {
    if (dir) await downLab(dir);
  }, 120_000);

  it('onboard, then verify finds no drift', async () => {
    const onboard = await action('onboard');
    expect([onboard.code, onboard.log.slice(-1500)]).toEqual([0, onboard.log.slice(-1500)]);
    const verify = await action('verify');
    // the drift first: a failure shows each finding with its diff
    expect(['vm1', 'vm2'].map((vm) => vmOf(verify.report, vm).drift)).toEqual([[], []]);
    expect([verify.code, verify.log.slice(-1500)]).toEqual([0, verify.log.slice(-1500)]);
    for (const vm of ['vm1', 'vm2']) expect(vmOf(verify.report, vm).outcome).toBe('verified');
  });

  it('a file edited on vm2, the Service and vm2 WorkloadEntry deleted: verify fails naming the VM and each drift', async () => {
    await execInVm(state, 'vm2', ['sh', '-c', `printf '%s\\n' 'ISTIO_META_EDITED_BY_HAND=yes' >> ${CLUSTER_ENV}`]);
    expect((await kubectl('-n', 'vm-app', 'delete', 'service', 'app')).code).toBe(0);
    expect((await kubectl('-n', 'vm-app', 'delete', 'workloadentry', 'vm2')).code).toBe(0);
    const token = (await execInVm(state, 'vm2', ['cat', TOKEN])).stdout.trim();
    expect(token.length).toBeGreaterThan(20);

    const verify = await action('verify');
    expect(verify.code).not.toBe(0);
    expect(driftOf(verify, 'vm2')).toEqual([
      `file ${CLUSTER_ENV}: edited`,
      'cluster-object Service vm-app/app: missing',
      'cluster-object WorkloadEntry vm-app/vm2: missing',
    ]);
    expect(driftOf(verify, 'vm1')).toEqual(['cluster-object Service vm-app/app: missing']);
    const vm2 = vmOf(verify.report, 'vm2');
    expect(vm2.outcome).toBe('failed');
    expect(vm2.error).toMatchObject({ step: 'drift', hint: 'run onboard to repair' });
    expect(vm2.drift![0]!.diff).toContain('-ISTIO_META_EDITED_BY_HAND=yes');
    expect(verify.outputs.failed?.split(',').sort()).toEqual(['vm1', 'vm2']);
    expect(verify.log).toContain(`[vm2] drift: ${CLUSTER_ENV} was edited on the VM — run onboard to repair`);
    expect(verify.log).toContain('[vm2] drift: WorkloadEntry vm-app/vm2 is missing — run onboard to repair');
    expect(verify.summary).toContain('### Drift');
    expect(verify.summary).toContain(`- **file** \`${CLUSTER_ENV}\` edited`);
    // the token is never compared or shown
    for (const text of [verify.log, verify.summary, JSON.stringify(verify.report)]) {
      expect(text.includes(token)).toBe(false);
    }
    // verify wrote nothing: the objects are still gone, the file still edited
    expect((await kubectl('-n', 'vm-app', 'get', 'service', 'app')).code).not.toBe(0);
    expect((await execInVm(state, 'vm2', ['cat', CLUSTER_ENV])).stdout).toContain('ISTIO_META_EDITED_BY_HAND=yes');
  });

  it('plan shows the same drift and the change onboard would make', async () => {
    const plan = await action('plan');
    expect([plan.code, plan.log.slice(-1500)]).toEqual([0, plan.log.slice(-1500)]);
    expect(driftOf(plan, 'vm2')).toEqual([
      `file ${CLUSTER_ENV}: edited`,
      'cluster-object Service vm-app/app: missing',
      'cluster-object WorkloadEntry vm-app/vm2: missing',
    ]);
    expect(vmOf(plan.report, 'vm2').files.find((file) => file.path === CLUSTER_ENV)).toMatchObject({ changed: true });
    expect(driftOf(plan, 'vm1')).toEqual(['cluster-object Service vm-app/app: missing']);
    expect(plan.report!.cluster!.objects).toContainEqual(
      expect.objectContaining({ kind: 'Service', name: 'app', action: 'would-create' }),
    );
  });

  it('onboard repairs it, and verify passes again', async () => {
    const onboard = await action('onboard');
    expect([onboard.code, onboard.log.slice(-1500)]).toEqual([0, onboard.log.slice(-1500)]);
    expect(vmOf(onboard.report, 'vm2').outcome).toBe('updated');
    // With Istio's agent, root-cert.pem holds the same root in the agent's encoding (no final newline:
    // OUTPUT_CERTS, OutputKeyCertToDir): no drift, and onboard leaves vm1 as it is on either lab.
    expect(vmOf(onboard.report, 'vm1').outcome).toBe('unchanged');
    expect(onboard.report!.cluster!.objects).toContainEqual(
      expect.objectContaining({ kind: 'Service', name: 'app', action: 'created' }),
    );
    expect((await execInVm(state, 'vm2', ['cat', CLUSTER_ENV])).stdout).not.toContain('EDITED_BY_HAND');

    const verify = await action('verify');
    expect([verify.code, verify.log.slice(-1500)]).toEqual([0, verify.log.slice(-1500)]);
    for (const vm of ['vm1', 'vm2']) {
      expect(vmOf(verify.report, vm)).toMatchObject({ outcome: 'verified', drift: [] });
    }
  });
});
