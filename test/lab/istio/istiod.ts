// The lab's control plane runs Istio's real istiod (`pilot-discovery discovery`, built by
// scripts/istio/build.sh) as a child process against the lab's Kubernetes API. What it needs outside a
// cluster (pilot/pkg/bootstrap/server.go, pilot/cmd/pilot-discovery/app/cmd.go):
// - `--kubeconfig`, POD_NAMESPACE (istio-system), REVISION, its listen addresses;
// - a working directory: `./etc/cacerts/{ca-cert,ca-key,root-cert,cert-chain}.pem` is the plugged-in CA
//   (pilot/pkg/bootstrap/certcontroller.go, LocalCertDir); mesh config comes from the `istio` ConfigMap
//   because `./etc/istio/config/mesh` does not exist (pilot/pkg/bootstrap/mesh.go), the injector config
//   from `istio-sidecar-injector` because `./var/lib/istio/inject/config` does not (sidecarinjector.go).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { istioBuild } from './binaries.js';

const run = promisify(execFile);

export interface IstiodPorts {
  /** --httpAddr: /ready, /debug (Istio's default 8080; the lab's echo service has 8080 on the gateway). */
  http: number;
  /** --grpcAddr: plaintext xDS. */
  grpc: number;
  /** --secureGRPCAddr: the CA and xDS over TLS — what VMs dial through the east-west gateway. */
  secureGrpc: number;
  /** --monitoringAddr: /metrics, /version. */
  monitoring: number;
  /** --httpsAddr: the injection/validation webhooks. */
  webhook: number;
}

export const LAB_ISTIOD_PORTS: IstiodPorts = {
  http: 15080,
  grpc: 15010,
  secureGrpc: 15012,
  monitoring: 15014,
  webhook: 15017,
};

export interface RealIstiodOptions {
  kubeconfigPath: string;
  /** Working directory (cwd of the process): etc/cacerts, istiod.log. */
  workDir: string;
  /** Address every port listens on (the lab's east-west gateway address). */
  host: string;
  ports?: Partial<IstiodPorts>;
  /** Mesh trust domain of the plugged-in CA's certificates (mesh config decides the SPIFFE IDs). */
  trustDomain?: string;
  /**
   * The istiod container's args from the Deployment (`discovery --monitoringAddr=:15014 …`); read at every
   * start, so a changed Deployment followed by a restart is a rollout.
   */
  deploymentArgs: () => string[];
  /** The process environment from the Deployment (`istiodProcessEnv` in install.ts); read at every start. */
  env: () => Record<string, string>;
  /** Upper bound for `/ready` to answer 200 after start (default 90 s). */
  readyTimeoutMs?: number;
  log?: (line: string) => void;
}

const openssl = (args: string[]) => run('openssl', args, { timeout: 30_000 });

/** A self-signed root CA: `<name>-key.pem`, `<name>-cert.pem` in `dir`. */
async function makeRootCa(dir: string, name: string, commonName: string): Promise<void> {
  const f = (n: string): string => path.join(dir, n);
  await openssl(['genrsa', '-out', f(`${name}-key.pem`), '2048']);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    f(`${name}-key.pem`),
    '-sha256',
    '-days',
    '3650',
    '-subj',
    `/O=Istio/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:true',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-out',
    f(`${name}-cert.pem`),
  ]);
}

/** An intermediate CA signed by root `root` (files `<root>-key.pem`, `<root>-cert.pem`): `<name>-{key,cert}.pem`. */
async function makeIntermediateCa(
  dir: string,
  root: string,
  name: string,
  commonName: string,
  trustDomain: string,
): Promise<void> {
  const f = (n: string): string => path.join(dir, n);
  const ext = f('ca.ext');
  writeFileSync(
    ext,
    [
      '[ca]',
      'basicConstraints = critical, CA:true',
      'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      `subjectAltName = URI:spiffe://${trustDomain}/ns/istio-system/sa/citadel`,
      '',
    ].join('\n'),
  );
  await openssl(['genrsa', '-out', f(`${name}-key.pem`), '2048']);
  await openssl([
    'req',
    '-new',
    '-key',
    f(`${name}-key.pem`),
    '-subj',
    `/O=Istio/CN=${commonName}/L=lab`,
    '-out',
    f(`${name}.csr`),
  ]);
  await openssl([
    'x509',
    '-req',
    '-in',
    f(`${name}.csr`),
    '-CA',
    f(`${root}-cert.pem`),
    '-CAkey',
    f(`${root}-key.pem`),
    '-CAcreateserial',
    '-days',
    '3650',
    '-sha256',
    '-extfile',
    ext,
    '-extensions',
    'ca',
    '-out',
    f(`${name}-cert.pem`),
  ]);
}

/**
 * The four files istiod reads from ./etc/cacerts (pilot/pkg/bootstrap/istio_ca.go, createIstioCA): the signing
 * intermediate `ca-cert.pem`/`ca-key.pem`, its chain `cert-chain.pem` (intermediate + its root) and
 * `root-cert.pem`, the trusted roots — "which may contain multiple roots" — that istiod publishes as
 * istio-ca-root-cert. Each file is replaced by a rename, never rewritten in place.
 */
