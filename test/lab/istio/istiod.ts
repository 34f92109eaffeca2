// The lab's control plane runs Istio's real istiod (`pilot-discovery discovery`, built by
// scripts/istio/build.sh) as a child process against the lab's Kubernetes API. What it needs outside a
// cluster (pilot/pkg/bootstrap/server.go, pilot/cmd/pilot-discovery/app/cmd.go):
// - `--kubeconfig`, POD_NAMESPACE (istio-system), REVISION, its listen addresses;
// - a working directory: `./etc/cacerts/{ca-cert,ca-key,root-cert,cert-chain}.pem` is the plugged-in CA
//   (pilot/pkg/bootstrap/certcontroller.go, LocalCertDir); mesh config comes from the `istio` ConfigMap
//   because `./etc/istio/config/mesh` does not exist (pilot/pkg/bootstrap/mesh.go), the injector config
//   from `istio-sidecar-injector` because `./var/lib/istio/inject/config` does not (sidecarinjector.go).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
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

/** The plugged-in CA istiod reads from ./etc/cacerts: a root and an intermediate it signs with. */
export async function writePluggedInCa(cacertsDir: string, trustDomain: string): Promise<void> {
  if (existsSync(path.join(cacertsDir, 'cert-chain.pem'))) return;
  mkdirSync(cacertsDir, { recursive: true, mode: 0o700 });
  const f = (n: string): string => path.join(cacertsDir, n);
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
  const openssl = (args: string[]) => run('openssl', args, { timeout: 30_000 });
  await openssl(['genrsa', '-out', f('root-key.pem'), '2048']);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    f('root-key.pem'),
    '-sha256',
    '-days',
    '3650',
    '-subj',
    '/O=Istio/CN=Lab Root CA',
    '-addext',
    'basicConstraints=critical,CA:true',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-out',
    f('root-cert.pem'),
  ]);
  await openssl(['genrsa', '-out', f('ca-key.pem'), '2048']);
  await openssl([
    'req',
    '-new',
    '-key',
    f('ca-key.pem'),
    '-subj',
    '/O=Istio/CN=Lab Intermediate CA/L=lab',
    '-out',
    f('ca.csr'),
  ]);
  await openssl([
    'x509',
    '-req',
    '-in',
    f('ca.csr'),
    '-CA',
    f('root-cert.pem'),
    '-CAkey',
    f('root-key.pem'),
    '-CAcreateserial',
    '-days',
    '3650',
    '-sha256',
    '-extfile',
    ext,
    '-extensions',
    'ca',
    '-out',
    f('ca-cert.pem'),
  ]);
  writeFileSync(f('cert-chain.pem'), readFileSync(f('ca-cert.pem'), 'utf8') + readFileSync(f('root-cert.pem'), 'utf8'));
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
