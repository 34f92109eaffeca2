// verifyVm and each check, pass and fail paths, with a fake VM (canned script output in the real
// framing) and a fake cluster. Healthy inputs are the envoy-reference files where they fit.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { GroupSpec, VmSpec } from '../../src/inventory/types.js';
import { verifyVm, verificationJobName } from '../../src/verify/verify-vm.js';
import { describeFailure, defaultMtlsTarget } from '../../src/verify/checks.js';
import {
  currentRunLines,
  failResult,
  passResult,
  probeOutput,
  vmUtcOffsetMinutes,
  type CheckDefinition,
} from '../../src/verify/check.js';
import { checkNames, registerCheck } from '../../src/verify/registry.js';
import { renderJobSummary } from '../../src/report/summary.js';
import { renderTerminalTable } from '../../src/report/table.js';
import { inventoryOf, makeWorld, run } from './rollout-fakes.js';
import { allHints, classifyAgentLog, renderHintsMarkdown } from '../../src/verify/hints.js';
import { buildProbeScript, parseScriptOutput } from '../../src/verify/vm-script.js';
import type {
  MeshProbe,
  VerificationJobResult,
  VerificationJobSpec,
  WorkloadEntryView,
} from '../../src/verify/ports.js';
import type { CheckName, CheckResult, VerifyContext } from '../../src/verify/types.js';
import { TEST_EPOCH_MS, makeCa, makeWorkloadCert, secretsDumpJson } from './verify-fixtures.js';
import { VerificationJobBatcher, verificationGroupKey } from '../../src/verify/job-batcher.js';

const REF = path.resolve(process.cwd(), '../shared/envoy-reference');
const ref = (p: string) => readFileSync(path.join(REF, p), 'utf8');
const STATS_OK = ref('stats/stats_text.constructed.txt');
const PROM_REF = ref('stats/stats_prometheus.constructed.txt');
const promWith = (mtls: number) => PROM_REF.replace(/(connection_security_policy="mutual_tls"\}) 37/, `$1 ${mtls}`);

const CA = makeCa('cluster.local');
const OTHER_CA = makeCa('cluster.local');
const SPIFFE = 'spiffe://cluster.local/ns/vm-ns/sa/vm-sa';
const LEAF = makeWorkloadCert(CA, SPIFFE);

// ---------------------------------------------------------------- fakes

interface Section {
  rc?: number;
  http?: string;
  body?: string;
  stderr?: string;
}

function frame(name: string, s: Section): string {
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  return `\n@@ivo64 ${name}.err ${b64(s.stderr ?? '')}\n@@ivo64 ${name}.body ${b64(s.body ?? '')}\n@@ivo section ${name} rc=${s.rc ?? 0} http=${s.http ?? '000'}\n`;
}
const ok = (body: string): Section => ({ rc: 0, http: '200', body });
const refused = (port: number): Section => ({
  rc: 7,
  http: '000',
  stderr: `curl: (7) Failed to connect to localhost port ${port} after 0 ms: Couldn't connect to server\n`,
});

interface VmState {
  tools: string;
  sections1: Record<string, Section>;
  sections2: Record<string, Section>;
  execError?: string;
}

const UNIT_OK = 'LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\nMainPID=4242\nis-active=active\n';

function healthyVm(): VmState {
  return {
    tools: '@@ivo tools curl=yes base64=yes systemctl=yes\n',
    sections1: {
      'unit-before': { body: UNIT_OK },
      ready: { http: '200', body: 'attempts=1 elapsed_ms=12 outcome=ready\n' },
      stats: ok(STATS_OK),
      secrets: ok(secretsDumpJson(LEAF + CA.certPem, CA.certPem)),
      certs: ok(ref('certs/certs.constructed.json')),
      prometheus: ok(promWith(37)),
      'root-cert': { body: CA.certPem },
      'agent-log': { body: '2026-11-26T10:00:00Z\tinfo\tEnvoy proxy is ready\n' },
      'agent-err-log': { body: '' },
      'not-ready-line': { body: '' },
      window: { body: 'window_ms=2003\n' },
      'unit-after': { body: UNIT_OK },
    },
    sections2: {
      prometheus: ok(promWith(40)),
      resolve: { rc: 0, body: '10.96.0.42      mesh-echo.lab.svc.cluster.local\n' },
      'vm-to-mesh': { rc: 0, http: '200', body: 'hello' },
    },
  };
}

const callsOf = (...codes: string[]) => codes.map((code, i) => ({ n: i + 1, code }));

interface MeshState {
  entry?: WorkloadEntryView;
  entryError?: string;
  autoRegistration?: boolean;
  groupExists?: boolean;
  mtlsJob: VerificationJobResult | Error;
  plaintextJob: VerificationJobResult | Error;
  mode?: 'STRICT' | 'PERMISSIVE' | 'UNSET';
}

function healthyEntry(healthy: 'True' | 'False' | 'none' = 'True', message?: string): WorkloadEntryView {
  return {
    metadata: {
      name: 'vm-app-10.233.0.11',
      namespace: 'vm-ns',
      annotations: { 'istio.io/autoRegistrationGroup': 'vm-app' },
    },
    spec: { address: '10.233.0.11', serviceAccount: 'vm-sa' },
    ...(healthy !== 'none'
      ? { status: { conditions: [{ type: 'Healthy', status: healthy, ...(message ? { message } : {}) }] } }
      : {}),
  };
}

function healthyMesh(): MeshState {
  return {
    entry: healthyEntry(),
    autoRegistration: true,
    groupExists: true,
    mtlsJob: {
      succeeded: true,
      calls: callsOf('200', '200', '200'),
      logs: 'ivo-call 1 200\nivo-call 2 200\nivo-call 3 200\nivo-done\n',
    },
    plaintextJob: { succeeded: true, calls: callsOf('000', '000', '000'), logs: 'ivo-call 1 000\n' },
    mode: 'STRICT',
  };
}

const GROUP: GroupSpec = {
  name: 'vm-app',
  namespace: 'vm-ns',
  serviceAccount: 'vm-sa',
  labels: { app: 'vm-app' },
  annotations: {},
  ports: { 'http-web': 8080 },
  network: '',
  registration: 'auto',
  probe: { httpGet: { port: 8080, path: '/healthz' } },
  vms: [],
};
const VM: VmSpec = { name: 'vm-1', group: 'vm-app', ssh: { host: '10.233.0.11', port: 22, user: 'ivo' }, labels: {} };

interface Harness {
  ctx: VerifyContext;
  scripts: string[];
  jobs: VerificationJobSpec[];
  weQueries: number;
}

function harness(vm: VmState, mesh: MeshState, overrides: Partial<VerifyContext> = {}): Harness {
  const scripts: string[] = [];
  const jobs: VerificationJobSpec[] = [];
  let clock = TEST_EPOCH_MS;
  const h: Harness = { scripts, jobs, weQueries: 0, ctx: undefined as unknown as VerifyContext };
  const meshProbe: MeshProbe = {
    workloadEntryFor: async () => {
      h.weQueries += 1;
      if (mesh.entryError) throw new Error(mesh.entryError);
      return mesh.entry;
    },
    runVerificationJob: async (spec) => {
      jobs.push(spec);
      const r = spec.injectSidecar ? mesh.mtlsJob : mesh.plaintextJob;
      if (r instanceof Error) throw r;
      return r;
    },
    peerAuthenticationMode: async () => mesh.mode ?? 'UNSET',
    workloadGroupExists: async () => mesh.groupExists ?? true,
    autoRegistrationEnabled: async () => mesh.autoRegistration,
  };
  h.ctx = {
    vm: VM,
    group: GROUP,
    workloadAddress: '10.233.0.11',
    trustDomain: 'cluster.local',
    rootCertPem: CA.certPem,
    verifyUrl: 'http://mesh-echo.lab.svc.cluster.local:8080/',
    verifyClientImage: 'curlimages/curl:8.11.1',
    peerAuthentication: 'strict',
    vmProbe: {
      runScript: async (script) => {
        scripts.push(script);
        if (vm.execError) throw new Error(vm.execError);
        const sections = script.includes('unit-before') ? vm.sections1 : vm.sections2;
        return {
          code: 0,
          stdout:
            'Welcome to the VM\n' +
            vm.tools +
            Object.entries(sections)
              .map(([n, s]) => frame(n, s))
              .join(''),
          stderr: '',
        };
      },
    },
    meshProbe,
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
    },
    randomSuffix: () => 'abcde',
    secretValues: ['s3cr3t-token-value'],
    ...overrides,
  };
  return h;
}

