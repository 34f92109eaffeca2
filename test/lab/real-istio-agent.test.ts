// Istio's real pilot-agent gets its workload certificate from Istio's real istiod,
// using exactly the files our `render --kubeconfig` writes for a VM, placed at Istio's paths inside a lab
// VM and started by Istio's own istio-start.sh (from the pinned module's tools/packaging/common).
// No Envoy is needed for this proof: with DISABLE_ENVOY=true the agent fetches the workload certificate
// at start and OUTPUT_CERTS (./etc/certs, set by istio-start.sh) receives it
// (pkg/istio-agent/agent.go initSdsServer, pilot/cmd/pilot-agent/options/options.go).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { runRenderCommand } from '../../src/commands/render.js';
import { istioBuild, xdsProbe } from './istio/binaries.js';
import { execInVm, programInVm, spawnInVm, vmPath } from './vm/exec.js';
import { downLab, faultCli, newLabDir, upLab } from './testing.js';
import { readState, type LabState } from './state.js';

const run = promisify(execFile);
const NS = 'vm-ns';
const SA = 'vm-sa';
const PROBED_WG = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: vm-probed
  namespace: ${NS}
spec:
  metadata:
    labels:
      app: vm-probed
  template:
    serviceAccount: ${SA}
  probe:
    periodSeconds: 5
    httpGet:
      path: /ready
      port: 8080
`;
const WG = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: vm-app
  namespace: ${NS}
spec:
  metadata:
    labels:
      app: vm-app
  template:
    serviceAccount: ${SA}
`;

let dir: string;
let state: LabState;
let agent: ChildProcess | undefined;

const kubectl = async (...args: string[]): Promise<string> =>
  (await run('kubectl', ['--kubeconfig', state.files.kubeconfig as string, ...args], { timeout: 30_000 })).stdout;

/** Our CLI's `render --kubeconfig` for the group (the files the action writes to a VM). */
async function renderFiles(out: string): Promise<void> {
  const err: string[] = [];
  const code = await runRenderCommand(
    [
      '-f',
      path.join(dir, 'wg.yaml'),
      '--kubeconfig',
      state.files.kubeconfig as string,
      '--dns-servers',
      state.actionInputs['INPUT_DNS-SERVERS'] as string,
      '--autoregister',
      '--internalIP',
      state.vms[0]!.ip,
      '-o',
      out,
    ],
    { stdout: { write: () => true }, stderr: { write: (t: string) => err.push(t) }, cwd: dir },
  );
  if (code !== 0) throw new Error(`render failed (${code}): ${err.join('')}`);
}

/** Places the rendered files where the action puts them on a VM (src/vm/paths.ts ISTIO_PATHS). */
async function placeFiles(out: string, token: string): Promise<void> {
  const put = async (vmFile: string, content: string, mode: string) =>
    execInVm(
      state,
      'vm1',
      ['/bin/sh', '-c', `mkdir -p "$(dirname "$1")" && cat > "$1" && chmod ${mode} "$1"`, 'sh', vmFile],
      {
        input: content,
      },
    );
  const read = (f: string) => readFileSync(path.join(out, f), 'utf8');
  await execInVm(state, 'vm1', ['rm', '-rf', '/etc/certs']);
  await put('/var/lib/istio/envoy/cluster.env', read('cluster.env'), '0644');
  await put('/etc/istio/config/mesh', read('mesh.yaml'), '0644');
  await put('/etc/certs/root-cert.pem', read('root-cert.pem'), '0644');
  await put('/var/run/secrets/tokens/istio-token', token, '0600');
  await put('/etc/hosts', `127.0.0.1 localhost\n${read('hosts')}`, '0644');
}

