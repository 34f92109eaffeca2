// Istio's real pilot-agent gets its workload certificate from Istio's real istiod (`up --istiod real`),
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
import { runRenderCommand } from '../../src/commands/render.js';
import { istioBuild } from './istio/binaries.js';
import { execInVm, spawnInVm, vmPath } from './vm/exec.js';
import { downLab, newLabDir, upLab } from './testing.js';
import type { LabState } from './state.js';

const run = promisify(execFile);
const NS = 'vm-ns';
const SA = 'vm-sa';
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
      `ISTIO_BIN_BASE=${path.dirname(build.pilotAgent)}`,
      'bash',
      path.join(build.packagingDir, 'istio-start.sh'),
    ],
    logFile,
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

beforeAll(async () => {
  istioBuild();
  dir = newLabDir('real-istio-agent');
  state = await upLab(dir, 1, ['--istiod', 'real']);
  await kubectl('create', 'namespace', NS);
  await kubectl('-n', NS, 'create', 'serviceaccount', SA);
  writeFileSync(path.join(dir, 'wg.yaml'), WG);
  await kubectl('apply', '-f', path.join(dir, 'wg.yaml'));
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