const byName = (results: CheckResult[], name: CheckName) => results.find((r) => r.name === name)!;
const CHECK_NAMES_BUILT_IN = [
  'sidecar-running',
  'sidecar-ready',
  'xds-connected',
  'workload-certificate',
  'workload-entry',
  'vm-to-mesh',
  'mesh-to-vm-mtls',
];

// ---------------------------------------------------------------- the healthy VM

describe('verifyVm on a healthy VM', () => {
  it('passes all seven checks in two exec round trips and runs the ADR-0002 Jobs', async () => {
    const h = harness(healthyVm(), healthyMesh());
    const results = await verifyVm(h.ctx);
    expect(results.map((r) => r.name)).toEqual([
      'sidecar-running',
      'sidecar-ready',
      'xds-connected',
      'workload-certificate',
      'workload-entry',
      'vm-to-mesh',
      'mesh-to-vm-mtls',
    ]);
    for (const r of results)
      expect({ name: r.name, status: r.status, hint: r.hint }).toEqual({
        name: r.name,
        status: 'pass',
        hint: undefined,
      });
    expect(h.scripts).toHaveLength(2);
    expect(h.jobs).toEqual([
      {
        namespace: 'vm-ns',
        name: 'ivo-verify-vm-1-abcde',
        image: 'curlimages/curl:8.11.1',
        targetUrl: 'http://10.233.0.11:8080/healthz',
        requests: 3,
        injectSidecar: true,
        timeoutMs: 90000,
        // ADR 0005: the mTLS attempt calls the VM through a ServiceEntry host.
        service: {
          host: 'ivo-verify-vm-1-abcde.vm-ns.ivo-verify.internal',
          address: '10.233.0.11',
          port: 8080,
          protocol: 'http',
          serviceAccount: 'vm-sa',
          labels: { app: 'vm-app' },
          vmName: 'vm-1',
          waitAttempts: 20,
        },
      },
      {
        namespace: 'vm-ns',
        name: 'ivo-verify-vm-1-abcde',
        image: 'curlimages/curl:8.11.1',
        targetUrl: 'http://10.233.0.11:8080/healthz',
        requests: 3,
        injectSidecar: false,
        timeoutMs: 90000,
      },
    ]);
    expect(byName(results, 'mesh-to-vm-mtls').evidence).toContain(
      'istio_requests_total{reporter="destination",connection_security_policy="mutual_tls"}: 37 → 40 (+3)',
    );
    expect(byName(results, 'xds-connected').evidence).toContain('cluster.xds-grpc.upstream_cx_active: 1');
    expect(byName(results, 'workload-certificate').summary).toMatch(
      /^SAN spiffe:\/\/cluster.local\/ns\/vm-ns\/sa\/vm-sa, chains to the installed root/,
    );
  });

  it('does not run the plaintext Job under PERMISSIVE, and asks the cluster when the input is unchanged', async () => {
    const h1 = harness(healthyVm(), healthyMesh(), { peerAuthentication: 'permissive' });
    expect(byName(await verifyVm(h1.ctx), 'mesh-to-vm-mtls').status).toBe('pass');
    expect(h1.jobs.map((j) => j.injectSidecar)).toEqual([true]);
    const h2 = harness(healthyVm(), { ...healthyMesh(), mode: 'STRICT' }, { peerAuthentication: 'unchanged' });
    await verifyVm(h2.ctx);
    expect(h2.jobs.map((j) => j.injectSidecar)).toEqual([true, false]);
    const h3 = harness(healthyVm(), { ...healthyMesh(), mode: 'PERMISSIVE' }, { peerAuthentication: 'unchanged' });
    await verifyVm(h3.ctx);
    expect(h3.jobs.map((j) => j.injectSidecar)).toEqual([true]);
  });
});

describe('ADR 0005: the mTLS Job calls the VM through a ServiceEntry host', () => {
  const host = 'ivo-verify-vm-1-abcde.vm-ns.ivo-verify.internal';
  const throughService = (waits: Array<{ n: number; seen: boolean }>, codes: string[]) => ({
    succeeded: true,
    calls: callsOf(...codes),
    logs: '',
    waits,
    serviceEntry: 'ivo-verify-vm-1-abcde',
    calledUrl: `http://${host}:8080/healthz`,
  });

  it('evidence names the ServiceEntry, every look for the endpoint, and the service host called', async () => {
    const mesh = healthyMesh();
    mesh.mtlsJob = throughService(
      [
        { n: 1, seen: false },
        { n: 2, seen: true },
      ],
      ['200', '200', '200'],
    );
    const result = byName(await verifyVm(harness(healthyVm(), mesh).ctx), 'mesh-to-vm-mtls');
    expect(result.status).toBe('pass');
    expect(result.evidence.slice(0, 4)).toEqual([
      `ServiceEntry vm-ns/ivo-verify-vm-1-abcde (MESH_INTERNAL, service account vm-sa): ${host}:8080 → 10.233.0.11:8080`,
      'client sidecar, attempt 1: VM endpoint not seen yet in localhost:15000/clusters',
      'client sidecar, attempt 2: VM endpoint seen in localhost:15000/clusters',
      `mTLS Job (injected) → http://${host}:8080/healthz: 200 200 200`,
    ]);
  });

  it('the client never saw the endpoint: fails with mtls-service-unseen, whatever the calls answered', async () => {
    const mesh = healthyMesh();
    mesh.mtlsJob = throughService(
      [
        { n: 1, seen: false },
        { n: 2, seen: false },
      ],
      ['200', '200', '200'],
    );
    const result = byName(await verifyVm(harness(healthyVm(), mesh).ctx), 'mesh-to-vm-mtls');
    expect([result.status, result.hintId]).toEqual(['fail', 'mtls-service-unseen']);
    expect(result.summary).toBe(
      `mesh client never saw the VM's ServiceEntry: the client's sidecar did not get the endpoint of ${host}:8080 in 2 attempt(s), 1 s apart`,
    );
  });

  it('with a revision the mTLS Job asks for that revision; the plaintext Job has no sidecar', async () => {
    const h = harness(healthyVm(), healthyMesh(), { revision: 'canary' });
    await verifyVm(h.ctx);
    expect(h.jobs.map((j) => [j.injectSidecar, j.revision])).toEqual([
      [true, 'canary'],
      [false, undefined],
    ]);
    const d = harness(healthyVm(), healthyMesh(), { revision: 'default' });
    await verifyVm(d.ctx);
    expect(d.jobs[0]!.revision).toBeUndefined();
  });
});

