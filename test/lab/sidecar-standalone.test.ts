// The Envoy/pilot-agent simulator run standalone (--root, loopback, port offset) against the istiod
// double and the Kubernetes double: readiness, certificate, auto-registration + health, inbound mTLS
// / STRICT / PERMISSIVE, outbound to the mesh service, DNS proxy, and its failure modes.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import dgram from 'node:dgram';
import http from 'node:http';
import tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { MeshCa } from './istiod/ca.js';
import { EchoService } from './mesh/echo.js';
import {
  httpGet,
  randomOffset,
  removeBundledSimulator,
  runSimulator,
  startLoopbackMesh,
  waitFor,
  writeVmRoot,
  type LoopbackMesh,
  waitSimulatorReady,
  type RunningSimulator,
} from './sidecar/testing.js';
import { PATHS } from './sidecar/config.js';
import { certFacts } from './sidecar/identity.js';

const NOT_READY_LINE =
  'Envoy proxy is NOT ready: config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected';

let mesh: LoopbackMesh;
let app: http.Server;
let appPort: number;
let appHealthy = true;
let echo: EchoService;
const roots: string[] = [];
const sims: RunningSimulator[] = [];

function clusterEnv(extra = ''): string {
  return [
    "CANONICAL_REVISION='latest'",
    "CANONICAL_SERVICE='vm-app'",
    "ISTIO_INBOUND_PORTS='*'",
    "ISTIO_LOCAL_EXCLUDE_PORTS='22,15090,15021,15020'",
    `ISTIO_METAJSON_LABELS='{"app":"vm-app","service.istio.io/canonical-name":"vm-app"}'`,
    "ISTIO_META_AUTO_REGISTER_GROUP='vm-app'",
    "ISTIO_META_CLUSTER_ID='Kubernetes'",
    "ISTIO_META_DNS_CAPTURE='true'",
    "ISTIO_META_NETWORK=''",
    "ISTIO_META_WORKLOAD_NAME='vm-app'",
    "ISTIO_NAMESPACE='vm-ns'",
    "ISTIO_SVC_IP='10.1.2.3'",
    "POD_NAMESPACE='vm-ns'",
    "SERVICE_ACCOUNT='vm-sa'",
    "TRUST_DOMAIN='cluster.local'",
    extra,
  ].join('\n');
}

function meshYaml(): string {
  return `defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:${mesh.istiod.boundPort}\n  readinessProbe:\n    httpGet:\n      port: ${appPort}\n    periodSeconds: 1\n`;
}

async function startVm(
  opts: { token?: string | null; rootCert?: string; group?: string; extraEnv?: string } = {},
): Promise<RunningSimulator> {
  const root = mkdtempSync(path.join(tmpdir(), 'ivo-vmroot-'));
  roots.push(root);
  const token =
    opts.token === null
      ? undefined
      : (opts.token ?? mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token);
  writeVmRoot(root, {
    clusterEnv: clusterEnv(opts.extraEnv ?? '').replace(
      "'vm-app'\nISTIO_META_CLUSTER_ID",
      `'${opts.group ?? 'vm-app'}'\nISTIO_META_CLUSTER_ID`,
    ),
    mesh: meshYaml(),
    hosts: `127.0.0.1 localhost\n127.0.0.1 istiod.istio-system.svc\n`,
    token,
    rootCert: opts.rootCert ?? mesh.ca.rootCertPem,
  });
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  writeFileSync(path.join(root, 'etc/resolv.conf'), 'nameserver 127.0.0.53\n');
  const sim = await runSimulator(root, randomOffset());
  sims.push(sim);
  return sim;
}

const ready = (sim: RunningSimulator) => waitSimulatorReady(sim);

