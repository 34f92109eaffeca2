import { describe, expect, it } from '@jest/globals';
import {
  groupJobRunner,
  meshProbeFromCluster,
  vmProbeFromSession,
  workloadEntryViewOf,
} from '../../src/verify/adapters.js';
import type { GroupVerificationJobInput } from '../../src/cluster/verification-job.js';
import type { VerificationJobSpec } from '../../src/verify/ports.js';

describe('verification adapters', () => {
  it('maps a WorkloadEntryInfo to the view the check reads', () => {
    const view = workloadEntryViewOf({
      name: 'vm-app-10.0.0.5',
      namespace: 'vm-ns',
      address: '10.0.0.5',
      labels: { app: 'vm-app' },
      autoRegistered: true,
      group: 'vm-app',
      healthy: 'False',
      healthMessage: 'connection refused',
    });
    expect(view).toEqual({
      metadata: {
        name: 'vm-app-10.0.0.5',
        namespace: 'vm-ns',
        annotations: { 'istio.io/autoRegistrationGroup': 'vm-app' },
      },
      spec: { address: '10.0.0.5', labels: { app: 'vm-app' } },
      status: { conditions: [{ type: 'Healthy', status: 'False', message: 'connection refused' }] },
    });
    expect(
      workloadEntryViewOf({ name: 's', namespace: 'n', address: 'a', labels: {}, autoRegistered: false }).status,
    ).toBeUndefined();
  });

  it('passes calls through to the session and the cluster client', async () => {
    const execs: unknown[] = [];
    const vm = vmProbeFromSession({
      exec: async (script, o) => (execs.push([script, o]), { code: 0, stdout: 'x', stderr: '' }),
    });
    expect(await vm.runScript('echo', { timeoutMs: 5 })).toEqual({ code: 0, stdout: 'x', stderr: '' });
    expect(execs).toEqual([['echo', { timeoutMs: 5 }]]);
    const asked: unknown[] = [];
    const mesh = meshProbeFromCluster(
      {
        findWorkloadEntryFor: async (ns, group, address) => (asked.push([ns, group, address]), undefined),
        runVerificationJob: async () => ({ succeeded: true, calls: [{ n: 1, code: '200' }], logs: '' }),
        getPeerAuthenticationMode: async () => ({ mode: 'STRICT', source: 'vm-ns/default', scope: 'namespace' }),
      },
      { autoRegistrationEnabled: false },
    );
    expect(await mesh.workloadEntryFor({ namespace: 'vm-ns', address: '10.0.0.5', group: 'vm-app' })).toBeUndefined();
    expect(asked).toEqual([['vm-ns', 'vm-app', '10.0.0.5']]);
    expect(await mesh.peerAuthenticationMode?.({ namespace: 'vm-ns', labels: {} })).toBe('STRICT');
    expect(await mesh.autoRegistrationEnabled?.()).toBe(false);
  });

  it("issue 20: the batcher's runner — one VM runs its own Job; several, one Job named after the group", async () => {
    const single: VerificationJobSpec[] = [];
    const groups: { input: GroupVerificationJobInput; timeoutMs: number }[] = [];
    const runner = groupJobRunner(() => ({
      runVerificationJob: async (spec) => {
        single.push(spec);
        return { succeeded: true, calls: [], logs: '' };
      },
      runGroupVerificationJob: async (input, timeoutMs) => {
        groups.push({ input, timeoutMs });
        return input.targets.map(() => ({ succeeded: true, calls: [], logs: '' }));
      },
    }));
    const spec = (vm: string, timeoutMs: number): VerificationJobSpec => ({
      namespace: 'vm-ns',
      name: `ivo-verify-${vm}-abcde`,
      image: 'img',
      targetUrl: `http://${vm}:8080/`,
      requests: 3,
      injectSidecar: true,
      timeoutMs,
    });
    expect(await runner('vm-ns/app', [spec('vm1', 90_000)])).toHaveLength(1);
    expect(single.map((s) => s.name)).toEqual(['ivo-verify-vm1-abcde']);
    expect(await runner('vm-ns/app', [spec('vm1', 90_000), spec('vm2', 60_000)])).toHaveLength(2);
    expect(groups).toHaveLength(1);
    expect(groups[0]!.input.name).toMatch(/^ivo-verify-app-[0-9a-f]{6}$/);
    expect(groups[0]!.input.namespace).toBe('vm-ns');
    expect(groups[0]!.input.targets.map((t) => t.name)).toEqual(['ivo-verify-vm1-abcde', 'ivo-verify-vm2-abcde']);
    expect(groups[0]!.timeoutMs).toBe(90_000);
    expect(await runner('vm-ns/app', [])).toEqual([]);
  });
});