describe("xds-connected reflects pilot-agent's connection to istiod, not only Envoy's pipe to the agent", () => {
  // pilot-agent's own lines (pkg/istio-agent/xds_proxy.go); Envoy's upstream_cx_active stays 1 meanwhile.
  const CONNECTED =
    '2026-11-26T10:00:01.000000Z\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012';
  const FAILED =
    '2026-11-26T10:00:09.000000Z\terror\txdsproxy\tfailed to connect to upstream istiod.istio-system.svc:15012: context deadline exceeded';
  const TERMINATED =
    '2026-11-26T10:00:09.000000Z\twarn\txdsproxy\tupstream terminated with unexpected error rpc error: code = Unavailable desc = error reading from server: EOF';

  const run = async (lastEvent: string) => {
    const vm = healthyVm();
    vm.sections1['xds-upstream'] = { body: `${lastEvent}\n` };
    return byName(await verifyVm(harness(vm, healthyMesh()).ctx), 'xds-connected');
  };

  it('last upstream event "connected": passes, with that line as evidence', async () => {
    const r = await run(CONNECTED);
    expect(r.status).toBe('pass');
    expect(r.evidence).toContain(`istiod connection (agent log): ${CONNECTED}`);
  });

  it.each([
    ['failed to connect', FAILED],
    ['upstream terminated', TERMINATED],
  ])('last upstream event "%s" (pipe to the agent still up): fails with xds-upstream-down', async (_name, line) => {
    const r = await run(line);
    expect([r.status, r.hintId]).toEqual(['fail', 'xds-upstream-down']);
    expect(r.evidence).toEqual(
      expect.arrayContaining(['cluster.xds-grpc.upstream_cx_active: 1', `agent log: ${line}`]),
    );
  });

  // Envoy's ADS stream is one request on xds-grpc; pilot-agent closes it when its stream to istiod fails
  // (pkg/istio-agent/xds_proxy_delta.go), while the connection to the agent stays up.
  const withStreams = (active: string) => {
    const vm = healthyVm();
    vm.sections1.stats = ok(`${vm.sections1.stats!.body}cluster.xds-grpc;.upstream_rq_active: ${active}\n`);
    vm.sections1['agent-err-log'] = {
      body:
        '[2026-11-26 10:00:09.000][7][warning][config] DeltaAggregatedResources gRPC config stream to xds-grpc closed: ' +
        '14, connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.1:15012: connect: connection refused"\n',
    };
    return vm;
  };

  it('no open xDS stream while the connection to the agent is up (istiod cut off, log still says connected): fails naming the reason', async () => {
    const vm = withStreams('0');
    vm.sections1['xds-upstream'] = { body: `${CONNECTED}\n` };
    const r = byName(await verifyVm(harness(vm, healthyMesh()).ctx), 'xds-connected');
    expect([r.status, r.hintId]).toEqual(['fail', 'xds-upstream-down']);
    expect(r.summary).toBe(
      "pilot-agent is not connected to istiod: Envoy's xDS stream through it is closed (cluster.xds-grpc.upstream_rq_active = 0, connection to the agent up)",
    );
    expect(r.evidence).toEqual(
      expect.arrayContaining([
        'cluster.xds-grpc.upstream_cx_active: 1',
        'cluster.xds-grpc.upstream_rq_active: 0',
        expect.stringMatching(/^envoy log: .*xds-grpc closed: 14, .*connection refused/),
      ]),
    );
  });

  // What the real agent shows with its provisioned certificate gone and a token istiod's TokenReview refuses
  // (lab fault token-rejected): gRPC code 16 is Unauthenticated — not a reachability problem.
  it('stream closed with "16, authentication failure": xds-upstream-down names the refused token, not only reachability', async () => {
    const vm = withStreams('0');
    vm.sections1['agent-err-log'] = {
      body: '[2026-12-07 15:42:02.998][10248][warning][config] DeltaAggregatedResources gRPC config stream to xds-grpc closed: 16, authentication failure\n',
    };
    const r = byName(await verifyVm(harness(vm, healthyMesh()).ctx), 'xds-connected');
    expect([r.status, r.hintId]).toEqual(['fail', 'xds-upstream-down']);
    expect(r.hint).toMatch(
      /closed: 16, authentication failure\); likely: token rejected: istiod refused the bootstrap token/,
    );
    expect(r.hint).toMatch(/Fix: if istiod refused the agent \(authentication failure\), fix the token or root cert/);
  });

  // What the real agent shows with 15012 dropped (lab fault block-15012): Envoy's stream to the agent is open,
  // nothing accepted, and no upstream event yet — only the CA client's timeouts.
  it('no upstream event, no config, the agent log timing out on 15012: xds-upstream-down, not "connected to istiod"', async () => {
    const vm = withStreams('1');
    statsWith({ 'cluster_manager.cds.update_success': '0', 'listener_manager.lds.update_success': '0' })(vm);
    vm.sections1['agent-err-log'] = { body: '' };
    const timeout =
      '2026-12-07T15:42:00.000000Z\twarn\tca\tca request failed, starting attempt 2 in 200ms: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 10.233.0.1:15012: i/o timeout"';
    vm.sections1['agent-log'] = { body: `${timeout}\n` };
    const r = byName(await verifyVm(harness(vm, healthyMesh()).ctx), 'xds-connected');
    expect([r.status, r.hintId]).toEqual(['fail', 'xds-upstream-down']);
    expect(r.summary).toMatch(/^pilot-agent has not connected to istiod: no config accepted \(cds 0, lds 0\)/);
    expect(r.evidence).toContain(`agent log: ${timeout}`);
    // Without such a line the verdict stays "no config accepted".
    const quiet = withStreams('1');
    statsWith({ 'listener_manager.lds.update_success': '0' })(quiet);
    quiet.sections1['agent-err-log'] = { body: '' };
    expect(byName(await verifyVm(harness(quiet, healthyMesh()).ctx), 'xds-connected').hintId).toBe('xds-no-config');
  });

  it('the xDS stream open: passes, with the stream count as evidence', async () => {
    const vm = withStreams('1');
    vm.sections1['xds-upstream'] = { body: `${CONNECTED}\n` };
    const r = byName(await verifyVm(harness(vm, healthyMesh()).ctx), 'xds-connected');
    expect(r.status).toBe('pass');
    expect(r.evidence).toContain('cluster.xds-grpc.upstream_rq_active: 1');
  });

  it('no upstream event in the log: passes on the Envoy stats, saying only the pipe is known', async () => {
    const r = await run('');
    expect(r.status).toBe('pass');
    expect(r.evidence).toContain(
      'istiod connection: no upstream event of this run in istio.log (only the pipe to pilot-agent is known)',
    );
  });
});