beforeAll(async () => {
  mesh = await startLoopbackMesh({ cleanupGraceMs: 60_000 });
  const s = mesh.kube.store;
  s.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vm-ns' } });
  s.create('serviceaccounts', {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'vm-sa', namespace: 'vm-ns' },
  });
  s.create('workloadgroups.networking.istio.io', {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadGroup',
    metadata: { name: 'vm-app', namespace: 'vm-ns' },
    spec: {
      metadata: { labels: { app: 'vm-app', class: 'vm' } },
      template: { serviceAccount: 'vm-sa', ports: { http: 8080 } },
      probe: { httpGet: { port: 8080 } },
    },
  });
  app = http.createServer((_q, r) => {
    r.writeHead(appHealthy ? 200 : 503);
    r.end('hello from vm app\n');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  appPort = (app.address() as AddressInfo).port;
  echo = new EchoService({ ca: mesh.ca, host: '127.0.0.1', port: 0, vip: '127.0.0.250' });
  await echo.start();
  mesh.services.push(echo.registryEntry);
});

afterAll(async () => {
  for (const s of sims) await s.stop();
  await echo?.stop();
  app?.close();
  await mesh?.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  removeBundledSimulator();
});

function mtlsCall(sim: RunningSimulator, clientNs = 'mesh-test', plaintext = false): Promise<number> {
  const id = mesh.ca.issueWorkloadCert(clientNs, 'default');
  const reqText = `GET / HTTP/1.1\r\nHost: 10.1.2.3:${appPort}\r\nConnection: close\r\n\r\n`;
  return new Promise((resolve) => {
    const onSock = (sock: import('node:net').Socket) => {
      let buf = '';
      sock.on('data', (c) => (buf += c.toString()));
      sock.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0)));
      sock.on('error', () => resolve(0));
      sock.setTimeout(5000, () => sock.destroy());
    };
    if (plaintext) {
      const s = new (require_net().Socket)();
      onSock(s);
      s.connect(sim.port(15006), '127.0.0.1', () => s.write(reqText));
    } else {
      const s = tls.connect(
        {
          host: '127.0.0.1',
          port: sim.port(15006),
          servername: `outbound_.${appPort}_._.vm-app.vm-ns.svc.cluster.local`,
          key: id.keyPem,
          cert: id.certPem,
          ca: mesh.ca.rootCertPem,
          checkServerIdentity: () => undefined,
          ALPNProtocols: ['istio-http/1.1'],
        },
        () => s.write(reqText),
      );
      onSock(s);
    }
  });
}
import * as netModule from 'node:net';
function require_net(): typeof netModule {
  return netModule;
}

function mtlsCount(prom: string, policy: string): number {
  return prom
    .split('\n')
    .filter(
      (l) =>
        l.startsWith('istio_requests_total{reporter="destination"') &&
        l.includes(`connection_security_policy="${policy}"`) &&
        l.includes('response_code="200"'),
    )
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

function dnsQuery(port: number, name: string): Promise<string[] | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
    const q = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
      ...labels,
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, 1500);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      const an = m.readUInt16BE(6);
      const ips: string[] = [];
      for (let i = 0; i < an; i++)
        ips.push([...m.subarray(m.length - 4 * (an - i), m.length - 4 * (an - i) + 4)].join('.'));
      resolve(ips);
    });
    s.send(q, port, '127.0.0.1');
  });
}

