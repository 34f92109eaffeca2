// Issue 15 item 4: a static group (registration: static) with a probe reaches Healthy, through dist/, on the
// real control plane (the real istiod's autoregistration controller and health-check handling, the real
// pilot-agent reporting its probe).
// What real Istio needs (pilot/pkg/autoregistration/controller.go OnConnect, internal/health): the entry
// exists before the sidecar connects (else istiod refuses the connection), carries the annotation
// proxy.istio.io/health-checks-enabled, and the VM's cluster.env names it in ISTIO_META_WORKLOAD_ENTRY.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { runAction, snapshotDist, vmOf } from './action-harness.js';
import { run } from './exec.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { downLab, newLabDir, ssh, upLab } from './testing.js';

let dir: string;
let state: LabState;
let entry: string;
let inventory: string;

beforeAll(async () => {
  istioBuild();
  realSidecarSources();
  dir = newLabDir('static-registration');
  state = await upLab(dir, 1);
  entry = await snapshotDist(dir);
  const doc = parse(readFileSync(state.files.inventory, 'utf8')) as { groups: Array<Record<string, unknown>> };
  doc.groups[0]!.registration = 'static';
  inventory = path.join(dir, 'static.yaml');
  writeFileSync(inventory, stringify(doc));
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('static registration through dist/', () => {
  it('onboard: the entry is applied before the sidecar starts, istiod writes its health, every check passes', async () => {
    const r = await runAction(state, { mode: 'onboard', inventory }, { entry, timeoutMs: 280_000 });
    const vm = vmOf(r.report, 'vm1');
    expect(vm.checks.map((c) => `${c.name}:${c.status}${c.status === 'pass' ? '' : ` ${c.summary}`}`)).toEqual([
      'sidecar-running:pass',
      'sidecar-ready:pass',
      'xds-connected:pass',
      'workload-certificate:pass',
      'workload-entry:pass',
      'vm-to-mesh:pass',
      'mesh-to-vm-mtls:pass',
    ]);
    expect(vm.checks.find((c) => c.name === 'workload-entry')!.summary).toBe(
      `vm1 has address ${state.vms[0]!.ip} and is Healthy`,
    );
    // xds-connected names pilot-agent's own istiod connection (its log), not only Envoy's pipe to the agent.
    expect(vm.checks.find((c) => c.name === 'xds-connected')!.evidence.join('\n')).toMatch(
      /^istiod connection \(agent log\): .*connected to delta upstream XDS server: istiod\.istio-system\.svc:15012/m,
    );
    // The WorkloadEntry step comes before the step that installs and starts the sidecar.
    const applySteps = vm.steps.filter((s) => s.name === 'apply').map((s) => s.detail ?? '');
    expect(applySteps[0]).toMatch(/^WorkloadEntry vm1: created$/);
    expect(r.code).toBe(0);
    const env = await ssh(
      state,
      'vm1',
      'grep -E "^ISTIO_META_(WORKLOAD_ENTRY|AUTO_REGISTER_GROUP)=" /var/lib/istio/envoy/cluster.env',
    );
    expect(env.stdout.trim()).toBe("ISTIO_META_WORKLOAD_ENTRY='vm1'");
    const we = await run(
      [
        'kubectl',
        '--kubeconfig',
        state.files.kubeconfig!,
        '-n',
        'vm-app',
        'get',
        'workloadentries',
        'vm1',
        '-o',
        'json',
      ],
      { timeoutMs: 20_000 },
    );
    const obj = JSON.parse(we.stdout) as {
      metadata: { annotations?: Record<string, string> };
      status?: { conditions?: Array<{ type: string; status: string }> };
    };
    expect(obj.metadata.annotations?.['proxy.istio.io/health-checks-enabled']).toBe('true');
    expect(obj.status?.conditions?.find((c) => c.type === 'Healthy')?.status).toBe('True');
  }, 400_000);
});
