// Verification checks against the lab on real Istio: real sshd, sudo, dpkg,
// the systemctl stand-in, and the lab's istio-sidecar.deb carrying Istio's pilot-agent (built from the pinned
// istio.io/istio module), Istio's istio-start.sh, unit and sidecar.env, and the Go Envoy stand-in.
//
// This file calls verifyVm directly on a VM whose sidecar inputs are placed by hand (as the seed runbook
// does) with the real istiod stopped (lab fault istiod-down) — a genuine "istiod down" — and covers what that
// allows. The cases that need the control plane (and the action's onboarding) run through dist/ in
// test/lab/action-checks.test.ts and test/lab/real-sidecar-action.test.ts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { GroupSpec, VmSpec } from '../../src/inventory/types.js';
import { connectVm, type VmSession } from '../../src/vm/index.js';
import { vmProbeFromSession } from '../../src/verify/adapters.js';
import { verifyVm } from '../../src/verify/verify-vm.js';
import type { MeshProbe } from '../../src/verify/ports.js';
import type { CheckName, CheckResult, VerifyContext } from '../../src/verify/types.js';
import { makeCa } from '../unit/verify-fixtures.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { execInVm } from './vm/exec.js';
import { downLab, faultCli, newLabDir, upLab } from './testing.js';

let dir: string;
let state: LabState;
let session: VmSession;
let vm: VmSpec;
const ROOT = makeCa('cluster.local', Date.now());

const group: GroupSpec = {
  name: 'app',
  namespace: 'vm-app',
  serviceAccount: 'vm-app',
  labels: { app: 'vm-app' },
  annotations: {},
  ports: { http: 8080 },
  network: '',
  registration: 'auto',
  probe: { httpGet: { port: 8080, path: '/' } },
  vms: [],
};

// Cluster side is not available yet: a cluster that has no entry and cannot run Jobs.
const absentCluster: MeshProbe = {
  workloadEntryFor: async () => undefined,
  runVerificationJob: async () => {
    throw new Error('no verification-Job runner in the lab yet');
  },
};

function context(overrides: Partial<VerifyContext> = {}): VerifyContext {
  return {
    vm,
    group,
    workloadAddress: vm.ssh.host,
    trustDomain: 'cluster.local',
    rootCertPem: ROOT.certPem,
    verifyUrl: 'http://mesh-echo.lab.svc.cluster.local:8080/',
    verifyClientImage: 'curlimages/curl:8.11.1',
    peerAuthentication: 'strict',
    vmProbe: vmProbeFromSession(session),
    meshProbe: absentCluster,
    options: { readyTimeoutMs: 3_000, workloadEntryTimeoutMs: 1_000 },
    ...overrides,
  };
}

const byName = (results: CheckResult[], name: CheckName) => results.find((r) => r.name === name)!;

/** Istio's capture is in: `pilot-agent istio-iptables` detects the legacy or the nft backend, so look at both. */
function natRulesPresent(netns: string): boolean {
  return ['iptables', 'iptables-legacy'].some((iptables) => {
    try {
      return execFileSync('ip', ['netns', 'exec', netns, iptables, '-w', '5', '-t', 'nat', '-S', 'ISTIO_OUTPUT'], {
        encoding: 'utf8',
        timeout: 10_000,
        stdio: ['ignore', 'pipe', 'ignore'],
      }).includes('ISTIO_REDIRECT');
    } catch {
      return false;
    }
  });
}

/** The unit's state and the agent's logs on the VM, for a failing assertion's context. */
async function sidecarDiagnostics(): Promise<string> {
  const r = await execInVm(
    state,
    state.vms[0]!.name,
    [
      '/bin/sh',
      '-c',
      'systemctl status istio; tail -n 30 /var/log/journal-standin/istio.service.log /var/log/istio/istio.log /var/log/istio/istio.err.log',
    ],
    { allowFailure: true, timeoutMs: 30_000 },
  );
  return `${r.stdout}${r.stderr}`;
}