describe('STRICT applied moments ago: plaintext accepted while the policy travels to the sidecar', () => {
  it('repeats the plaintext Job (1 s, 2 s, … within 10 s) and passes once plaintext is refused', async () => {
    const mesh = healthyMesh();
    const answers = [callsOf('200', '200', '200'), callsOf('200', '000', '000'), callsOf('000', '000', '000')];
    const h = harness(healthyVm(), mesh);
    const runJob = h.ctx.meshProbe.runVerificationJob.bind(h.ctx.meshProbe);
    h.ctx.meshProbe.runVerificationJob = async (spec) => {
      if (!spec.injectSidecar)
        mesh.plaintextJob = { succeeded: true, calls: answers.shift() ?? callsOf('000', '000', '000'), logs: '' };
      return runJob(spec);
    };
    const result = byName(await verifyVm(h.ctx), 'mesh-to-vm-mtls');
    expect(result.status).toBe('pass');
    expect(h.jobs.map((j) => j.injectSidecar)).toEqual([true, false, false, false]);
    expect(result.evidence).toEqual(
      expect.arrayContaining([
        'plaintext Job attempt 1 (not injected) → http://10.233.0.11:8080/healthz: 200 200 200',
        'plaintext Job attempt 2 (not injected) → http://10.233.0.11:8080/healthz: 200 000 000',
        'plaintext Job attempt 3 (not injected) → http://10.233.0.11:8080/healthz: 000 000 000',
      ]),
    );
  });

  it('a plaintext acceptance that outlasts the propagation time fails, after a bounded number of attempts', async () => {
    const mesh = healthyMesh();
    mesh.plaintextJob = { succeeded: true, calls: callsOf('200', '200', '200'), logs: '' };
    const h = harness(healthyVm(), mesh);
    const result = byName(await verifyVm(h.ctx), 'mesh-to-vm-mtls');
    expect(result.status).toBe('fail');
    expect(result.hint).toMatch(/PeerAuthentication not STRICT for this workload/);
    // 1 + 2 + 4 s of pauses fit in 10 s; 8 more would not.
    expect(h.jobs.filter((j) => !j.injectSidecar)).toHaveLength(4);
    expect(result.summary).toMatch(
      /^plaintext accepted: 3 of 3 plaintext calls answered under STRICT \(on each of 4 attempts within 10 s/,
    );
  });
});

// ---------------------------------------------------------------- failure table

interface FailureCase {
  title: string;
  check: CheckName;
  hintId: string;
  vm?: (s: VmState) => void;
  mesh?: (m: MeshState) => void;
  ctx?: Partial<VerifyContext>;
  summary?: RegExp;
  hint?: RegExp;
  evidence?: RegExp;
  /** Checks expected to be skipped as a consequence. */
  skipped?: CheckName[];
}

const notReady = (reason: string, log: string) => (s: VmState) => {
  s.sections1.ready = { http: '503', body: 'attempts=31 elapsed_ms=30010 outcome=timeout\n' };
  s.sections1['not-ready-line'] = { body: `2026-11-26T10:00:05Z\twarn\tEnvoy proxy is NOT ready: ${reason}\n` };
  s.sections1['agent-log'] = { body: log };
};
const NOT_RECEIVED =
  'config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected';
const statsWith = (replace: Record<string, string>) => (s: VmState) => {
  let body = STATS_OK;
  for (const [k, v] of Object.entries(replace))
    body = body.replace(new RegExp(`^${k.replace(/[.|]/g, '\\$&')}: .*$`, 'm'), `${k}: ${v}`);
  s.sections1.stats = ok(body);
};
const withLeaf =
  (leaf: string, root = CA.certPem) =>
  (s: VmState) => {
    s.sections1.secrets = ok(secretsDumpJson(leaf + root, root));
  };

const CASES: FailureCase[] = [
  {
    title: 'crash-looping unit (restart count grows), with scrubbed log evidence',
    check: 'sidecar-running',
    hintId: 'crash-loop',
    vm: (s) => {
      s.sections1['unit-before'] = { body: UNIT_OK.replace('NRestarts=0', 'NRestarts=3') };
      s.sections1['unit-after'] = { body: UNIT_OK.replace('NRestarts=0', 'NRestarts=4').replace('4242', '4300') };
      s.sections1['agent-err-log'] = {
        body: 'error\tfailed to read token s3cr3t-token-value: Unauthenticated eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\n',
      };
    },
    summary: /^crash-looping: NRestarts 3 → 4 within 2\.0 s/,
    hint: /crash-looping/,
    evidence: /istio\.err\.log: error\tfailed to read token \[redacted\]: Unauthenticated \[redacted token\]/,
    skipped: ['sidecar-ready', 'xds-connected', 'workload-certificate', 'vm-to-mesh', 'mesh-to-vm-mtls'],
  },
  {
    title: 'unit in auto-restart',
    check: 'sidecar-running',
    hintId: 'crash-loop',
    vm: (s) => {
      s.sections1['unit-after'] = {
        body: 'LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=0\nMainPID=0\nis-active=activating\n',
      };
      s.sections1['agent-log'] = {
        body: '2026-11-26T10:00:01Z\tinfo\tStarting proxy agent\n2026-11-26T10:00:02Z\terror\tEnvoy exited with error: signal: segmentation fault\n',
      };
    },
    summary: /auto-restart/,
    // The exit counts as a restart under way, and the agent's last error line is named when no known cause matches.
    hint: /systemd restarted it 1 time\(s\) in [\d.]+ s\); the log shows: .*Envoy exited with error: signal: segmentation fault/,
  },
  {
    title: "crash loop on the real pilot-agent: the error it exited with is named, not its probe of Envoy's admin port",
    check: 'sidecar-running',
    hintId: 'crash-loop',
    vm: (s) => {
      s.sections1['unit-after'] = {
        body: 'LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=2\nMainPID=0\nis-active=activating\n',
      };
      // What the real agent wrote with its Envoy bootstrap template cut short (lab fault sidecar-crash-loop).
      s.sections1['agent-log'] = {
        body:
          '2026-12-07T15:20:49.963051Z\terror\tfailed to accept downstream gRPC connection grpc: the server has been stopped\n' +
          '2026-12-07T15:20:49.963089Z\tinfo\thealthcheck\tfailure threshold hit, marking as unhealthy: Get "http://127.0.0.1:15000/stats?usedonly": dial tcp 127.0.0.1:15000: connect: connection refused\n' +
          '2026-12-07T15:20:49.963274Z\terror\tfailed to initialize envoy agent: failed to generate bootstrap config: template: bootstrap:9: unexpected EOF\n',
      };
      s.sections1['agent-err-log'] = {
        body:
          '2026/12/07 15:20:49 ERROR failed to set GOMEMLIMIT package=github.com/KimMachineGun/automemlimit/memlimit error="failed to set GOMEMLIMIT: process is not in cgroup"\n' +
          'Error: failed to initialize envoy agent: failed to generate bootstrap config: template: bootstrap:9: unexpected EOF\n',
      };
    },
    summary: /^crash-looping: NRestarts 0 → 2/,
    hint: /the log shows: Error: failed to initialize envoy agent: failed to generate bootstrap config: template: bootstrap:9: unexpected EOF\. Fix:/,
  },
  {
    title: 'unit stopped',
    check: 'sidecar-running',
    hintId: 'unit-inactive',
    vm: (s) => {
      const inactive =
        'LoadState=loaded\nActiveState=inactive\nSubState=dead\nNRestarts=0\nMainPID=0\nis-active=inactive\n';
      s.sections1['unit-before'] = { body: inactive };
      s.sections1['unit-after'] = { body: inactive };
    },
    summary: /unit istio is inactive/,
  },
  {
    title: 'package not installed',
    check: 'sidecar-running',
    hintId: 'unit-missing',
    vm: (s) => {
      s.sections1['unit-before'] = { body: 'LoadState=not-found\nActiveState=inactive\nis-active=inactive\n' };
    },
  },
  {
    title: 'SSH exec fails',
    check: 'sidecar-running',
    hintId: 'probe-failed',
    vm: (s) => {
      s.execError = 'connection reset by peer';
    },
    summary: /could not run the verification script/,
    evidence: /connection reset/,
  },
  {
    title: 'curl missing on the VM',
    check: 'sidecar-running',
    hintId: 'tool-missing',
    vm: (s) => {
      s.tools = '@@ivo tools curl=no base64=yes systemctl=yes\n';
    },
    hint: /install curl/,
  },
  {
    title: 'istiod down (connection refused)',
    check: 'sidecar-ready',
    hintId: 'istiod-refused',
    vm: notReady(
      NOT_RECEIVED,
      'warn\tca\tca request failed: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 10.233.0.1:15012: connect: connection refused"\n',
    ),
    summary: /answered 503 .* config not received from XDS server/,
    evidence: /Envoy proxy is NOT ready: config not received/,
    skipped: ['vm-to-mesh', 'mesh-to-vm-mtls'],
  },
  {
    title: '15012 blocked (i/o timeout)',
    check: 'sidecar-ready',
    hintId: 'port-15012-blocked',
    vm: notReady(NOT_RECEIVED, 'warn\txds\tdial tcp 10.233.0.1:15012: i/o timeout\n'),
    hint: /15012 unreachable from VM/,
  },
  {
    title: "istiod down now, a token rejected by an earlier run of the sidecar: only the current run's lines count",
    check: 'sidecar-ready',
    hintId: 'istiod-refused',
    vm: (s) => {
      notReady(
        NOT_RECEIVED,
        [
          '2026-11-26T09:00:01.000000Z\twarn\tca\tca request failed: rpc error: code = Unauthenticated desc = authentication failure',
          // The previous run's last attempt, 0.8 s before the restart: the same second as the start.
          '2026-11-26T09:59:59.400000Z\twarn\tca\tca request failed: rpc error: code = Unauthenticated desc = authentication failure',
          '2026-11-26T10:00:00.300000Z\tinfo\tStarting proxy agent',
          '2026-11-26T10:00:01.500000Z\twarn\txds\tXDS client connection error: dial tcp 10.233.0.1:15012: connect: connection refused',
          '',
        ].join('\n'),
      )(s);
      // The unit's current run started at 2026-11-26 10:00:00.200 UTC (its main process, /proc).
      s.sections1['unit-started'] = { body: `ms=${Date.UTC(2026, 10, 26, 10, 0, 0, 200)}\n` };
    },
    evidence: /agent log: .*connect: connection refused/,
  },
  {
    title: 'wrong root cert (agent cannot verify istiod)',
    check: 'sidecar-ready',
    hintId: 'root-cert-rejected-by-agent',
    vm: notReady(
      NOT_RECEIVED,
      'warn\tca\ttransport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\n',
    ),
  },
  {
    title: 'token rejected',
    check: 'sidecar-ready',
    hintId: 'token-rejected',
    vm: notReady(
      NOT_RECEIVED,
      'error\tcache\tresource:default failed to sign: rpc error: code = Unauthenticated desc = request authenticate failure\n',
    ),
    hint: /token rejected: .*audience must be istio-ca/,
  },
  {
    title: 'config rejected by Envoy',
    check: 'sidecar-ready',
    hintId: 'config-rejected',
    vm: notReady(
      'config received from XDS server, but was rejected: cds updates: 1 successful, 2 rejected; lds updates: 0 successful, 1 rejected',
      '',
    ),
  },
  {
    title: 'Envoy not live',
    check: 'sidecar-ready',
    hintId: 'envoy-not-live',
    vm: notReady('workers have not yet started', ''),
  },
  {
    title: 'not ready without a known cause',
    check: 'sidecar-ready',
    hintId: 'config-not-received',
    vm: notReady(NOT_RECEIVED, ''),
  },
  {
    title: 'nothing on 15021 (connection refused)',
    check: 'sidecar-ready',
    hintId: 'ready-timeout',
    vm: (s) => {
      s.sections1.ready = { http: '000', body: 'attempts=31 elapsed_ms=30000 outcome=timeout curl_rc=7\n' };
    },
    summary: /did not answer \(nothing listening on 15021\)/,
  },
  {
    // pilot-agent holds the readiness request while istiod is unreachable: a listener that never answers.
    title: '15021 listening but never answering (curl timed out)',
    check: 'sidecar-ready',
    hintId: 'ready-timeout',
    vm: (s) => {
      s.sections1.ready = { http: '000', body: 'attempts=15 elapsed_ms=30000 outcome=timeout curl_rc=28\n' };
    },
    summary: /did not answer \(no answer within 2 s on 15021\) over 30\.0 s/,
  },
  {
    title: 'no xDS connection',
    check: 'xds-connected',
    hintId: 'xds-not-connected',
    vm: statsWith({ 'cluster.xds-grpc;.upstream_cx_active': '0' }),
    summary: /upstream_cx_active = 0/,
  },
  {
    title: 'xDS connection stat absent (usedonly) counts as 0',
    check: 'xds-connected',
    hintId: 'xds-not-connected',
    vm: (s) => {
      s.sections1.stats = ok(
        STATS_OK.split('\n')
          .filter((l) => !l.startsWith('cluster.xds-grpc'))
          .join('\n'),
      );
    },
  },
  {
    title: 'xDS updates rejected',
    check: 'xds-connected',
    hintId: 'xds-config-rejected',
    vm: statsWith({ 'cluster_manager.cds.update_rejected': '1' }),
  },
  {
    title: 'no config accepted',
    check: 'xds-connected',
    hintId: 'xds-no-config',
    vm: statsWith({ 'listener_manager.lds.update_success': '0' }),
  },
  {
    title: 'admin port down',
    check: 'xds-connected',
    hintId: 'stats-unavailable',
    vm: (s) => {
      s.sections1.stats = refused(15000);
    },
    evidence: /Failed to connect to localhost port 15000/,
  },
  {
    title: 'wrong trust domain',
    check: 'workload-certificate',
    hintId: 'cert-trust-domain',
    ctx: { trustDomain: 'corp.example' },
    summary: /^cert SAN is spiffe:\/\/cluster\.local\/ns\/vm-ns\/sa\/vm-sa but mesh trust domain is corp\.example$/,
  },
  {
    title: 'another identity',
    check: 'workload-certificate',
    hintId: 'cert-identity',
    vm: withLeaf(makeWorkloadCert(CA, 'spiffe://cluster.local/ns/other/sa/default')),
    summary: /expected spiffe:\/\/cluster\.local\/ns\/vm-ns\/sa\/vm-sa/,
  },
  {
    title: 'cert from another CA (root mismatch)',
    check: 'workload-certificate',
    hintId: 'cert-root-mismatch',
    vm: withLeaf(makeWorkloadCert(OTHER_CA, SPIFFE), OTHER_CA.certPem),
    hint: /istio-ca-root-cert changed/,
  },
  {
    title: 'root cert on the VM is not the mesh root',
    check: 'workload-certificate',
    hintId: 'cert-root-mismatch',
    vm: (s) => {
      s.sections1['root-cert'] = { body: OTHER_CA.certPem };
    },
    evidence: /differs from the mesh root cert/,
  },
  {
    title: 'expired cert',
    check: 'workload-certificate',
    hintId: 'cert-expired',
    vm: withLeaf(
      makeWorkloadCert(CA, SPIFFE, {
        notBefore: new Date('2026-11-25T00:00:00Z'),
        notAfter: new Date('2026-11-26T11:00:00Z'),
      }),
    ),
  },
  {
    title: 'cert expiring within the threshold',
    check: 'workload-certificate',
    hintId: 'cert-expiring',
    vm: withLeaf(
      makeWorkloadCert(CA, SPIFFE, {
        notBefore: new Date('2026-11-25T00:00:00Z'),
        notAfter: new Date('2026-11-26T12:30:00Z'),
      }),
    ),
    summary: /in 30 min/,
  },
  {
    title: 'no workload cert in Envoy, the one in /etc/certs expired (the VM was off too long)',
    check: 'workload-certificate',
    hintId: 'cert-rebootstrap',
    vm: (s) => {
      s.sections1.secrets = ok('{"configs":[]}');
      s.sections1.certs = ok('{"certificates":[]}');
      s.sections1['provisioned-cert'] = {
        body: makeWorkloadCert(CA, SPIFFE, {
          notBefore: new Date('2026-11-20T00:00:00Z'),
          notAfter: new Date('2026-11-21T00:00:00Z'),
        }),
      };
    },
    summary:
      /^certificate expired: re-bootstrap needed \(\/etc\/certs\/cert-chain\.pem expired at 2026-11-21T00:00:00\.000Z\)$/,
    evidence: /\/etc\/certs\/cert-chain\.pem: serial [0-9a-f]+, notAfter 2026-11-21T00:00:00\.000Z/,
    hint: /rerun `onboard` for this VM: it re-bootstraps it/,
  },
  {
    title: "Envoy's cert expired and so did the one in /etc/certs",
    check: 'workload-certificate',
    hintId: 'cert-rebootstrap',
    vm: (s) => {
      const expired = makeWorkloadCert(CA, SPIFFE, {
        notBefore: new Date('2026-11-25T00:00:00Z'),
        notAfter: new Date('2026-11-26T11:00:00Z'),
      });
      withLeaf(expired)(s);
      s.sections1['provisioned-cert'] = { body: expired };
    },
    summary: /^certificate expired: re-bootstrap needed \(.* expired at 2026-11-26T11:00:00\.000Z\)$/,
  },
  {
    title: 'no workload cert in Envoy',
    check: 'workload-certificate',
    hintId: 'cert-missing',
    vm: (s) => {
      s.sections1.secrets = ok('{"configs":[]}');
      s.sections1.certs = ok('{"certificates":[]}');
    },
  },
  {
    title: '/certs fallback: CA serial does not match the installed root',
    check: 'workload-certificate',
    hintId: 'cert-trust-domain',
    vm: (s) => {
      s.sections1.secrets = refused(15000);
    },
    // The reference /certs carries spiffe://cluster.local/ns/ambient/...; checked against corp.example.
    ctx: { trustDomain: 'corp.example' },
    evidence: /\/certs leaf: serial 6fbee254c22900615cb1f74e3d2f1713/,
  },
  {
    title: 'autoregistration off',
    check: 'workload-entry',
    hintId: 'we-autoregistration-off',
    mesh: (m) => {
      delete m.entry;
      m.autoRegistration = false;
    },
    hint: /PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false on istiod/,
  },
  {
    title: 'WorkloadGroup missing',
    check: 'workload-entry',
    hintId: 'we-group-missing',
    mesh: (m) => {
      delete m.entry;
      m.groupExists = false;
    },
  },
  {
    title: 'no entry after the wait',
    check: 'workload-entry',
    hintId: 'we-missing',
    mesh: (m) => {
      delete m.entry;
    },
    summary: /no WorkloadEntry with address 10\.233\.0\.11 in vm-ns after 20\.0 s/,
    hint: /an entry deleted while it stays connected is not re-created: rerun onboard/,
  },
  {
    title: 'app down: entry not Healthy',
    check: 'workload-entry',
    hintId: 'we-unhealthy',
    mesh: (m) => {
      m.entry = healthyEntry(
        'False',
        'Get "http://10.233.0.11:8080/healthz": dial tcp 10.233.0.11:8080: connect: connection refused',
      );
    },
    hint: /application is down.*start the application on the VM \(port 8080\)/,
  },
  {
    title: 'entry marked disconnected: no istiod holds the VM (its Healthy condition is from before)',
    check: 'workload-entry',
    hintId: 'we-disconnected',
    mesh: (m) => {
      const entry = healthyEntry();
      entry.metadata.annotations = {
        ...entry.metadata.annotations,
        'istio.io/disconnectedAt': '2026-12-07T18:48:40.123456789Z',
      };
      m.entry = entry;
    },
    summary: /vm-app-10\.233\.0\.11 is marked disconnected since 2026-12-07T18:48:40\.123456789Z after 20\.0 s/,
    hint: /no istiod holds the VM's xDS connection/,
  },
  {
    title: 'no Healthy condition',
    check: 'workload-entry',
    hintId: 'we-health-unknown',
    mesh: (m) => {
      m.entry = healthyEntry('none');
    },
  },
  {
    title: 'cluster read fails',
    check: 'workload-entry',
    hintId: 'we-read-failed',
    mesh: (m) => {
      m.entryError = 'workloadentries.networking.istio.io is forbidden';
    },
  },
  {
    title: 'DNS capture off',
    check: 'vm-to-mesh',
    hintId: 'dns-capture-off',
    vm: (s) => {
      s.sections2.resolve = { rc: 2, body: '' };
      s.sections2['vm-to-mesh'] = {
        rc: 6,
        http: '000',
        stderr: 'curl: (6) Could not resolve host: mesh-echo.lab.svc.cluster.local\n',
      };
    },
    summary: /could not resolve mesh-echo\.lab\.svc\.cluster\.local/,
    hint: /ISTIO_META_DNS_CAPTURE/,
  },
  {
    title: 'mesh service down (connect failure)',
    check: 'vm-to-mesh',
    hintId: 'mesh-service-unreachable',
    vm: (s) => {
      s.sections2['vm-to-mesh'] = {
        rc: 56,
        http: '000',
        stderr: 'curl: (56) Recv failure: Connection reset by peer\n',
      };
    },
  },
  {
    title: 'mesh service down (503 from the sidecar)',
    check: 'vm-to-mesh',
    hintId: 'mesh-service-http-error',
    vm: (s) => {
      s.sections2['vm-to-mesh'] = { rc: 0, http: '503', body: 'no healthy upstream' };
    },
  },
  {
    title: 'plaintext accepted under STRICT',
    check: 'mesh-to-vm-mtls',
    hintId: 'plaintext-accepted',
    mesh: (m) => {
      m.plaintextJob = { succeeded: true, calls: callsOf('200', '200', '200'), logs: '' };
    },
    summary: /plaintext accepted: 3 of 3/,
    hint: /PeerAuthentication not STRICT for this workload/,
  },
  {
    title: 'calls from the mesh fail (app down)',
    check: 'mesh-to-vm-mtls',
    hintId: 'mtls-calls-failed',
    mesh: (m) => {
      m.mtlsJob = { succeeded: true, calls: callsOf('503', '503', '503'), logs: '' };
    },
  },
  {
    title: 'calls succeed but not over mTLS',
    check: 'mesh-to-vm-mtls',
    hintId: 'mtls-not-mutual',
    vm: (s) => {
      s.sections2.prometheus = ok(promWith(38));
    },
    summary: /3 calls succeeded but istio_requests_total.* grew by 1/,
  },
  {
    title: 'Job cannot run',
    check: 'mesh-to-vm-mtls',
    hintId: 'mtls-job-failed',
    mesh: (m) => {
      m.mtlsJob = new Error('jobs.batch is forbidden');
    },
  },
  {
    title: 'Job never made calls',
    check: 'mesh-to-vm-mtls',
    hintId: 'mtls-job-failed',
    mesh: (m) => {
      m.mtlsJob = { succeeded: false, calls: [], logs: '', reason: 'DeadlineExceeded' };
    },
    summary: /DeadlineExceeded/,
  },
  {
    title: 'VM metrics unreadable',
    check: 'mesh-to-vm-mtls',
    hintId: 'metrics-unavailable',
    vm: (s) => {
      s.sections1.prometheus = refused(15090);
    },
  },
];