/** Istio's istio-start.sh as its unit runs it (cwd /), as root, without Envoy and without iptables. */
function startAgent(logFile: string): ChildProcess {
  const build = istioBuild();
  return spawnInVm(
    state,
    'vm1',
    [
      'env',
      'USER=root',
      'EXEC_USER=root',
      'ISTIO_CUSTOM_IP_TABLES=true',
      'DISABLE_ENVOY=true',
      `ISTIO_BIN_BASE=${path.dirname(programInVm(state, 'vm1', build.pilotAgent))}`,
      'bash',
      programInVm(state, 'vm1', path.join(build.packagingDir, 'istio-start.sh')),
    ],
    logFile,
  );
}

/** Istio's own ADS client (test/lab/istio/xds-probe) inside vm1, with the real agent's certificate. */
function startXdsProbe(
  log: string,
  o: { address: string; namespace: string; workload: string; ip: string; meta: Record<string, unknown> },
  extra: string[] = [],
): ChildProcess {
  return spawnInVm(
    state,
    'vm1',
    [
      programInVm(state, 'vm1', xdsProbe()),
      ...['--address', o.address, '--cert-dir', '/etc/certs', '--namespace', o.namespace],
      ...['--workload', o.workload, '--ip', o.ip, '--meta-json', JSON.stringify(o.meta), ...extra],
    ],
    log,
  );
}