function installSigningFiles(dir: string, intermediate: string, signingRoot: string, trustedRoots: string[]): void {
  const f = (n: string): string => path.join(dir, n);
  const put = (file: string, text: string) => {
    writeFileSync(f(`${file}.new`), text, { mode: 0o600 });
    renameSync(f(`${file}.new`), f(file));
  };
  const read = (n: string) => readFileSync(f(n), 'utf8');
  put('ca-key.pem', read(`${intermediate}-key.pem`));
  put('ca-cert.pem', read(`${intermediate}-cert.pem`));
  put('cert-chain.pem', read(`${intermediate}-cert.pem`) + read(`${signingRoot}-cert.pem`));
  put('root-cert.pem', trustedRoots.map((r) => read(`${r}-cert.pem`)).join(''));
}

/** The plugged-in CA istiod reads from ./etc/cacerts: a root ("Lab Root CA") and an intermediate it signs with. */
export async function writePluggedInCa(cacertsDir: string, trustDomain: string): Promise<void> {
  if (existsSync(path.join(cacertsDir, 'cert-chain.pem'))) return;
  mkdirSync(cacertsDir, { recursive: true, mode: 0o700 });
  await makeRootCa(cacertsDir, 'root', 'Lab Root CA');
  await makeIntermediateCa(cacertsDir, 'root', 'intermediate', 'Lab Intermediate CA', trustDomain);
  installSigningFiles(cacertsDir, 'intermediate', 'root', ['root']);
}

/**
 * The steps of a mesh root rotation with a plugged-in CA, as an operator updates the `cacerts` Secret (each
 * followed by an istiod restart in the lab). 1 `add-root`: a second root ("Lab Root CA 2") is trusted next to
 * the first, istiod still signs with the first root's intermediate; 2 `new-intermediate`: istiod signs with an
 * intermediate of the new root, both roots still trusted; 3 `drop-old-root`: only the new root is trusted.
 */
export type RootRotationStep = 'add-root' | 'new-intermediate' | 'drop-old-root';
export const ROOT_ROTATION_STEPS: RootRotationStep[] = ['add-root', 'new-intermediate', 'drop-old-root'];

export async function rotateRoot(cacertsDir: string, step: RootRotationStep, trustDomain: string): Promise<void> {
  const f = (n: string): string => path.join(cacertsDir, n);
  if (!existsSync(f('root-2-cert.pem'))) {
    await makeRootCa(cacertsDir, 'root-2', 'Lab Root CA 2');
    await makeIntermediateCa(cacertsDir, 'root-2', 'intermediate-2', 'Lab Intermediate CA 2', trustDomain);
  }
  if (step === 'add-root') installSigningFiles(cacertsDir, 'intermediate', 'root', ['root', 'root-2']);
  else if (step === 'new-intermediate') installSigningFiles(cacertsDir, 'intermediate-2', 'root-2', ['root', 'root-2']);
  else installSigningFiles(cacertsDir, 'intermediate-2', 'root-2', ['root-2']);
}

function httpStatus(host: string, port: number, urlPath: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: urlPath, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RealIstiod {
  readonly ports: IstiodPorts;
  readonly logPath: string;
  readonly cacertsDir: string;
  readonly binary: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor(private readonly options: RealIstiodOptions) {
    this.ports = { ...LAB_ISTIOD_PORTS, ...options.ports };
    this.logPath = path.join(options.workDir, 'istiod.log');
    this.cacertsDir = path.join(options.workDir, 'etc', 'cacerts');
    this.binary = istioBuild().pilotDiscovery;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /** The command-line flags the process runs with (the seeded Deployment carries the same). */
  args(): string[] {
    const a = (p: number) => `${this.options.host}:${p}`;
    // The Deployment's own args first; the lab's addresses after them (the last value of a flag wins).
    return [
      ...this.options.deploymentArgs(),
      '--kubeconfig',
      this.options.kubeconfigPath,
      '--httpAddr',
      a(this.ports.http),
      '--grpcAddr',
      a(this.ports.grpc),
      '--secureGRPCAddr',
      a(this.ports.secureGrpc),
      '--monitoringAddr',
      a(this.ports.monitoring),
      '--httpsAddr',
      a(this.ports.webhook),
      '--shutdownDuration',
      '1s',
    ];
  }

  env(): Record<string, string> {
    return this.options.env();
  }

  readyUrl(): string {
    return `http://${this.options.host}:${this.ports.http}/ready`;
  }

  async start(): Promise<void> {
    if (this.pid) return;
    mkdirSync(this.options.workDir, { recursive: true });
    await writePluggedInCa(this.cacertsDir, this.options.trustDomain ?? 'cluster.local');
    const out = openSync(this.logPath, 'a');
    const args = this.args();
    const child = spawn(this.binary, args, {
      cwd: this.options.workDir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: this.options.workDir, ...this.env() },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.options.log?.(`istiod pid ${child.pid}: ${this.binary} ${args.join(' ')}`);
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 90_000);
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      if ((await httpStatus(this.options.host, this.ports.http, '/ready')) === 200) return;
      await sleep(250);
    }
    const why =
      child.exitCode !== null || child.signalCode !== null
        ? `exited (${child.exitCode ?? child.signalCode})`
        : 'not ready in time';
    await this.stop();
    throw new Error(`istiod ${why}; last lines of ${this.logPath}:\n${this.logTail(30)}`);
  }

  logTail(lines: number): string {
    try {
      return readFileSync(this.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** SIGTERM by pid, SIGKILL after 10 s; resolves when the process is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(killer);
  }
}