describe('verifyVm failure paths', () => {
  it.each(CASES.map((c) => [c.title, c] as const))('%s', async (_title, c) => {
    const vm = healthyVm();
    const mesh = healthyMesh();
    c.vm?.(vm);
    c.mesh?.(mesh);
    const h = harness(vm, mesh, c.ctx);
    const results = await verifyVm(h.ctx);
    const result = byName(results, c.check);
    expect({ status: result.status, hintId: result.hintId }).toEqual({ status: 'fail', hintId: c.hintId });
    expect(result.hint).toContain('. Fix: ');
    if (c.summary) expect(result.summary).toMatch(c.summary);
    if (c.hint) expect(result.hint).toMatch(c.hint);
    if (c.evidence) expect(result.evidence.join('\n')).toMatch(c.evidence);
    for (const name of c.skipped ?? []) expect(byName(results, name).status).toBe('skipped');
    // Only the named check (and its consequences) fails.
    for (const other of results) {
      if (other.name === c.check || (c.skipped ?? []).includes(other.name)) continue;
      if (c.check === 'sidecar-ready' && ['vm-to-mesh', 'mesh-to-vm-mtls'].includes(other.name)) continue;
      if (c.check === 'sidecar-running') continue;
      expect({ name: other.name, status: other.status }).toEqual({ name: other.name, status: 'pass' });
    }
    // Workload-entry is cluster-side: it still runs when the VM side fails.
    if (c.check === 'sidecar-running' && !c.mesh) expect(byName(results, 'workload-entry').status).toBe('pass');
    const message = describeFailure('vm-1', result);
    expect(message).toMatch(new RegExp(`^\\[vm-1\\] ${c.check}: .+ — likely cause: .+\\. Fix: .+`));
    expect(JSON.stringify(results)).not.toContain('s3cr3t-token-value');
  });
});

