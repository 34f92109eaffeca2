// The mesh side of the real-Istio lab, through the bundled action (dist/):
// the verification Jobs run on the lab's Pod runner (pods/runner.ts) — admitted by the real istiod's injection
// webhook, their sidecar the real pilot-agent with the Envoy stand-in — so what decides a check is Istio's own
// configuration, not a lab rule:
// - STRICT (the action's `peer-authentication: strict`): the injected Job reaches the VM over mutual TLS through
//   the ServiceEntry host (ADR 0005) and the non-injected pod's plaintext probe is refused;
// - the mechanism before issue 15 (the injected Job calling `http://<VM IP>:<port>/`) fails under the same STRICT:
//   a raw IP matches only the catch-all virtual host, PassthroughCluster has no TLS;
// - a DestinationRule with `tls.mode: DISABLE` for the VM's verification host turns mesh-to-vm-mtls red, with
//   no change to the lab: istiod stops giving the client cluster its ISTIO_MUTUAL transport socket.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { runAction, snapshotDist, vmOf, type ActionRun, actionLogTail, checksOf } from './action-harness.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { downLab, newLabDir, upLab } from './testing.js';
import {
  buildVerificationJob,
  DEFAULT_VERIFY_CLIENT_IMAGE,
  parseVerificationLog,
  VERIFY_CONTAINER_NAME,
} from '../../src/cluster/verification-job.js';

const VM = 'vm1';
let dir: string;
let state: LabState;
let entry: string;

function kubectl(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', state.files.kubeconfig ?? `${dir}/kubeconfig`, ...args],
      { timeout: 30_000, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

beforeAll(async () => {
  istioBuild();
  realSidecarSources();
  dir = newLabDir('real-mesh-side');
  state = await upLab(dir, 1);
  entry = await snapshotDist(dir);
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('the mesh side on real Istio: verification Jobs run by the Pod runner, injected by the real istiod', () => {
  let strict: ActionRun;

  it('peer-authentication strict: all seven checks pass; the plaintext probe from a non-injected pod is refused', async () => {
    strict = await runAction(
      state,
      { mode: 'onboard', 'peer-authentication': 'strict' },
      { entry, timeoutMs: 280_000 },
    );
    const lines = vmOf(strict.report, VM).checks.map((c) => `${c.name}: ${c.status}`);
    if (strict.code !== 0) console.log(actionLogTail(strict));
    expect(lines).toEqual([
      'sidecar-running: pass',
      'sidecar-ready: pass',
      'xds-connected: pass',
      'workload-certificate: pass',
      'workload-entry: pass',
      'vm-to-mesh: pass',
      'mesh-to-vm-mtls: pass',
    ]);
    const mtls = checksOf(strict, VM).get('mesh-to-vm-mtls');
    expect(mtls?.summary).toMatch(
      /mesh calls arrived over mutual TLS \(\+\d+ istio_requests_total\); plaintext refused \(STRICT\)/,
    );
    expect(mtls?.evidence.join('\n')).toMatch(
      /plaintext Job.*\(not injected\) → http:\/\/10\.233\.\d+\.\d+:8080\/: 000 000 000/,
    );
    expect(strict.code).toBe(0);
  }, 300_000);

  it('by IP, as before issue 15, under the same STRICT: the injected Job reaches the VM in plaintext and is refused', async () => {
    const vm = state.vms[0]!;
    const name = 'ivo-by-ip-check';
    const job = buildVerificationJob({
      namespace: 'vm-app',
      name,
      image: DEFAULT_VERIFY_CLIENT_IMAGE,
      targetUrl: `http://${vm.ip}:${state.appPort}/`,
      requests: 3,
      injectSidecar: true,
    });
    await kubectl(['apply', '-f', '-'], JSON.stringify(job));
    try {
      let status: { succeeded?: number; failed?: number } = {};
      for (let i = 0; i < 120 && !status.succeeded && !status.failed; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        status =
          (JSON.parse(await kubectl(['get', 'job', '-n', 'vm-app', name, '-o', 'json'])) as { status?: typeof status })
            .status ?? {};
      }
      expect(status.succeeded).toBe(1);
      const pods = JSON.parse(
        await kubectl(['get', 'pods', '-n', 'vm-app', '-l', `job-name=${name}`, '-o', 'json']),
      ) as {
        items: Array<{ metadata: { name: string }; spec: { initContainers?: Array<{ name: string }> } }>;
      };
      const pod = pods.items[0]!;
      // The pod had the real sidecar (istio-init and the native istio-proxy), so this is its routing, not a bypass.
      expect(pod.spec.initContainers?.map((c) => c.name)).toEqual(['istio-init', 'istio-proxy']);
      const log = await kubectl(['logs', '-n', 'vm-app', pod.metadata.name, '-c', VERIFY_CONTAINER_NAME]);
      const { calls, done } = parseVerificationLog(log);
      expect(done).toBe(true);
      expect(calls).toHaveLength(3);
      // Raw IP: catch-all virtual host → PassthroughCluster (no TLS) → the VM's STRICT inbound refuses it; the client
      // sidecar answers 503 for the reset upstream.
      for (const c of calls) expect(c.code).not.toBe('200');
    } finally {
      await kubectl(['delete', 'job', '-n', 'vm-app', name, '--ignore-not-found']);
    }
  }, 200_000);

  it('a DestinationRule with tls DISABLE for the VM’s verification host turns mesh-to-vm-mtls red', async () => {
    const dr = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'verify-hosts-plaintext', namespace: 'vm-app' },
      spec: { host: '*.vm-app.ivo-verify.internal', trafficPolicy: { tls: { mode: 'DISABLE' } } },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(dr));
    try {
      const r = await runAction(state, { mode: 'verify' }, { entry, timeoutMs: 200_000 });
      const checks = checksOf(r, VM);
      const mtls = checks.get('mesh-to-vm-mtls');
      if (mtls?.status !== 'fail') console.log(actionLogTail(r));
      expect(checks.get('workload-entry')?.status).toBe('pass');
      expect(mtls?.status).toBe('fail');
      // STRICT (from the onboard run) refuses the plaintext the client now sends.
      expect(mtls?.summary).toMatch(/calls|mutual/);
      expect(mtls?.evidence.join('\n')).toMatch(
        /mTLS Job \(injected\) → http:\/\/ivo-verify-vm1-[a-z0-9]+\.vm-app\.ivo-verify\.internal:8080\//,
      );
      expect(r.code).toBe(1);
    } finally {
      await kubectl(['delete', 'destinationrule', '-n', 'vm-app', 'verify-hosts-plaintext', '--ignore-not-found']);
    }
  }, 300_000);
});