function connect(): Promise<VmSession> {
  return connectVm({
    vm,
    privateKey: readFileSync(state.files.privateKey, 'utf8'),
    knownHosts: readFileSync(state.files.knownHosts, 'utf8'),
  });
}

async function sudo(script: string): Promise<void> {
  const r = await session.exec(`sudo -n sh -c ${`'${script.replace(/'/g, `'\\''`)}'`}`, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`VM script failed (${r.code}): ${r.stderr}`);
}

beforeAll(async () => {
  // Built here, not inside `up`'s time budget: the Istio build and the stand-in (no-ops when up to date).
  istioBuild();
  realSidecarSources();
  dir = newLabDir('verify');
  state = await upLab(dir, 1);
  // The lab runs the real istiod on the gateway's 15012: stop it (by pid), so "no istiod" stays true.
  await faultCli(dir, 'fault', 'istiod-down');
  const labVm = state.vms[0]!;
  vm = { name: labVm.name, group: 'app', ssh: { host: labVm.ip, port: labVm.sshPort, user: state.user }, labels: {} };
  session = await connect();
  // Hand onboarding (stand-in for the rollout): package + Istio's files, istiod address → the gateway
  // address, where nothing listens on 15012.
  await sudo(`set -e
cd /tmp && curl -sS -o istio-sidecar.deb ${state.package.url} && dpkg -i istio-sidecar.deb >/dev/null
mkdir -p /var/lib/istio/envoy /etc/istio/config /var/run/secrets/tokens /etc/certs
printf "ISTIO_NAMESPACE=vm-app\\nSERVICE_ACCOUNT=vm-app\\nCA_ADDR=istiod.istio-system.svc:15012\\nPILOT_ADDRESS=istiod.istio-system.svc:15012\\nISTIO_META_AUTO_REGISTER_GROUP=app\\nISTIO_INBOUND_PORTS=*\\nISTIO_SERVICE_CIDR=*\\nISTIO_LOCAL_EXCLUDE_PORTS=15090,15021,15020,${labVm.sshPort}\\n" > /var/lib/istio/envoy/cluster.env
printf "defaultConfig:\\n  discoveryAddress: istiod.istio-system.svc:15012\\n" > /etc/istio/config/mesh
echo lab-placeholder-token > /var/run/secrets/tokens/istio-token
echo "${state.gatewayIP} istiod.istio-system.svc" >> /etc/hosts
printf "%s" "${ROOT.certPem}" > /etc/certs/root-cert.pem
systemctl start istio`);
  // The sidecar installs its nat rules shortly after start. In the lab's fresh netns an SSH connection
  // opened before that is reset (see the report); wait for the rules (bounded), then reconnect.
  await session.close().catch(() => undefined);
  for (let i = 0; i < 100 && !natRulesPresent(labVm.netns); i++) await new Promise((r) => setTimeout(r, 200));
  if (!natRulesPresent(labVm.netns)) console.log(await sidecarDiagnostics());
  expect(natRulesPresent(labVm.netns)).toBe(true);
  session = await connect();
}, 600_000);

afterAll(async () => {
  await session?.close().catch(() => undefined);
  if (dir) await downLab(dir);
}, 120_000);