// ---------------------------------------------------------------- details

describe('verification details', () => {
  it('workload-entry: an entry already there is not taken for a missing one while the VM side runs (autoregistration off)', async () => {
    // istiod stopped auto-registering, but the VM's entry exists: the check waits for the VM side, then passes.
    const h = harness(healthyVm(), { ...healthyMesh(), autoRegistration: false });
    const results = await verifyVm(h.ctx);
    expect(byName(results, 'workload-entry')).toMatchObject({ status: 'pass' });
  });

  it('workload-entry fails fast when autoregistration is off and waits a bounded time otherwise', async () => {
    const mesh = { ...healthyMesh(), autoRegistration: false };
    delete mesh.entry;
    const h = harness(healthyVm(), mesh);
    await verifyVm(h.ctx);
    expect(h.weQueries).toBe(1);
    const mesh2 = healthyMesh();
    delete mesh2.entry;
    const h2 = harness(healthyVm(), mesh2);
    await verifyVm(h2.ctx);
    expect(h2.weQueries).toBe(41); // 20 s at 500 ms, bounded
  });

  it('a ready sidecar finishes its restart window in round trip 2, after the Jobs: a restart there fails sidecar-running', async () => {
    const deferred = (vm: VmState, after: string, window: string): VmState => {
      vm.sections1.ready = { http: '200', body: 'attempts=1 elapsed_ms=12 outcome=ready start_ms=1795660000000\n' };
      vm.sections1.window = { body: 'window_ms=40 deferred=1\n' };
      vm.sections2.window = { body: window };
      vm.sections2['unit-after'] = { body: after };
      return vm;
    };
    const steady = harness(deferred(healthyVm(), UNIT_OK, 'window_ms=2100 up_ms=2100\n'), healthyMesh());
    const results = await verifyVm(steady.ctx);
    expect(byName(results, 'sidecar-running')).toMatchObject({
      status: 'pass',
      summary: 'active, NRestarts=0 stable (current run up 2.1 s)',
    });
    // Round trip 2 carries the window, anchored where round trip 1 began (VM clock).
    expect(steady.scripts).toHaveLength(2);
    expect(steady.scripts[1]).toContain("\nIVO_WINDOW_START_MS='1795660000000'\n");
    expect(steady.scripts[1]).toContain('ivo_restart_window "$IVO_WINDOW_START_MS"');

    const restarted = UNIT_OK.replace('NRestarts=0', 'NRestarts=1').replace('MainPID=4242', 'MainPID=4343');
    const looping = harness(deferred(healthyVm(), restarted, 'window_ms=2100 up_ms=300\n'), healthyMesh());
    const running = byName(await verifyVm(looping.ctx), 'sidecar-running');
    expect(running.status).toBe('fail');
    expect(running.summary).toMatch(/^crash-looping: NRestarts 0 → 1/);

    // Round trip 2 failed: the verdict rests on round trip 1 and says the window was not observed.
    const cut = deferred(healthyVm(), UNIT_OK, '');
    cut.sections2 = {};
    const blind = byName(await verifyVm(harness(cut, healthyMesh()).ctx), 'sidecar-running');
    expect(blind).toMatchObject({ status: 'pass' });
    expect(blind.summary).toMatch(/restart window not observed/);
  });

  it('round trip 1 is told to defer the window (the script defers it only for a ready sidecar)', () => {
    const options = { restartWindowMs: 2000, readyTimeoutMs: 30000, readyPollMs: 250, logTailLines: 5 };
    expect(buildProbeScript({ ...options, deferWindowWhenReady: true })).toContain("\nIVO_DEFER_WINDOW='1'\n");
    expect(buildProbeScript(options)).toContain("\nIVO_DEFER_WINDOW='0'\n");
  });

  it('workload-entry passes without a Healthy condition when health checks are off, and for static entries', async () => {
    const mesh = { ...healthyMesh(), entry: healthyEntry('none') };
    const h = harness(healthyVm(), mesh, { group: { ...GROUP, probe: undefined } as unknown as GroupSpec });
    expect(byName(await verifyVm(h.ctx), 'workload-entry').summary).toMatch(/health checks off/);
    const h2 = harness(healthyVm(), healthyMesh(), { group: { ...GROUP, registration: 'static' } });
    expect(byName(await verifyVm(h2.ctx), 'workload-entry').status).toBe('pass');
  });

  it('picks the mTLS target as ADR 0002 says', () => {
    const base = harness(healthyVm(), healthyMesh()).ctx;
    expect(defaultMtlsTarget(base)).toEqual({ url: 'http://10.233.0.11:8080/healthz', protocol: 'http', port: 8080 });
    const tcp = { ...base, group: { ...GROUP, ports: { 'tcp-amqp': 5672 }, probe: { tcpSocket: { port: 5672 } } } };
    expect(defaultMtlsTarget(tcp)).toEqual({ url: 'http://10.233.0.11:5672/', protocol: 'tcp', port: 5672 });
    const v6 = { ...base, workloadAddress: 'fd00::11' };
    expect(defaultMtlsTarget(v6).url).toBe('http://[fd00::11]:8080/healthz');
  });

  it('uses istio_tcp_connections_opened_total for TCP targets', async () => {
    const vm = healthyVm();
    const tcpLine = (n: number) =>
      `# TYPE istio_tcp_connections_opened_total counter\nistio_tcp_connections_opened_total{reporter="destination",connection_security_policy="mutual_tls"} ${n}\n`;
    vm.sections1.prometheus = ok(tcpLine(5));
    vm.sections2.prometheus = ok(tcpLine(8));
    const h = harness(vm, healthyMesh(), { mtlsTarget: { url: 'http://10.233.0.11:5672/', protocol: 'tcp' } });
    const r = byName(await verifyVm(h.ctx), 'mesh-to-vm-mtls');
    expect(r.status).toBe('pass');
    expect(r.evidence).toContain(
      'istio_tcp_connections_opened_total{reporter="destination",connection_security_policy="mutual_tls"}: 5 → 8 (+3)',
    );
  });

  it('names Jobs as DNS-1123 labels', () => {
    expect(verificationJobName('VM_01.prod', 'x1y2z')).toBe('ivo-verify-vm-01-prod-x1y2z');
    const long = verificationJobName('a'.repeat(80), 'abcde');
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^ivo-verify-a+-abcde$/);
  });

  it('every hint has a cause and a fix, and the README table lists them all', () => {
    const md = renderHintsMarkdown();
    for (const [id, h] of Object.entries(allHints())) {
      expect(h.cause.length).toBeGreaterThan(10);
      expect(h.fix.length).toBeGreaterThan(10);
      expect(md).toContain(`\`${id}\``);
    }
  });
});

