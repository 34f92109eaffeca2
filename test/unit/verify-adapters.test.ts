import { describe, expect, it } from '@jest/globals';
import { meshProbeFromCluster, vmProbeFromSession, workloadEntryViewOf } from '../../src/verify/adapters.js';

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
});
