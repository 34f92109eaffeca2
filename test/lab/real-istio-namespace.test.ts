// A mesh whose Istio namespace is not istio-system issues VM certificates (issue 15, item 6). The lab installs
// Istio with the real `istioctl manifest generate --set values.global.istioNamespace=istio-ops` (every object
// in istio-ops, istiod's discoveryAddress istiod.istio-ops.svc:15012), runs the real istiod from that
// Deployment, and the VM runs the real pilot-agent through Istio's own istio-start.sh — which exports
// CA_ADDR=istiod.${ISTIO_SYSTEM_NAMESPACE:-istio-system}.svc:15012, a name that does not exist here. The
// action's documented deviation from istioctl (CA_ADDR=istiod.<istio namespace>.svc:15012 in cluster.env,
// src/render/vm-files.ts) is what lets the agent get its certificate: `workload-certificate` passes through
// dist/, and the agent's log shows it asked istiod in istio-ops.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { actionLogTail, runAction, snapshotDist, vmOf } from './action-harness.js';
import { run } from './exec.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { downLab, newLabDir, upLab } from './testing.js';
import { execInVm } from './vm/exec.js';

const VM = 'vm1';
const ISTIO_NAMESPACE = 'istio-ops';

let dir: string;
let state: LabState;
let entry: string;

beforeAll(async () => {
  istioBuild();
  realSidecarSources();
  dir = newLabDir('real-istio-namespace');
  state = await upLab(dir, 1, ['--istio-namespace', ISTIO_NAMESPACE]);
  entry = await snapshotDist(dir);
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe(`Istio installed in ${ISTIO_NAMESPACE} (not istio-system)`, () => {
  it('the lab wrote the inventory for it, and nothing of Istio is in istio-system', async () => {
    expect(state.istiod?.istioNamespace).toBe(ISTIO_NAMESPACE);
    expect(readFileSync(state.files.inventory, 'utf8')).toContain(`istioNamespace: ${ISTIO_NAMESPACE}\n`);
    const kubectl = (args: string[]) =>
      run(['kubectl', '--kubeconfig', state.files.kubeconfig ?? path.join(dir, 'kubeconfig'), ...args], {
        timeoutMs: 30_000,
        allowFailure: true,
      });
    const istiods = await kubectl(['get', 'deployments', '-A', '-l', 'app=istiod', '-o', 'jsonpath={..namespace}']);
    expect(istiods.stdout.trim()).toBe(ISTIO_NAMESPACE);
    expect((await kubectl(['get', 'namespace', 'istio-system'])).stderr).toMatch(/NotFound|not found/);
  });

  it('onboard through dist/: the real pilot-agent gets its certificate from istiod in istio-ops (workload-certificate passes)', async () => {
    const r = await runAction(state, { mode: 'onboard' }, { entry, timeoutMs: 280_000 });
    const checks = new Map(vmOf(r.report, VM).checks.map((c) => [c.name, c]));
    const certificate = checks.get('workload-certificate');
    const agentLog = await execInVm(
      state,
      VM,
      [
        '/bin/sh',
        '-c',
        'grep -h -E "CA_ADDR|caAddress|ca address|istiod\\.[a-z-]+\\.svc:15012" /var/log/istio/istio.log | head -n 20',
      ],
      { allowFailure: true },
    );
    if (certificate?.status !== 'pass') console.log(actionLogTail(r), agentLog.stdout);
    expect(checks.get('sidecar-ready')?.status).toBe('pass');
    expect(checks.get('xds-connected')?.status).toBe('pass');
    expect(certificate?.status).toBe('pass');
    expect(certificate?.summary).toContain('SAN spiffe://cluster.local/ns/vm-app/sa/vm-app');
    expect(checks.get('workload-entry')?.status).toBe('pass');
    // The agent dialled istiod in istio-ops, never istio-system's name.
    expect(agentLog.stdout).toContain(`istiod.${ISTIO_NAMESPACE}.svc:15012`);
    expect(agentLog.stdout).not.toContain('istiod.istio-system.svc');
  }, 300_000);

  it("control: istioctl's cluster.env (no CA_ADDR) leaves the agent asking istiod.istio-system.svc — workload-certificate fails", async () => {
    // Onboard without the checks (no rollback), then take the deviation out of the VM's cluster.env as
    // istioctl would have written it, and restart the sidecar.
    const onboard = await runAction(
      state,
      { mode: 'onboard', 'verify-after-onboard': 'false' },
      { entry, timeoutMs: 280_000 },
    );
    if (onboard.code !== 0) console.log(actionLogTail(onboard));
    expect(onboard.code).toBe(0);
    const edit = await execInVm(
      state,
      VM,
      [
        '/bin/sh',
        '-c',
        'grep -q "^CA_ADDR=.*istiod.istio-ops.svc:15012" /var/lib/istio/envoy/cluster.env && sed -i "/^CA_ADDR=/d" /var/lib/istio/envoy/cluster.env && : > /var/log/istio/istio.log && systemctl restart istio',
      ],
      { timeoutMs: 90_000 },
    );
    expect(edit.code).toBe(0);
    const r = await runAction(state, { mode: 'verify', 'verify-ready-timeout': '15' }, { entry, timeoutMs: 200_000 });
    const certificate = vmOf(r.report, VM).checks.find((c) => c.name === 'workload-certificate');
    const agentLog = await execInVm(
      state,
      VM,
      ['/bin/sh', '-c', 'grep -h "istiod\\.[a-z-]*\\.svc:15012" /var/log/istio/istio.log | tail -n 5'],
      {
        allowFailure: true,
      },
    );
    if (certificate?.status !== 'fail') console.log(actionLogTail(r), agentLog.stdout);
    expect(r.code).toBe(1);
    expect(certificate?.status).toBe('fail');
    expect(agentLog.stdout).toContain('istiod.istio-system.svc:15012');
  }, 600_000);
});