describe('simulator against istiod (standalone, loopback)', () => {
  let sim: RunningSimulator;
  beforeAll(async () => {
    sim = await startVm();
    await ready(sim);
  });

  it('becomes ready: 15021 and 15020 /healthz/ready 200 with an empty body; other 15021 paths 404', async () => {
    const r = await httpGet(sim.port(15021), '/healthz/ready');
    expect(r.status).toBe(200);
    expect(r.body).toBe('');
    expect((await httpGet(sim.port(15020), '/healthz/ready')).status).toBe(200);
    expect((await httpGet(sim.port(15021), '/stats')).status).toBe(404);
  });

  it('holds a workload cert with the SA SPIFFE SAN that chains to the root (/certs, /config_dump)', async () => {
    const certs = JSON.parse((await httpGet(sim.port(15000), '/certs')).body) as {
      certificates: Array<{ cert_chain: Array<{ subject_alt_names: Array<{ uri: string }> }> }>;
    };
    expect(certs.certificates[0]!.cert_chain[0]!.subject_alt_names).toEqual([
      { uri: 'spiffe://cluster.local/ns/vm-ns/sa/vm-sa' },
    ]);
    const dump = JSON.parse((await httpGet(sim.port(15000), '/config_dump?resource=dynamic_active_secrets')).body) as {
      configs: Array<{
        name: string;
        secret: {
          tls_certificate?: { certificate_chain: { inline_bytes: string }; private_key: { inline_bytes: string } };
        };
      }>;
    };
    const def = dump.configs.find((c) => c.name === 'default')!;
    expect(Buffer.from(def.secret.tls_certificate!.private_key.inline_bytes, 'base64').toString()).toBe('[redacted]');
    const leaf = Buffer.from(def.secret.tls_certificate!.certificate_chain.inline_bytes, 'base64').toString();
    expect(certFacts(leaf).uriSans).toEqual(['spiffe://cluster.local/ns/vm-ns/sa/vm-sa']);
    expect(dump.configs.map((c) => c.name)).toEqual(['default', 'ROOTCA']);
  });

  it('xDS stats a default sidecar has, and none that the default matcher excludes', async () => {
    const stats = (await httpGet(sim.port(15000), '/stats')).body;
    expect(stats).toMatch(/^cluster\.xds-grpc;\.upstream_cx_active: 1$/m);
    expect(Number(/^cluster_manager\.cds\.update_success: (\d+)$/m.exec(stats)?.[1])).toBeGreaterThan(0);
    expect(Number(/^listener_manager\.lds\.update_success: (\d+)$/m.exec(stats)?.[1])).toBeGreaterThan(0);
    expect(stats).not.toMatch(/control_plane\.connected_state/);
    expect(stats).not.toMatch(/^listener\.0\.0\.0\.0_15006\.ssl/m);
    expect(mesh.istiod.connectedProxies().map((p) => p.ip)).toContain('10.1.2.3');
  });

  it('auto-registers the WorkloadEntry like istiod, with a Healthy condition from the probe', async () => {
    const we = await waitFor(() => {
      const e = mesh.kube.store.get('workloadentries.networking.istio.io', 'vm-ns', 'vm-app-10.1.2.3');
      return e?.status?.conditions?.length ? e : undefined;
    });
    expect(we.metadata.annotations?.['istio.io/autoRegistrationGroup']).toBe('vm-app');
    expect(we.metadata.annotations?.['istio.io/workloadController']).toBe(mesh.istiod.podName);
    expect(we.metadata.annotations?.['istio.io/connectedAt']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(we.metadata.annotations?.['proxy.istio.io/health-checks-enabled']).toBe('true');
    expect(we.metadata.ownerReferences?.[0]).toMatchObject({
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadGroup',
      name: 'vm-app',
      controller: true,
    });
    expect(we.spec).toMatchObject({
      address: '10.1.2.3',
      serviceAccount: 'vm-sa',
      labels: { app: 'vm-app', class: 'vm' },
    });
    expect(we.status.conditions[0]).toMatchObject({ type: 'Healthy', status: 'True' });
  });

  it('app down: Healthy becomes False with the probe error; back up: True', async () => {
    appHealthy = false;
    const bad = await waitFor(() => {
      const c = mesh.kube.store.get('workloadentries.networking.istio.io', 'vm-ns', 'vm-app-10.1.2.3')?.status
        ?.conditions?.[0];
      return c?.status === 'False' ? c : undefined;
    });
    expect(bad.message).toBe('HTTP probe failed with statuscode: 503');
    appHealthy = true;
    await waitFor(
      () =>
        mesh.kube.store.get('workloadentries.networking.istio.io', 'vm-ns', 'vm-app-10.1.2.3')?.status?.conditions?.[0]
          ?.status === 'True',
    );
  });

  it('inbound mTLS is terminated, forwarded to the app port from the SNI, and counted as mutual_tls', async () => {
    const before = mtlsCount((await httpGet(sim.port(15090), '/stats/prometheus')).body, 'mutual_tls');
    for (let i = 0; i < 3; i++) expect(await mtlsCall(sim)).toBe(200);
    const prom = (await httpGet(sim.port(15090), '/stats/prometheus')).body;
    expect(mtlsCount(prom, 'mutual_tls') - before).toBe(3);
    expect(prom).toContain('source_principal="spiffe://cluster.local/ns/mesh-test/sa/default"');
  });

  it('plaintext: accepted under PERMISSIVE (policy none), refused under STRICT, accepted again with plaintext-accepted', async () => {
    expect(await mtlsCall(sim, 'mesh-test', true)).toBe(200);
    expect(mtlsCount((await httpGet(sim.port(15090), '/stats/prometheus')).body, 'none')).toBeGreaterThanOrEqual(1);
    mesh.kube.store.create('peerauthentications.security.istio.io', {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: 'vm-ns' },
      spec: { mtls: { mode: 'STRICT' } },
    });
    await waitFor(async () => (await mtlsCall(sim, 'mesh-test', true)) === 0, 10_000, 300);
    expect(await mtlsCall(sim)).toBe(200);
    writeFileSync(path.join(sim.root, PATHS.plaintextFlag), 'x');
    expect(await mtlsCall(sim, 'mesh-test', true)).toBe(200);
    rmSync(path.join(sim.root, PATHS.plaintextFlag));
    expect(await mtlsCall(sim, 'mesh-test', true)).toBe(0);
    mesh.kube.store.delete('peerauthentications.security.istio.io', 'vm-ns', 'default');
  });

  it('outbound: HTTP by mesh name goes over mTLS to the mesh service', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve) => {
      const q = http.request(
        {
          host: '127.0.0.1',
          port: sim.port(15001),
          path: '/',
          headers: { host: 'echo.mesh-test.svc.cluster.local:8080' },
        },
        (res) => {
          let b = '';
          res.on('data', (c) => (b += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        },
      );
      q.on('error', () => resolve({ status: 0, body: '' }));
      q.end();
    });
    expect(r).toEqual({ status: 200, body: 'echo from mesh\n' });
  });

  it('DNS proxy answers mesh names from the NameTable; dns-capture-broken stops it', async () => {
    for (const n of ['echo.mesh-test.svc.cluster.local', 'echo.mesh-test.svc', 'echo.mesh-test'])
      expect(await dnsQuery(sim.port(15053), n)).toEqual(['127.0.0.250']);
    writeFileSync(path.join(sim.root, PATHS.dnsBrokenFlag), 'x');
    expect(await dnsQuery(sim.port(15053), 'echo.mesh-test.svc.cluster.local')).toBeNull();
    rmSync(path.join(sim.root, PATHS.dnsBrokenFlag));
    expect(await dnsQuery(sim.port(15053), 'echo.mesh-test.svc.cluster.local')).toEqual(['127.0.0.250']);
  });

  it('on disconnect istiod sets istio.io/disconnectedAt and drops connectedAt', async () => {
    await sim.stop();
    const we = await waitFor(() => {
      const e = mesh.kube.store.get('workloadentries.networking.istio.io', 'vm-ns', 'vm-app-10.1.2.3');
      return e?.metadata.annotations?.['istio.io/disconnectedAt'] ? e : undefined;
    });
    expect(we.metadata.annotations?.['istio.io/connectedAt']).toBeUndefined();
  });
});

