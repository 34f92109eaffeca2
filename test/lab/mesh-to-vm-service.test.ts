// Issue 15 / ADR 0005: the mesh→VM mTLS check against a client that routes as Envoy does
// (mesh/routing.ts), through the bundled action (dist/) on a one-VM lab, under STRICT and PERMISSIVE.
// The action calls the VM through a short-lived ServiceEntry host; the old ADR 0002 call by the VM's IP is
// kept below as a regression test of why it was replaced (it leaves the client in plaintext).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { runAction, snapshotDist, vmOf, type ActionRun } from './action-harness.js';
import { run } from './exec.js';
import { findVm, type LabState } from './state.js';
import { downLab, newLabDir, ssh, upLab } from './testing.js';
import { execInVm } from './vm/exec.js';
import { createClusterClient, loadKubeConfig } from '../../src/cluster/index.js';
import type { CheckResult } from '../../src/verify/types.js';

let dir: string;
let state: LabState;
let entry: string;
/** The VM's port the checks call (learned from the first run's evidence). */
let port = 0;

beforeAll(async () => {
  dir = newLabDir('mesh-service');
  state = await upLab(dir, 1);
  entry = await snapshotDist(dir);
}, 300_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

const action = (inputs: Record<string, string>) => runAction(state, inputs, { entry, timeoutMs: 150_000 });

function meshCheck(r: ActionRun): CheckResult {
  const found = vmOf(r.report, 'vm1').checks.find((c) => c.name === 'mesh-to-vm-mtls');
  if (!found) throw new Error(`no mesh-to-vm-mtls check in the report: ${r.log.slice(-1500)}`);
  return found;
}

function expectPassThroughServiceHost(r: ActionRun, strict: boolean): void {
  const check = meshCheck(r);
  expect([check.status, check.summary]).toEqual(['pass', expect.stringMatching(/mesh calls arrived over mutual TLS/)]);
  const ev = check.evidence.join('\n');
  expect(ev).toMatch(
    /^ServiceEntry vm-app\/ivo-verify-vm1-\w+ \(MESH_INTERNAL, service account [\w-]+\): ivo-verify-vm1-\w+\.vm-app\.ivo-verify\.internal:\d+ → 10\.233\.\d+\.11:\d+$/m,
  );
  expect(ev).toMatch(/^client sidecar, attempt \d+: VM endpoint seen in localhost:15000\/clusters$/m);
  expect(ev).toMatch(
    /^mTLS Job \(injected\) → http:\/\/ivo-verify-vm1-\w+\.vm-app\.ivo-verify\.internal:\d+\/\S*: 200 200 200$/m,
  );
  expect(ev).toMatch(
    /^istio_requests_total\{reporter="destination",connection_security_policy="mutual_tls"\}: \d+ → \d+ \(\+[3-9]\)$/m,
  );
  if (strict) expect(check.summary).toMatch(/plaintext refused \(STRICT\)/);
  port = Number(/ivo-verify\.internal:(\d+)/.exec(ev)![1]);
}

/** The ServiceEntries left in the group's namespace (the action removes its own after the check). */
async function serviceEntries(): Promise<string[]> {
  const r = await run(
    ['kubectl', '--kubeconfig', state.files.kubeconfig!, '-n', 'vm-app', 'get', 'serviceentries', '-o', 'name'],
    { timeoutMs: 20_000 },
  );
  return r.stdout.split('\n').filter(Boolean);
}

/** The old ADR 0002 mechanism: an injected Job calling the VM by IP, through the action's own cluster code. */
async function callByIp(name: string) {
  const { kubeConfig } = loadKubeConfig({ kubeconfigPath: state.files.kubeconfig! });
  const client = createClusterClient(kubeConfig, { jobPollMs: 100 });
  return client.runVerificationJob({
    namespace: 'vm-app',
    name,
    image: 'curlimages/curl:8.11.1',
    targetUrl: `http://${findVm(state, 'vm1').ip}:${port}/`,
    requests: 3,
    injectSidecar: true,
    timeoutMs: 60_000,
  });
}

async function mutualTlsCount(): Promise<number> {
  const r = await ssh(state, 'vm1', 'curl -s localhost:15090/stats/prometheus');
  return r.stdout
    .split('\n')
    .filter(
      (l) =>
        l.startsWith('istio_requests_total{') &&
        l.includes('reporter="destination"') &&
        l.includes('connection_security_policy="mutual_tls"'),
    )
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

describe('mesh→VM mTLS through a ServiceEntry host (dist/), the client routing as Envoy does', () => {
  it('onboard under STRICT: the Job waits for the endpoint, calls the service host over mTLS; plaintext by IP refused; no ServiceEntry left', async () => {
    const r = await action({ mode: 'onboard', 'peer-authentication': 'strict' });
    expectPassThroughServiceHost(r, true);
    expect({ code: r.code, outcome: vmOf(r.report, 'vm1').outcome }).toEqual({ code: 0, outcome: 'installed' });
    const plaintext = meshCheck(r).evidence.find((l) => l.startsWith('plaintext Job'));
    expect(plaintext).toMatch(/^plaintext Job \(not injected\) → http:\/\/10\.233\.\d+\.11:\d+\/\S*: 000 000 000$/);
    expect(await serviceEntries()).toEqual([]);
  }, 200_000);

  it('regression, the old call by IP under STRICT: PassthroughCluster in plaintext, the VM refuses (Envoy 503)', async () => {
    const result = await callByIp('ivo-byip-strict-a1b2c');
    expect(result.calls.map((c) => c.code)).toEqual(['503', '503', '503']);
  }, 90_000);

  it('onboard under PERMISSIVE: passes through the service host, the mutual_tls counter grows by the calls', async () => {
    const r = await action({ mode: 'onboard', 'peer-authentication': 'permissive' });
    expectPassThroughServiceHost(r, false);
    expect(r.code).toBe(0);
    expect(await serviceEntries()).toEqual([]);
  }, 200_000);

  it('regression, the old call by IP under PERMISSIVE: answered in plaintext, the mutual_tls counter does not grow', async () => {
    const before = await mutualTlsCount();
    const result = await callByIp('ivo-byip-permissive-a1b2c');
    expect(result.calls.map((c) => c.code)).toEqual(['200', '200', '200']);
    expect(await mutualTlsCount()).toBe(before);
  }, 90_000);

  it('a VM that refuses mTLS (inbound capture removed): mesh-to-vm-mtls fails with mtls-calls-failed', async () => {
    const rule = 'iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND';
    const removed = await execInVm(state, 'vm1', ['sh', '-c', rule], { allowFailure: true });
    expect(removed.code).toBe(0);
    try {
      const r = await action({ mode: 'verify', 'peer-authentication': 'strict' });
      const check = meshCheck(r);
      expect({ status: check.status, hintId: check.hintId }).toEqual({ status: 'fail', hintId: 'mtls-calls-failed' });
      expect(check.evidence.join('\n')).toMatch(
        /mTLS Job \(injected\) → http:\/\/ivo-verify-vm1-\w+\.vm-app\.ivo-verify\.internal:\d+\/\S*: 503 503 503/,
      );
      expect(r.code).toBe(1);
    } finally {
      await execInVm(state, 'vm1', ['sh', '-c', 'iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND'], {
        allowFailure: true,
      });
    }
  }, 200_000);

  it('revision canary (its own injector only): the mTLS Job carries istio.io/rev=canary and is injected; passes', async () => {
    const kubectl = (args: string[], input?: string) =>
      run(['kubectl', '--kubeconfig', state.files.kubeconfig!, '-n', 'istio-system', ...args], {
        timeoutMs: 20_000,
        ...(input !== undefined ? { input } : {}),
      });
    const copy = async (from: string, to: string) => {
      const cm = JSON.parse((await kubectl(['get', 'configmap', from, '-o', 'json'])).stdout) as {
        metadata: Record<string, unknown>;
      };
      cm.metadata = { name: to, namespace: 'istio-system' };
      await kubectl(['create', '-f', '-'], JSON.stringify(cm));
    };
    const injector = (await kubectl(['get', 'configmap', 'istio-sidecar-injector', '-o', 'json'])).stdout;
    await copy('istio', 'istio-canary');
    await copy('istio-sidecar-injector', 'istio-sidecar-injector-canary');
    // Only the canary revision exists now: sidecar.istio.io/inject=true would find no injector.
    await kubectl(['delete', 'configmap', 'istio-sidecar-injector']);
    await kubectl(['label', 'deployment', '-l', 'app=istiod', 'istio.io/rev=canary', '--overwrite']);
    try {
      // The group's PeerAuthentication is PERMISSIVE since the onboard above (verify does not change it).
      const r = await action({ mode: 'verify', 'peer-authentication': 'permissive', revision: 'canary' });
      expectPassThroughServiceHost(r, false);
      // The VM was onboarded for the default revision: against what a canary onboarding writes it has
      // drifted, so verify fails on the drift alone (README, Drift); every check passes.
      const vm = vmOf(r.report, 'vm1');
      expect(vm.checks.filter((c) => c.status !== 'pass').map((c) => c.name)).toEqual([]);
      expect(vm.error?.step).toBe('drift');
      expect(vm.drift?.map((d) => d.subject)).toEqual([
        '/var/lib/istio/envoy/cluster.env',
        '/etc/hosts (istio-vm-onboard block)',
      ]);
      expect(r.code).toBe(1);
    } finally {
      await kubectl(['label', 'deployment', '-l', 'app=istiod', 'istio.io/rev=default', '--overwrite']);
      const cm = JSON.parse(injector) as { metadata: Record<string, unknown> };
      cm.metadata = { name: 'istio-sidecar-injector', namespace: 'istio-system' };
      await kubectl(['create', '-f', '-'], JSON.stringify(cm));
      await kubectl(['delete', 'configmap', 'istio-canary', 'istio-sidecar-injector-canary']);
    }
  }, 200_000);

  it('multi-network group with the default verify-url: fails before any change, naming verify-url', async () => {
    const doc = parse(readFileSync(state.files.inventory, 'utf8')) as { groups: Array<Record<string, unknown>> };
    doc.groups[0]!.network = 'vm-network';
    const inventory = path.join(dir, 'multi-network.yaml');
    writeFileSync(inventory, stringify(doc));
    const r = await action({ mode: 'onboard', inventory, 'verify-url': '' });
    expect(r.code).toBe(1);
    expect(r.report?.fatal?.message).toMatch(
      /^Cluster preflight failed: the default verify-url \(istiod's :15014\) has no endpoint a VM on another network can reach: .*Groups: app \(network vm-network\)\. Set the verify-url input/,
    );
    expect(vmOf(r.report, 'vm1').outcome).toBe('skipped-preflight');
    // plan runs no checks: the same inventory is not blocked.
    const planned = await action({ mode: 'plan', inventory, 'verify-url': '' });
    expect(planned.report?.fatal).toBeUndefined();
  }, 200_000);
});