// ---------------------------------------------------------------- an eighth check, in this file only

/** A test-only check: free space on the VM's root file system, read in round trip 1 by its own shell. */
const diskFree: CheckDefinition = {
  name: 'disk-free',
  short: 'disk',
  passesWhen: 'the root file system has room left',
  dependsOn: ['sidecar-ready'],
  hints: { 'disk-almost-full': { cause: 'only {kib} KiB free on {path}', fix: 'free disk space on {vm}' } },
  phase: 'probe',
  collect: { probe: { values: { IVO_DISK_PATH: '/' }, text: 'ivo_cmd disk-free df -Pk "$IVO_DISK_PATH"\n' } },
  evaluate: ({ ctx, probe }) => {
    const section = probeOutput(probe).sections.get('disk-free');
    const kib = Number(/\n\S+\s+\d+\s+\d+\s+(\d+)/.exec(section?.body ?? '')?.[1] ?? 0);
    const evidence = [`df -Pk / → ${kib} KiB available`];
    return kib >= 1024
      ? passResult({ check: 'disk-free', seen: `${kib} KiB free on /`, evidence, durationMs: 0 })
      : failResult(ctx, {
          check: 'disk-free',
          seen: `${kib} KiB free on /`,
          hint: 'disk-almost-full',
          vars: { kib, path: '/' },
          evidence,
          durationMs: 0,
        });
  },
};

describe('a check is one definition: a test-only eighth check', () => {
  let unregister: () => void;
  beforeAll(() => {
    unregister = registerCheck(diskFree);
  });
  afterAll(() => unregister());
  const DF = 'Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda1 8000000 2000000 6000000 25% /\n';

  it('runs: its shell goes into round trip 1 with its values, and it is evaluated from its section', async () => {
    const vm = healthyVm();
    vm.sections1['disk-free'] = { body: DF };
    const h = harness(vm, healthyMesh());
    const results = await verifyVm(h.ctx);
    expect(results.map((r) => r.name)).toEqual([...CHECK_NAMES_BUILT_IN, 'disk-free']);
    expect(byName(results, 'disk-free')).toMatchObject({ status: 'pass', summary: '6000000 KiB free on /' });
    expect(h.scripts[0]).toContain("\nIVO_DISK_PATH='/'\n");
    expect(h.scripts[0]).toContain('ivo_cmd disk-free df -Pk "$IVO_DISK_PATH"');
    vm.sections1['disk-free'] = { body: DF.replace('6000000', '12') };
    const full = byName(await verifyVm(harness(vm, healthyMesh()).ctx), 'disk-free');
    expect(full).toMatchObject({ status: 'fail', hintId: 'disk-almost-full' });
    expect(full.hint).toBe('only 12 KiB free on /. Fix: free disk space on vm-1');
  });

  it("its shell really runs in the probe script (this machine's sh and df)", () => {
    const script = buildProbeScript({ restartWindowMs: 0, readyTimeoutMs: 100, readyPollMs: 100, logTailLines: 1 }, [
      diskFree.collect!.probe!,
    ]);
    const result = spawnSync('sh', ['-s'], { input: script, encoding: 'utf8', timeout: 30_000 });
    const section = parseScriptOutput(result.stdout).sections.get('disk-free');
    expect(section).toMatchObject({ rc: 0 });
    expect(section?.body).toMatch(/^Filesystem\s+1024-blocks/);
  });

  it('is skipped, naming the cause, when its dependency did not pass', async () => {
    const notReady = healthyVm();
    notReady.sections1.ready = { http: '503', body: 'attempts=9 elapsed_ms=30000 outcome=timeout\n' };
    const skipped = byName(await verifyVm(harness(notReady, healthyMesh()).ctx), 'disk-free');
    expect(skipped).toEqual({
      name: 'disk-free',
      status: 'skipped',
      summary: 'skipped: the sidecar is not ready (see sidecar-ready)',
      evidence: [],
      durationMs: 0,
    });
    const stopped = healthyVm();
    stopped.sections1['unit-before'] = { body: UNIT_OK.replace(/active/g, 'inactive') };
    expect(byName(await verifyVm(harness(stopped, healthyMesh()).ctx), 'disk-free').summary).toBe(
      'skipped: the sidecar is not running (see sidecar-running)',
    );
  });

  it('appears in the report, the job summary, the terminal table and the hints table', async () => {
    const vm = healthyVm();
    vm.sections1['disk-free'] = { body: DF.replace('6000000', '12') };
    const checks = await verifyVm(harness(vm, healthyMesh()).ctx);
    const report = await run(makeWorld(), inventoryOf([1]), {}, { verifier: { verify: async () => checks } });
    expect(report.vms[0]!.checks.map((check) => check.name)).toContain('disk-free');
    expect(checkNames().at(-1)).toBe('disk-free');
    const summary = renderJobSummary(report);
    expect(summary).toMatch(/\| VM \| group \| address \| result \| run \| .* \| disk \| time \|/);
    expect(summary).toContain('- **disk-free**: 12 KiB free on /');
    expect(renderTerminalTable(report).split('\n')[0]).toMatch(/\sDISK-FREE\s+TIME$/);
    expect(renderHintsMarkdown()).toContain('| `disk-free` | `disk-almost-full` | only {kib} KiB free on {path} |');
  });

  it('refuses a second check of the same name, an unknown dependency, or a hint id of another check', () => {
    expect(() => registerCheck(diskFree)).toThrow(/exists already/);
    expect(() => registerCheck({ ...diskFree, name: 'other', dependsOn: ['nope'] })).toThrow(/depends on nope/);
    expect(() => registerCheck({ ...diskFree, name: 'other' })).toThrow(/belongs to disk-free/);
  });
});