describe('verification in the lab (VM side, no control plane)', () => {
  it('istiod down: sidecar-running passes, sidecar-ready and xds-connected fail naming istiod on 15012, in ≤ 2 round trips', async () => {
    const before = session.counters.execRoundTrips;
    const results = await verifyVm(context());
    expect(session.counters.execRoundTrips - before).toBeLessThanOrEqual(2);

    const running = byName(results, 'sidecar-running');
    expect(running.status).toBe('pass');
    expect(running.summary).toMatch(/^active, NRestarts=0 stable \(current run up \d/);

    const ready = byName(results, 'sidecar-ready');
    expect(ready).toMatchObject({ status: 'fail', hintId: 'istiod-refused' });
    // The double answered 503 "config not received from XDS server (is Istiod running?)". The real pilot-agent
    // with istiod down from the start does not answer /healthz/ready within the probe's time (Envoy listens on
    // 15021, the agent's handler does not return), so the summary is the check's "did not answer"; the cause
    // comes from the agent's own log.
    expect(ready.summary).toMatch(/^\/healthz\/ready did not answer/);
    expect(ready.evidence.join('\n')).toMatch(/15012: connect: connection refused/);

    // Envoy is connected to the real agent's XDS socket; the agent's upstream to istiod is what is down.
    expect(byName(results, 'xds-connected')).toMatchObject({ status: 'fail', hintId: 'xds-upstream-down' });
    expect(byName(results, 'workload-certificate')).toMatchObject({ status: 'fail', hintId: 'cert-missing' });
    expect(byName(results, 'workload-entry')).toMatchObject({ status: 'fail', hintId: 'we-missing' });
    expect(byName(results, 'vm-to-mesh').status).toBe('skipped');
    expect(byName(results, 'mesh-to-vm-mtls').status).toBe('skipped');
  }, 60_000);

  it('a root cert other than the one installed is named as the cause', async () => {
    const other = makeCa('cluster.local', Date.now());
    const results = await verifyVm(context({ rootCertPem: other.certPem }));
    const cert = byName(results, 'workload-certificate');
    expect(cert).toMatchObject({ status: 'fail', hintId: 'cert-root-mismatch' });
    expect(cert.evidence.join('\n')).toMatch(/differs from the mesh root cert/);
  }, 60_000);

  it('stopped sidecar: sidecar-running fails, later VM checks are skipped, workload-entry still runs', async () => {
    await sudo('systemctl stop istio');
    try {
      const results = await verifyVm(context());
      const running = byName(results, 'sidecar-running');
      expect(running).toMatchObject({ status: 'fail', hintId: 'unit-inactive' });
      expect(running.summary).toMatch(/unit istio is (inactive|failed)/);
      for (const name of [
        'sidecar-ready',
        'xds-connected',
        'workload-certificate',
        'vm-to-mesh',
        'mesh-to-vm-mtls',
      ] as const) {
        expect(byName(results, name).status).toBe('skipped');
      }
      expect(byName(results, 'workload-entry').status).toBe('fail');
    } finally {
      await sudo('systemctl start istio');
    }
  }, 60_000);

  it("a root cert on the VM that does not sign istiod's certificate: sidecar-ready fails with root-cert-rejected-by-agent", async () => {
    // istiod back on 15012; the VM still holds the hand-placed root of another CA. Restart the sidecar
    // from the host (a session open across the restart of its traffic capture can be cut), then reconnect.
    await faultCli(dir, 'heal', 'istiod-down');
    await session.close().catch(() => undefined);
    const labVm = state.vms[0]!;
    await execInVm(state, labVm.name, 'systemctl restart istio', { timeoutMs: 60_000 });
    for (let i = 0; i < 100 && !natRulesPresent(labVm.netns); i++) await new Promise((r) => setTimeout(r, 200));
    session = await connect();
    const results = await verifyVm(context());
    const ready = byName(results, 'sidecar-ready');
    expect(ready).toMatchObject({ status: 'fail', hintId: 'root-cert-rejected-by-agent' });
    expect(ready.hint).toMatch(/does not trust istiod's certificate \(x509: signed by unknown authority\)/);
    expect(ready.evidence.join('\n')).toMatch(/x509: certificate signed by unknown authority/);
  }, 90_000);

  // All seven passing on VMs onboarded by the action, and each control-plane fault (block-15012, wrong-root-cert,
  // wrong-trust-domain, token-rejected, autoregistration-off, app-down, dns-capture-broken, mesh-service-down,
  // sidecar-crash-loop, plaintext-accepted under STRICT, istiod-down, kube-403/500): test/lab/action-checks.test.ts.
});