async function stopAgent(): Promise<void> {
  const a = agent;
  agent = undefined;
  if (!a?.pid) return;
  try {
    process.kill(-a.pid, 'SIGTERM'); // its own process group (spawnInVm starts a new session)
  } catch {
    return;
  }
  for (let i = 0; i < 100; i += 1) {
    try {
      process.kill(-a.pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(-a.pid, 'SIGKILL');
}

/** Polls (bounded) until `done()` is true; returns whether it became true. */
async function waitFor(done: () => boolean, attempts = 240, everyMs = 250): Promise<boolean> {
  for (let i = 0; i < attempts; i += 1) {
    if (done()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return done();
}

const certChain = () => vmPath(state, 'vm1', '/etc/certs/cert-chain.pem');

/**
 * The node metadata pilot-agent builds from its environment, here the cluster.env render wrote (istio-start.sh
 * exports it): ISTIO_META_X → X, ISTIO_METAJSON_X → X parsed as JSON, POD_NAMESPACE → NAMESPACE,
 * SERVICE_ACCOUNT, ISTIO_METAJSON_LABELS → LABELS, INSTANCE_IP (= ISTIO_SVC_IP) → INSTANCE_IPS
 * (pkg/bootstrap/config.go: GetNodeMetaData, extractAttributesMetadata; istio-start.sh).
 */
function nodeMetadataFrom(clusterEnv: string): Record<string, unknown> {
  const env = new Map<string, string>();
  for (const line of clusterEnv.split('\n')) {
    const m = /^([A-Z0-9_]+)='(.*)'$/.exec(line);
    if (m) env.set(m[1] as string, m[2] as string);
  }
  const meta: Record<string, unknown> = {};
  for (const [key, value] of env) {
    if (key.startsWith('ISTIO_METAJSON_')) meta[key.slice('ISTIO_METAJSON_'.length)] = JSON.parse(value);
    else if (key.startsWith('ISTIO_META_')) meta[key.slice('ISTIO_META_'.length)] = value;
  }
  if (env.has('POD_NAMESPACE')) meta.NAMESPACE = env.get('POD_NAMESPACE');
  if (env.has('SERVICE_ACCOUNT')) meta.SERVICE_ACCOUNT = env.get('SERVICE_ACCOUNT');
  if (env.has('ISTIO_SVC_IP')) meta.INSTANCE_IPS = env.get('ISTIO_SVC_IP');
  return meta;
}

/** PROXY_CONFIG: pilot-agent puts its whole proxy config (mesh.yaml's defaultConfig) in the node metadata. */
function proxyConfigFrom(meshYaml: string): unknown {
  return (parseYaml(meshYaml) as { defaultConfig?: unknown }).defaultConfig ?? {};
}

interface WorkloadEntryLite {
  metadata: {
    name: string;
    ownerReferences?: Array<{ kind: string; name: string }>;
    annotations?: Record<string, string>;
  };
  spec: { address?: string; serviceAccount?: string; labels?: Record<string, string> };
  status?: { conditions?: Array<{ type: string; status: string; message?: string }> };
}

async function workloadEntries(): Promise<WorkloadEntryLite[]> {
  return (JSON.parse(await kubectl('-n', NS, 'get', 'workloadentries', '-o', 'json')) as { items: WorkloadEntryLite[] })
    .items;
}

beforeAll(async () => {
  istioBuild();
  xdsProbe(); // built once here (seconds with Go's build cache warm), not inside a test's time
  dir = newLabDir('real-istio-agent');
  state = await upLab(dir, 1);
  await kubectl('create', 'namespace', NS);
  await kubectl('-n', NS, 'create', 'serviceaccount', SA);
  writeFileSync(path.join(dir, 'wg.yaml'), WG);
  writeFileSync(path.join(dir, 'wg-probed.yaml'), PROBED_WG);
  await kubectl('apply', '-f', path.join(dir, 'wg.yaml'), '-f', path.join(dir, 'wg-probed.yaml'));
  // istiod's namespace controller publishes istio-ca-root-cert in the new namespace (bounded wait).
  for (let i = 0; i < 80; i += 1) {
    const r = await run(
      'kubectl',
      ['--kubeconfig', state.files.kubeconfig as string, '-n', NS, 'get', 'cm', 'istio-ca-root-cert'],
      {
        timeout: 30_000,
      },
    ).catch(() => undefined);
    if (r) break;
    await new Promise((res) => setTimeout(res, 250));
  }
}, 300_000);

afterAll(async () => {
  await stopAgent();
  if (dir) await downLab(dir);
}, 120_000);

describe('real pilot-agent against the real istiod', () => {
  it('runs the binaries built from the pinned istio.io/istio module', async () => {
    const build = istioBuild();
    expect(state.istiod?.mode).toBe('real');
    const istiodExe = `/proc/${state.istiod?.pid}/exe`;
    for (const bin of [istiodExe, build.pilotAgent]) {
      const { stdout } = await run('go', ['version', '-m', bin], { timeout: 30_000 });
      expect(stdout).toMatch(new RegExp(`\\smod\\s+istio\\.io/istio\\s+${build.moduleVersion}\\s`));
    }
    const ready = await fetch(`http://${state.gatewayIP}:15080/ready`);
    expect(ready.status).toBe(200);
  });

  it('issues a workload certificate for the rendered files that chains to the root istiod publishes', async () => {
    const out = path.join(dir, 'render-ok');
    await renderFiles(out);
    await placeFiles(out, readFileSync(path.join(out, 'istio-token'), 'utf8'));
    const log = path.join(dir, 'agent-ok.log');
    agent = startAgent(log);
    const issued = await waitFor(() => existsSync(certChain()));
    await stopAgent();
    expect({ issued, log: issued ? '' : readFileSync(log, 'utf8').slice(-3000) }).toEqual({ issued: true, log: '' });

    const published = await kubectl(
      '-n',
      NS,
      'get',
      'configmap',
      'istio-ca-root-cert',
      '-o',
      'jsonpath={.data.root-cert\\.pem}',
    );
    const rootFile = path.join(dir, 'published-root.pem');
    writeFileSync(rootFile, published);
    // The root the VM was given is the one istiod publishes (render read it from the cluster).
    expect(readFileSync(path.join(out, 'root-cert.pem'), 'utf8')).toBe(published);
    const chain = certChain();
    const verify = await run('openssl', ['verify', '-CAfile', rootFile, '-untrusted', chain, chain], {
      timeout: 30_000,
    });
    expect(verify.stdout.trim()).toBe(`${chain}: OK`);
    const san = await run('openssl', ['x509', '-in', chain, '-noout', '-ext', 'subjectAltName'], { timeout: 30_000 });
    expect(san.stdout).toContain(`URI:spiffe://cluster.local/ns/${NS}/sa/${SA}`);
  });

  it('auto-registers the VM: istiod creates its WorkloadEntry when the proxy connects with the rendered metadata', async () => {
    // The certificate the real agent got in the previous case is the proxy's identity on the xDS stream.
    expect(existsSync(certChain())).toBe(true);
    const meta = nodeMetadataFrom(readFileSync(path.join(dir, 'render-ok', 'cluster.env'), 'utf8'));
    expect(meta.AUTO_REGISTER_GROUP).toBe('vm-app');
    const vmIp = state.vms[0]!.ip;
    const log = path.join(dir, 'xds-probe.log');
    const probe = startXdsProbe(log, {
      address: 'istiod.istio-system.svc:15012',
      namespace: NS,
      workload: 'vm-app',
      ip: vmIp,
      meta: meta,
    });
    try {
      const connected = await waitFor(() => readFileSync(log, 'utf8').includes('connected'), 120);
      expect({ connected, log: connected ? '' : readFileSync(log, 'utf8').slice(-2000) }).toEqual({
        connected: true,
        log: '',
      });
      let entry: WorkloadEntryLite | undefined;
      for (let i = 0; i < 60 && !entry; i += 1) {
        entry = (await workloadEntries()).find((e) => e.spec.address === vmIp);
        if (!entry) await new Promise((r) => setTimeout(r, 250));
      }
      expect(entry?.metadata.name).toBe(`vm-app-${vmIp}`);
      expect(entry?.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`)).toEqual(['WorkloadGroup/vm-app']);
      expect(entry?.spec.serviceAccount).toBe(SA);
      expect(entry?.spec.labels?.app).toBe('vm-app');
      expect(entry?.metadata.annotations?.['istio.io/autoRegistrationGroup']).toBe('vm-app');
    } finally {
      try {
        if (probe.pid) process.kill(probe.pid, 'SIGTERM');
      } catch {
        // already gone (it exits when istiod does not answer in time)
      }
    }
    // The proxy went away: istiod marks its entry disconnected (and removes it after its grace period).
    let disconnected = false;
    for (let i = 0; i < 120 && !disconnected; i += 1) {
      const e = (await workloadEntries()).find((x) => x.spec.address === vmIp);
      disconnected = e === undefined || e.metadata.annotations?.['istio.io/disconnectedAt'] !== undefined;
      if (!disconnected) await new Promise((r) => setTimeout(r, 250));
    }
    expect(disconnected).toBe(true);
  });

  it('is refused auto-registration for a WorkloadGroup that does not exist', async () => {
    const meta = { ...nodeMetadataFrom(readFileSync(path.join(dir, 'render-ok', 'cluster.env'), 'utf8')) };
    meta.AUTO_REGISTER_GROUP = 'no-such-group';
    const log = path.join(dir, 'xds-probe-bad.log');
    const probe = startXdsProbe(
      log,
      {
        address: 'istiod.istio-system.svc:15012',
        namespace: NS,
        workload: 'no-such-group',
        ip: '10.233.250.99',
        meta: meta,
      },
      ['--wait', '10s'],
    );
    const exited = await new Promise<number | null>((resolve) => probe.once('exit', (code) => resolve(code)));
    expect(exited).not.toBe(0);
    expect(readFileSync(log, 'utf8')).not.toContain('connected');
    // pilot/pkg/autoregistration/controller.go refuses the connection (FailedPrecondition).
    expect(readFileSync(state.istiod?.logPath as string, 'utf8')).toMatch(
      /auto-registration WorkloadEntry of .* failed: cannot find WorkloadGroup vm-ns\/no-such-group/,
    );
    expect(readFileSync(log, 'utf8')).toMatch(/cannot find WorkloadGroup vm-ns\/no-such-group/);
    expect((await workloadEntries()).some((e) => e.spec.address === '10.233.250.99')).toBe(false);
  });

  it('health checks: istiod records the health the proxy reports on its auto-registered entry', async () => {
    const out = path.join(dir, 'render-probed');
    const err: string[] = [];
    const code = await runRenderCommand(
      ['--name', 'vm-probed', '-n', NS, '--kubeconfig', state.files.kubeconfig as string, '--autoregister', '-o', out],
      { stdout: { write: () => true }, stderr: { write: (t: string) => err.push(t) }, cwd: dir },
    );
    expect({ code, err: err.join('') }).toEqual({ code: 0, err: '' });
    const meshYaml = readFileSync(path.join(out, 'mesh.yaml'), 'utf8');
    expect(meshYaml).toContain('readinessProbe:'); // render carries the group's probe into the proxy config
    const ip = '10.233.250.97';
    const meta = {
      ...nodeMetadataFrom(readFileSync(path.join(out, 'cluster.env'), 'utf8')),
      INSTANCE_IPS: ip,
      PROXY_CONFIG: proxyConfigFrom(meshYaml),
    };
    const healthOf = async (): Promise<WorkloadEntryLite | undefined> =>
      (await workloadEntries()).find((e) => e.spec.address === ip);
    for (const [report, expected] of [
      ['healthy', 'True'],
      ['unhealthy', 'False'],
    ] as const) {
      const log = path.join(dir, `xds-probe-${report}.log`);
      const probe = startXdsProbe(
        log,
        { address: 'istiod.istio-system.svc:15012', namespace: NS, workload: 'vm-probed', ip: ip, meta: meta },
        ['--health', report],
      );
      try {
        expect(await waitFor(() => readFileSync(log, 'utf8').includes(`health sent: ${report}`), 120)).toBe(true);
        let entry: WorkloadEntryLite | undefined;
        for (let i = 0; i < 80; i += 1) {
          entry = await healthOf();
          if (entry?.status?.conditions?.some((c) => c.type === 'Healthy' && c.status === expected)) break;
          await new Promise((r) => setTimeout(r, 250));
        }
        expect(entry?.metadata.annotations?.['proxy.istio.io/health-checks-enabled']).toBe('true');
        expect(entry?.status?.conditions?.find((c) => c.type === 'Healthy')?.status).toBe(expected);
      } finally {
        try {
          if (probe.pid) process.kill(probe.pid, 'SIGTERM');
        } catch {
          // gone
        }
      }
    }
  });

  it('autoregistration-off: the Deployment says false, the restarted istiod runs with it, and registers nobody', async () => {
    const before = state.istiod?.pid;
    await faultCli(dir, 'fault', 'autoregistration-off');
    try {
      const after = readState(dir).istiod?.pid;
      expect(after).toBeDefined();
      expect(after).not.toBe(before);
      const deploymentEnv = await kubectl(
        '-n',
        'istio-system',
        'get',
        'deployment',
        'istiod',
        '-o',
        'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION")].value}',
      );
      expect(deploymentEnv).toBe('false');
      const processEnv = readFileSync(`/proc/${after}/environ`, 'utf8').split('\0');
      expect(processEnv).toContain('PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false');

      const meta = nodeMetadataFrom(readFileSync(path.join(dir, 'render-ok', 'cluster.env'), 'utf8'));
      const ip = '10.233.250.98';
      meta.INSTANCE_IPS = ip;
      const log = path.join(dir, 'xds-probe-off.log');
      const probe = startXdsProbe(log, {
        address: 'istiod.istio-system.svc:15012',
        namespace: NS,
        workload: 'vm-app',
        ip: ip,
        meta: meta,
      });
      try {
        // istiod registers during the connection's initialization, before it answers the first request
        // (pilot/pkg/xds/ads.go initializeProxy → WorkloadEntryController.OnConnect): once connected, it is decided.
        const connected = await waitFor(() => readFileSync(log, 'utf8').includes('connected'), 120);
        expect(connected).toBe(true);
        expect((await workloadEntries()).some((e) => e.spec.address === ip)).toBe(false);
      } finally {
        try {
          if (probe.pid) process.kill(probe.pid, 'SIGTERM');
        } catch {
          // gone
        }
      }
    } finally {
      await faultCli(dir, 'heal', 'autoregistration-off');
      state = readState(dir);
    }
  });

  it('block-15012: the VM cannot reach the real istiod while the fault is on, and can after heal', async () => {
    const dial = async (): Promise<number | null> =>
      (
        await execInVm(state, 'vm1', ['timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${state.gatewayIP}/15012`], {
          allowFailure: true,
        })
      ).code;
    expect(await dial()).toBe(0);
    await faultCli(dir, 'fault', 'block-15012', 'vm1');
    try {
      expect(await dial()).toBe(124); // dropped: the connect hangs until `timeout` ends it (not refused)
    } finally {
      await faultCli(dir, 'heal', 'block-15012', 'vm1');
    }
    expect(await dial()).toBe(0);
  });

  it('wrong-root-cert: istiod re-keyed publishes the new root; an agent holding the old root cannot reach it', async () => {
    const published = () =>
      kubectl('-n', NS, 'get', 'configmap', 'istio-ca-root-cert', '-o', 'jsonpath={.data.root-cert\\.pem}');
    const oldRoot = await published();
    const out = path.join(dir, 'render-ok');
    expect(readFileSync(path.join(out, 'root-cert.pem'), 'utf8')).toBe(oldRoot);
    await faultCli(dir, 'fault', 'wrong-root-cert');
    try {
      let newRoot = oldRoot;
      for (let i = 0; i < 80 && newRoot === oldRoot; i += 1) {
        newRoot = await published();
        if (newRoot === oldRoot) await new Promise((r) => setTimeout(r, 250));
      }
      expect(newRoot).not.toBe(oldRoot);
      await placeFiles(out, readFileSync(path.join(out, 'istio-token'), 'utf8'));
      const log = path.join(dir, 'agent-old-root.log');
      agent = startAgent(log);
      const failed = await waitFor(() => /failed to get certificate/.test(readFileSync(log, 'utf8')));
      await stopAgent();
      expect(failed).toBe(true);
      expect(existsSync(certChain())).toBe(false);
      expect(readFileSync(log, 'utf8')).toMatch(/certificate signed by unknown authority/);
    } finally {
      await faultCli(dir, 'heal', 'wrong-root-cert');
    }
    let healed = '';
    for (let i = 0; i < 80 && healed !== oldRoot; i += 1) {
      healed = await published();
      if (healed !== oldRoot) await new Promise((r) => setTimeout(r, 250));
    }
    expect(healed).toBe(oldRoot);
  });

  it('is refused a certificate when the token has the wrong audience (istiod rejects it)', async () => {
    const out = path.join(dir, 'render-bad');
    await renderFiles(out);
    const badToken = (
      await kubectl('-n', NS, 'create', 'token', SA, '--audience', 'not-istio-ca', '--duration', '10m')
    ).trim();
    await placeFiles(out, badToken);
    const log = path.join(dir, 'agent-bad.log');
    const istiodLog = state.istiod?.logPath as string;
    const before = readFileSync(istiodLog, 'utf8').length;
    agent = startAgent(log);
    const rejected = await waitFor(() => /failed to get certificate/.test(readFileSync(log, 'utf8')));
    await stopAgent();
    expect(rejected).toBe(true);
    expect(existsSync(certChain())).toBe(false);
    expect(readFileSync(log, 'utf8')).toMatch(/Unauthenticated desc = request authenticate failure/);
    const istiodSays = readFileSync(istiodLog, 'utf8').slice(before);
    expect(istiodSays).toMatch(/Failed to authenticate client .*KubeJWTAuthenticator: .*audience/i);
  });
});