describe("classifyAgentLog: the agent's probes of its own Envoy are not about istiod", () => {
  it('a refused or timed-out loopback connection (Envoy admin 15000) names no istiod cause; the 15012 one does', () => {
    const probe =
      '2026-12-07T15:20:49.963089Z\tinfo\thealthcheck\tfailure threshold hit, marking as unhealthy: Get "http://127.0.0.1:15000/stats?usedonly": dial tcp 127.0.0.1:15000: connect: connection refused';
    const timeout =
      '2026-12-07T15:20:50Z\twarn\tEnvoy proxy is NOT ready: Get "http://localhost:15000/stats": context deadline exceeded';
    expect(classifyAgentLog([probe, timeout])).toBeUndefined();
    const blocked =
      '2026-12-07T15:20:51Z\twarn\tca\tca request failed: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 10.233.0.1:15012: i/o timeout"';
    expect(classifyAgentLog([blocked, probe])).toEqual({ id: 'port-15012-blocked', line: blocked });
  });
});

describe('classifyAgentLog: an istiod answering for other names is not an untrusted root', () => {
  // The agent's line when the east-west gateway sends istiod-canary's SNI to the default istiod (recorded in the
  // lab: revision-unexposed fault, real pilot-agent and istiod).
  const mismatch =
    '[2026-12-07 18:48:45.243][27274][warning][config] DeltaAggregatedResources gRPC config stream to xds-grpc closed: 14, connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for istio-pilot.istio-system.svc, istiod-remote.istio-system.svc, istiod.istio-system.svc, not istiod-canary.istio-system.svc"';
  const unknownAuthority =
    '2026-12-07T18:48:45Z\twarn\tca\tca request failed: rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"';

  it('names the gateway route to the revision, not the root cert', () => {
    expect(classifyAgentLog([mismatch])).toEqual({ id: 'istiod-name-mismatch', line: mismatch });
    expect(classifyAgentLog([unknownAuthority])).toEqual({ id: 'root-cert-rejected-by-agent', line: unknownAuthority });
    expect(allHints()['istiod-name-mismatch']!.fix).toContain('expose-istiod-rev.yaml.tmpl');
  });
});

describe("the current run's log lines: Envoy's too, read in the VM's time zone", () => {
  // Envoy's default log format has the process's local time and no zone; the probe reports `date +%z`.
  const started = Date.parse('2026-12-07T15:51:21.000Z');
  const stale =
    '[2026-12-07 16:51:20.464][24846][warning][config] DeltaAggregatedResources gRPC config stream to xds-grpc closed: 14, connection error: desc = "transport: Error while dialing: dial tcp 10.233.2.1:15012: connect: connection refused"';
  const current =
    '[2026-12-07 16:51:35.000][24901][warning][config] DeltaAggregatedResources gRPC config stream to xds-grpc closed: 14, connection error: desc = "transport: Error while dialing: dial tcp 10.233.2.1:15012: i/o timeout"';

  it('drops an Envoy line from before the start (UTC+01:00 VM), keeps the current one; without the offset keeps both', () => {
    expect(currentRunLines([stale, current], started, 60)).toEqual([current]);
    expect(currentRunLines([stale, current], started)).toEqual([stale, current]);
    // The stale refusal no longer decides the cause of the current run.
    expect(classifyAgentLog(currentRunLines([stale, current], started, 60))?.id).toBe('port-15012-blocked');
  });

  it("reads the offset from the probe's ready note", () => {
    const out = (body: string) => ({ sections: new Map([['ready', { http: '200', body }]]) }) as never;
    expect(vmUtcOffsetMinutes(out('attempts=1 outcome=ready curl_rc=0 utc_offset=+0100\n'))).toBe(60);
    expect(vmUtcOffsetMinutes(out('attempts=1 outcome=ready curl_rc=0 utc_offset=-0330\n'))).toBe(-210);
    expect(vmUtcOffsetMinutes(out('attempts=1 outcome=ready curl_rc=0\n'))).toBeUndefined();
  });
});

describe('issue 20: the VMs of a group reaching the check together share one verification Job', () => {
  /** A clock whose timers never fire: a batch that only a timer could release would hang the test. */
  const stoppedClock = { now: () => TEST_EPOCH_MS, setTimer: () => () => undefined };

  it('one Job per kind for both VMs; each VM keeps its own verdict (vm-2 refuses: mtls-calls-failed, vm-1 passes)', async () => {
    const runs: string[][] = [];
    const batcher = new VerificationJobBatcher(
      async (_group, specs) => {
        runs.push(specs.map((s) => `${s.injectSidecar ? 'mtls' : 'plain'} ${s.name}`));
        return specs.map((s) =>
          !s.injectSidecar
            ? { succeeded: true, calls: callsOf('000', '000', '000'), logs: '', job: 'ivo-verify-vm-app-a1b2c3' }
            : s.name.includes('vm-2')
              ? { succeeded: true, calls: callsOf('503', '503', '503'), logs: '', job: 'ivo-verify-vm-app-a1b2c3' }
              : { succeeded: true, calls: callsOf('200', '200', '200'), logs: '', job: 'ivo-verify-vm-app-a1b2c3' },
        );
      },
      { clock: stoppedClock },
    );
    const group = verificationGroupKey(GROUP);
    batcher.expect(group, 'vm-1');
    batcher.expect(group, 'vm-2');
    const one = harness(healthyVm(), healthyMesh(), { verificationJobs: batcher });
    const two = harness(healthyVm(), healthyMesh(), { verificationJobs: batcher, vm: { ...VM, name: 'vm-2' } });
    const [first, second] = await Promise.all([verifyVm(one.ctx), verifyVm(two.ctx)]);
    expect(runs).toEqual([
      ['mtls ivo-verify-vm-1-abcde', 'mtls ivo-verify-vm-2-abcde'],
      ['plain ivo-verify-vm-1-abcde', 'plain ivo-verify-vm-2-abcde'],
    ]);
    // Nothing went to the per-VM Job of the mesh probe.
    expect([...one.jobs, ...two.jobs]).toEqual([]);
    const passed = byName(first, 'mesh-to-vm-mtls');
    expect(passed.status).toBe('pass');
    expect(passed.evidence).toContain("one verification Job for the group's VMs: vm-ns/ivo-verify-vm-app-a1b2c3");
    const failed = byName(second, 'mesh-to-vm-mtls');
    expect([failed.status, failed.hintId]).toEqual(['fail', 'mtls-calls-failed']);
    expect(failed.summary).toMatch(/0 of 3 calls succeeded, codes 503 503 503/);
  });

  it('a VM whose check is skipped (round trip 1 failed) withdraws: the other runs at once, alone', async () => {
    const runs: number[] = [];
    const batcher = new VerificationJobBatcher(
      async (_group, specs) => {
        runs.push(specs.length);
        return specs.map(() => ({ succeeded: true, calls: callsOf('200', '200', '200'), logs: '' }));
      },
      { clock: stoppedClock },
    );
    const group = verificationGroupKey(GROUP);
    batcher.expect(group, 'vm-1');
    batcher.expect(group, 'vm-2');
    const healthy = harness(
      healthyVm(),
      { ...healthyMesh(), mode: 'PERMISSIVE' },
      {
        verificationJobs: batcher,
        peerAuthentication: 'permissive',
      },
    );
    const broken = harness({ ...healthyVm(), execError: 'ssh: connection reset' }, healthyMesh(), {
      verificationJobs: batcher,
      vm: { ...VM, name: 'vm-2' },
    });
    const [first, second] = await Promise.all([verifyVm(healthy.ctx), verifyVm(broken.ctx)]);
    expect(byName(first, 'mesh-to-vm-mtls').status).toBe('pass');
    expect(byName(second, 'mesh-to-vm-mtls').status).toBe('skipped');
    expect(runs).toEqual([1]);
    expect(batcher.waitingFor(group)).toEqual([]);
  });
});