describe('simulator failure modes', () => {
  it('missing token: logs the read error, retries, and stays NOT ready with the real reason', async () => {
    const sim = await startVm({ token: null });
    await waitFor(() => sim.output().includes('failed to read token file'));
    expect((await httpGet(sim.port(15021), '/healthz/ready')).status).toBe(503);
    await waitFor(() => sim.output().includes(NOT_READY_LINE), 5000);
    await sim.stop();
  });

  it('wrong root cert: TLS to istiod fails (unknown authority), NOT ready', async () => {
    const sim = await startVm({ rootCert: MeshCa.makeUnrelatedRootPem() });
    await waitFor(() => sim.output().includes('certificate signed by unknown authority'));
    const r = await httpGet(sim.port(15021), '/healthz/ready');
    expect(r).toMatchObject({ status: 503, body: '' });
    await sim.stop();
  });

  it('token for the wrong audience: the CA rejects it (audience mismatch), NOT ready', async () => {
    const sim = await startVm({
      token: mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['wrong-aud'], 3600).token,
    });
    await waitFor(() => sim.output().includes('audience mismatch'));
    expect((await httpGet(sim.port(15021), '/healthz/ready')).status).toBe(503);
    await sim.stop();
  });

  it('WorkloadGroup missing: the ADS connection is rejected with the istiod message, NOT ready', async () => {
    const sim = await startVm({ group: 'no-such-group', extraEnv: "ISTIO_SVC_IP='10.1.2.4'" });
    await waitFor(() => sim.output().includes('cannot find WorkloadGroup vm-ns/no-such-group'));
    expect((await httpGet(sim.port(15021), '/healthz/ready')).status).toBe(503);
    await sim.stop();
  });

  it('autoregistration off: the proxy connects but no WorkloadEntry is created (Istio behaviour)', async () => {
    mesh.kube.setAutoregistration(false);
    const sim = await startVm({ extraEnv: "ISTIO_SVC_IP='10.1.2.5'" });
    await ready(sim);
    expect(mesh.kube.store.get('workloadentries.networking.istio.io', 'vm-ns', 'vm-app-10.1.2.5')).toBeUndefined();
    await sim.stop();
    mesh.kube.setAutoregistration(true);
    const sim2 = await startVm({ extraEnv: "ISTIO_SVC_IP='10.1.2.5'" });
    await ready(sim2);
    await waitFor(() => mesh.kube.store.get('workloadentries.networking.istio.io', 'vm-ns', 'vm-app-10.1.2.5'));
    await sim2.stop();
  });

  it('a loopback port clash (EADDRINUSE) is retried on another offset, so parallel test files cannot collide', async () => {
    const offset = randomOffset();
    const squatter = http.createServer();
    await new Promise<void>((r) => squatter.listen(15020 + offset, '127.0.0.1', () => r()));
    try {
      const root = mkdtempSync(path.join(tmpdir(), 'ivo-vmroot-'));
      roots.push(root);
      writeVmRoot(root, {
        clusterEnv: clusterEnv(),
        mesh: meshYaml(),
        hosts: '127.0.0.1 istiod.istio-system.svc\n',
        token: mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token,
        rootCert: mesh.ca.rootCertPem,
      });
      const sim = await runSimulator(root, offset);
      sims.push(sim);
      expect(sim.offset).not.toBe(offset);
      await ready(sim);
    } finally {
      squatter.close();
    }
  });

  it('sidecar-crash-loop flag: the simulator exits right after start', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'ivo-vmroot-'));
    roots.push(root);
    mkdirSync(path.dirname(path.join(root, PATHS.crashLoopFlag)), { recursive: true });
    writeFileSync(path.join(root, PATHS.crashLoopFlag), 'x');
    const sim = await runSimulator(root, randomOffset());
    sims.push(sim);
    const code = await sim.exited;
    expect(code).toBe(1);
    expect(sim.output()).toContain('sidecar-crash-loop');
  });
});
