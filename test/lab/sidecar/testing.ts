// Test support: a loopback mesh (Kubernetes double + CA + istiod) and the bundled simulator run
// standalone with --root, so sidecar and istiod tests need no VM.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bundleForVm } from '../bundle.js';
import { startKubeApi, type KubeApiDouble } from '../kube/index.js';
import { MeshCa } from '../istiod/ca.js';
import { IstiodServer, type MeshService } from '../istiod/server.js';
import { istiodKubeOverRest } from '../istiod/kube-access.js';
import { kubeRestFromKubeconfig } from '../istiod/kube-rest.js';
import { fileURLToPath } from 'node:url';

export interface LoopbackMesh {
  dir: string;
  kube: KubeApiDouble;
  ca: MeshCa;
  istiod: IstiodServer;
  services: MeshService[];
  stop(): Promise<void>;
}

export async function startLoopbackMesh(o: { host?: string; cleanupGraceMs?: number } = {}): Promise<LoopbackMesh> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ivo-mesh-'));
  const ca = new MeshCa();
  const kube = await startKubeApi({ dir, seed: { rootCertPem: ca.rootCertPem } });
  const services: MeshService[] = [];
  const istiod = new IstiodServer({
    host: o.host ?? '127.0.0.1',
    port: 0,
    ca,
    kube: istiodKubeOverRest(kubeRestFromKubeconfig(kube.kubeconfigPath)),
    services: () => services,
    pushIntervalMs: 300,
    cleanupGraceMs: o.cleanupGraceMs ?? 60_000,
  });
  await istiod.start();
  return {
    dir,
    kube,
    ca,
    istiod,
    services,
    async stop() {
      await istiod.stop();
      await kube.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let bundled: string | undefined;
export async function bundledSimulator(): Promise<string> {
  if (bundled && existsSync(bundled)) return bundled;
  const dir = mkdtempSync(path.join(tmpdir(), 'ivo-sim-'));
  const out = path.join(dir, 'sidecar.mjs');
  await bundleForVm(fileURLToPath(new URL('./main.ts', import.meta.url)), out);
  bundled = out;
  return out;
}

/** Removes the bundle (a test file's afterAll), so nothing is left in the temp directory. */
export function removeBundledSimulator(): void {
  if (bundled) rmSync(path.dirname(bundled), { recursive: true, force: true });
  bundled = undefined;
}

export interface VmFiles {
  clusterEnv: string;
  mesh: string;
  token?: string;
  rootCert?: string;
  hosts: string;
}

export function writeVmRoot(root: string, f: VmFiles): void {
  for (const d of [
    'var/lib/istio/envoy',
    'etc/istio/config',
    'var/run/secrets/tokens',
    'etc/certs',
    'var/lib/istio/lab',
  ])
    mkdirSync(path.join(root, d), { recursive: true });
  writeFileSync(path.join(root, 'var/lib/istio/envoy/cluster.env'), f.clusterEnv);
  writeFileSync(path.join(root, 'etc/istio/config/mesh'), f.mesh);
  writeFileSync(path.join(root, 'etc/hosts'), f.hosts);
  const tokenPath = path.join(root, 'var/run/secrets/tokens/istio-token');
  if (f.token !== undefined) writeFileSync(tokenPath, f.token);
  else rmSync(tokenPath, { force: true });
  if (f.rootCert !== undefined) writeFileSync(path.join(root, 'etc/certs/root-cert.pem'), f.rootCert);
}

export interface RunningSimulator {
  root: string;
  offset: number;
  child: ChildProcess;
  output(): string;
  /** Settles with the exit code once the process has ended (even if it ended before this was read). */
  exited: Promise<number | null>;
  port(p: number): number;
  stop(): Promise<void>;
}

/**
 * Starts the bundled simulator on loopback with its ports shifted by `offset`, and resolves once its
 * listeners are bound (or it has exited, e.g. a crash-loop fault). Loopback ports are shared by every
 * Jest worker, so a clash (EADDRINUSE) is retried with a fresh random offset, a bounded number of times.
 */
export async function runSimulator(root: string, offset: number, attempts = 5): Promise<RunningSimulator> {
  for (let attempt = 1; ; attempt++) {
    const sim = await spawnSimulator(root, offset);
    const state = await sim.started;
    if (state === 'listening' || !/EADDRINUSE/.test(sim.output()) || attempt >= attempts) return sim;
    offset = randomOffset();
  }
}

async function spawnSimulator(
  root: string,
  offset: number,
): Promise<RunningSimulator & { started: Promise<'listening' | 'exited'> }> {
  const sim = await bundledSimulator();
  const logFile = path.join(root, 'sim.log');
  writeFileSync(logFile, '');
  const child = spawn(
    process.execPath,
    [sim, 'proxy', '--root', root, '--port-offset', String(offset), '--bind', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let markListening: () => void = () => undefined;
  const started = new Promise<'listening' | 'exited'>((resolve) => {
    markListening = () => resolve('listening');
    void exited.then(() => resolve('exited'));
  });
  const collect = (c: Buffer) => {
    out += c.toString();
    // main.ts logs this line right after every listener is bound
    if (out.includes('Starting proxy agent')) markListening();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  return {
    started,
    root,
    offset,
    child,
    exited,
    output: () => out,
    port: (p) => p + offset,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(t);
    },
  };
}

export function httpGet(
  port: number,
  p: string,
  host = '127.0.0.1',
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve) => {
    const r = http.get({ host, port, path: p, timeout: 5000 }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, headers: res.headers }));
    });
    r.on('timeout', () => r.destroy());
    r.on('error', () => resolve({ status: 0, body: '', headers: {} }));
  });
}

/** Polls until fn() is truthy; bounded by timeoutMs. */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
  stepMs = 200,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined | false;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/**
 * A port offset for a loopback simulator: its ports (15000–15090 + offset) stay in 16000–31990, below
 * the kernel's ephemeral range (32768 and up), so outgoing connections of other tests cannot take them.
 */
export function randomOffset(): number {
  return 1000 + Math.floor(Math.random() * 160) * 100;
}

/** Waits for the simulator's /healthz/ready to answer 200; on timeout the error carries its output. */
export async function waitSimulatorReady(sim: RunningSimulator, timeoutMs = 45_000): Promise<void> {
  try {
    await waitFor(async () => (await httpGet(sim.port(15021), '/healthz/ready')).status === 200, timeoutMs);
  } catch (e) {
    const exited = sim.child.exitCode !== null ? ` (exited with ${sim.child.exitCode})` : '';
    throw new Error(
      `simulator at offset ${sim.offset} not ready${exited}: ${(e as Error).message}\n--- its output ---\n${sim.output().slice(-3000)}`,
      { cause: e },
    );
  }
}

export function readLog(root: string): string {
  return existsSync(path.join(root, 'sim.log')) ? readFileSync(path.join(root, 'sim.log'), 'utf8') : '';
}
