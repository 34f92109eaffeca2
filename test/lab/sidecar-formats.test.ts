// Holds the simulator's admin output to the real formats in shared/envoy-reference/ (keys, key
// order, line grammar, ordering, escaping), so the action's checks and the simulator agree.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
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
import { fileURLToPath } from 'node:url';

const REF = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../shared/envoy-reference');
const ref = (p: string) => readFileSync(path.join(REF, p), 'utf8');

let mesh: LoopbackMesh;
let echo: EchoService;
let app: http.Server;
const sims: RunningSimulator[] = [];
const roots: string[] = [];

async function startSim(extraMesh = ''): Promise<RunningSimulator> {
  const root = mkdtempSync(path.join(tmpdir(), 'ivo-fmt-'));
  roots.push(root);
  const appPort = (app.address() as AddressInfo).port;
  writeVmRoot(root, {
    clusterEnv: `POD_NAMESPACE='vm-ns'\nSERVICE_ACCOUNT='vm-sa'\nISTIO_SVC_IP='10.7.0.${sims.length + 1}'\nISTIO_META_AUTO_REGISTER_GROUP='vm-app'\nISTIO_META_DNS_CAPTURE='false'\nCANONICAL_SERVICE='vm-app'\nISTIO_META_WORKLOAD_NAME='vm-app'\nISTIO_META_CLUSTER_ID='Kubernetes'\n`,
    mesh: `defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:${mesh.istiod.boundPort}\n  readinessProbe:\n    httpGet:\n      port: ${appPort}\n    periodSeconds: 1\n${extraMesh}`,
    hosts: '127.0.0.1 istiod.istio-system.svc\n',
    token: mesh.kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], 3600).token,
    rootCert: mesh.ca.rootCertPem,
  });
  const sim = await runSimulator(root, randomOffset());
  sims.push(sim);
  await waitSimulatorReady(sim);
  return sim;
}

let sim: RunningSimulator;
beforeAll(async () => {
  mesh = await startLoopbackMesh();
  mesh.kube.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vm-ns' } });
  mesh.kube.store.create('serviceaccounts', {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'vm-sa', namespace: 'vm-ns' },
  });
  mesh.kube.store.create('workloadgroups.networking.istio.io', {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadGroup',
    metadata: { name: 'vm-app', namespace: 'vm-ns' },
    spec: {
      metadata: { labels: { app: 'vm-app', class: 'vm' } },
      template: { serviceAccount: 'vm-sa' },
      probe: { httpGet: { port: 8080 } },
    },
  });
  app = http.createServer((_q, r) => r.end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  echo = new EchoService({ ca: mesh.ca, host: '127.0.0.1', port: 0, vip: '127.0.0.250' });
  await echo.start();
  mesh.services.push(echo.registryEntry);
  sim = await startSim();
  // one inbound mTLS request so istio_requests_total exists
  const tls = await import('node:tls');
  const id = mesh.ca.issueWorkloadCert('default', 'sleep');
  await new Promise<void>((resolve) => {
    const s = tls.connect(
      {
        host: '127.0.0.1',
        port: sim.port(15006),
        servername: `outbound_.${(app.address() as AddressInfo).port}_._.vm-app.vm-ns.svc.cluster.local`,
        key: id.keyPem,
        cert: id.certPem,
        ca: mesh.ca.rootCertPem,
        checkServerIdentity: () => undefined,
      },
      () => s.write('GET / HTTP/1.1\r\nHost: vm-app.vm-ns.svc.cluster.local\r\nConnection: close\r\n\r\n'),
    );
    s.on('data', () => undefined);
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
});

afterAll(async () => {
  for (const s of sims) await s.stop();
  await echo?.stop();
  app?.close();
  await mesh?.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  removeBundledSimulator();
});

function keysDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.length ? [keysDeep(v[0])] : [];
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, keysDeep(x)]));
  return typeof v;
}

describe('/certs', () => {
  it('has the reference JSON shape: keys, key order, string days, <inline> escaped, 1-space indent', async () => {
    const text = (await httpGet(sim.port(15000), '/certs')).body;
    const refText = ref('certs/certs.constructed.json');
    const mine = JSON.parse(text) as { certificates: unknown[] };
    const theirs = JSON.parse(refText) as { certificates: unknown[] };
    expect(keysDeep(mine.certificates[0])).toEqual(keysDeep(theirs.certificates[0]));
    expect(text).toContain('"path": "\\u003cinline\\u003e"');
    expect(text).not.toContain('<inline>');
    expect(text.split('\n')[1]).toMatch(/^ "certificates": \[$/);
    expect(refText.split('\n')[1]).toMatch(/^ "certificates": \[$/);
    const c = mine.certificates[0] as {
      cert_chain: Array<Record<string, string>>;
      ca_cert: Array<Record<string, unknown>>;
    };
    expect(c.cert_chain[0]!.serial_number).toMatch(/^[0-9a-f]{32}$/);
    expect(c.cert_chain[0]!.valid_from).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(typeof c.cert_chain[0]!.days_until_expiration).toBe('string');
    expect(c.ca_cert[0]!.subject_alt_names).toEqual([]);
    // one element per TLS context (inbound + each mesh cluster), like a sidecar's repeated pairs
    expect(mine.certificates.length).toBe(2);
  });
});

describe('/config_dump', () => {
  it('dynamic_active_secrets entries have the reference keys; the private key is redacted like Envoy', async () => {
    const mine = JSON.parse((await httpGet(sim.port(15000), '/config_dump?resource=dynamic_active_secrets')).body) as {
      configs: Array<Record<string, unknown>>;
    };
    const theirs = JSON.parse(ref('config_dump/secrets_config_dump.istio-testdata.json')) as {
      configs: Array<{ dynamic_active_secrets: Array<Record<string, unknown>> }>;
    };
    const refSecrets = theirs.configs[0]!.dynamic_active_secrets;
    expect(mine.configs.map((c) => c.name)).toEqual(refSecrets.map((s) => s.name));
    mine.configs.forEach((c, i) => {
      const { ['@type']: type, ...rest } = c;
      expect(type).toBe('type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret');
      expect(keysDeep(rest)).toEqual(keysDeep(refSecrets[i]));
    });
    const def = mine.configs[0] as { secret: { tls_certificate: { private_key: { inline_bytes: string } } } };
    const refDef = refSecrets[0] as { secret: { tls_certificate: { private_key: { inline_bytes: string } } } };
    expect(def.secret.tls_certificate.private_key.inline_bytes).toBe(
      refDef.secret.tls_certificate.private_key.inline_bytes,
    );
  });
  it('the full dump lists the sections in Envoy order, ending with SecretsConfigDump', async () => {
    const mine = JSON.parse((await httpGet(sim.port(15000), '/config_dump')).body) as {
      configs: Array<{ '@type': string }>;
    };
    const theirs = JSON.parse(ref('config_dump/waypoint_full_config_dump.istio-testdata.json')) as {
      configs: Array<{ '@type': string }>;
    };
    expect(mine.configs.map((c) => c['@type'])).toEqual(theirs.configs.map((c) => c['@type']));
  });
});

// Names have no whitespace but may contain ':' (Istio tags such as source_principal=.=spiffe://…).
const STAT_LINE = /^(\S+): (-?\d+(\.\d+)?)$/;
const HIST_LINE = /^(\S+): (P[\d.]+\((nan|[\d.]+),[\d.]+\) ?)+$/;

function statNames(text: string): string[] {
  return text
    .trim()
    .split('\n')
    .map((l) => l.split(': ')[0]!);
}

describe('/stats', () => {
  it('line grammar and ordering as the reference (sorted name: value, histograms last)', async () => {
    const text = (await httpGet(sim.port(15000), '/stats')).body;
    for (const t of [text, ref('stats/stats_text.constructed.txt')]) {
      const lines = t.trim().split('\n');
      const plain = lines.filter((l) => STAT_LINE.test(l));
      const hist = lines.filter((l) => HIST_LINE.test(l));
      expect(plain.length + hist.length).toBe(lines.length);
      expect(lines.slice(-hist.length)).toEqual(hist);
      expect(plain.map((l) => l.split(': ')[0])).toEqual([...plain.map((l) => l.split(': ')[0]!)].sort());
    }
  });
  it('every stat of the default reference exists; the inclusion-only ones do not', async () => {
    const names = new Set(statNames((await httpGet(sim.port(15000), '/stats')).body));
    for (const n of statNames(ref('stats/stats_text.constructed.txt'))) expect(names).toContain(n);
    for (const n of statNames(ref('stats/stats_text_with_inclusions.constructed.txt'))) {
      if (n === 'server.state') continue;
      expect(names).not.toContain(n);
    }
  });
  it('filter= (regex) and usedonly as pilot-agent queries them', async () => {
    const text = (
      await httpGet(
        sim.port(15000),
        '/stats?usedonly&filter=' +
          encodeURIComponent('^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$'),
      )
    ).body;
    expect(statNames(text)).toEqual(['cluster_manager.cds.update_success', 'listener_manager.lds.update_success']);
  });
  it('proxyStatsMatcher inclusionPrefixes adds control_plane.* (absent by default)', async () => {
    const s2 = await startSim('  proxyStatsMatcher:\n    inclusionPrefixes:\n    - control_plane\n');
    const text = (await httpGet(s2.port(15000), '/stats')).body;
    expect(text).toMatch(/^control_plane\.connected_state: 1$/m);
    await s2.stop();
  });
});

describe('/stats/prometheus', () => {
  it('grammar: # TYPE before each family, {} for no labels, envoy_ prefix only for Envoy stats', async () => {
    const text = (await httpGet(sim.port(15090), '/stats/prometheus')).body;
    for (const t of [text, ref('stats/stats_prometheus.constructed.txt')]) {
      let family = '';
      for (const line of t.trim().split('\n')) {
        const m = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
        if (m) {
          family = m[1]!;
          continue;
        }
        const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
        expect(s).not.toBeNull();
        expect([family, `${family}_bucket`, `${family}_sum`, `${family}_count`]).toContain(s![1]);
      }
    }
    expect(text).toContain('envoy_cluster_upstream_cx_total{cluster_name="xds-grpc"} 1');
    expect(text).toMatch(/^envoy_cluster_manager_cds_update_success\{\} \d+$/m);
    expect(text).not.toMatch(/^envoy_istio/m);
  });
  it('istio_requests_total labels in the reference order (destination reporter, mutual_tls)', async () => {
    const text = (await httpGet(sim.port(15090), '/stats/prometheus')).body;
    const labelsOf = (line: string) => [...line.matchAll(/([a-z_]+)="/g)].map((m) => m[1]);
    const mine = text.split('\n').find((l) => l.startsWith('istio_requests_total{reporter="destination"'))!;
    const theirs = ref('stats/stats_prometheus.constructed.txt')
      .split('\n')
      .find((l) => l.startsWith('istio_requests_total{'))!;
    expect(labelsOf(mine)).toEqual(labelsOf(theirs));
    expect(mine).toContain('connection_security_policy="mutual_tls"');
    const tmplOrder = [
      ...ref('stats/istio_requests_total.server_side.istio-proxy-testdata.yaml.tmpl').matchAll(/- name: (\S+)/g),
    ].map((m) => m[1]);
    // The constructed exposition has no destination_port (the istio/proxy test config adds it): compare the
    // common labels' order.
    const mineOrder = labelsOf(mine).filter((l) => tmplOrder.includes(l));
    expect(mineOrder).toEqual(tmplOrder.filter((l) => labelsOf(mine).includes(l)));
    expect(tmplOrder.filter((l) => !labelsOf(mine).includes(l))).toEqual(['destination_port']);
  });
});

describe('/clusters', () => {
  it('per-cluster and per-host line order as the reference', async () => {
    const text = (await httpGet(sim.port(15000), '/clusters')).body;
    const shape = (t: string, cluster: string) =>
      t
        .split('\n')
        .filter((l) => l.startsWith(`${cluster}::`))
        .map((l) =>
          l
            .slice(cluster.length + 2)
            .replace(/^[^:]*:\d+::|^\.\/etc\/istio\/proxy\/XDS::/, 'HOST::')
            .replace(/::[^:]*$/, ''),
        );
    const refText = ref('clusters/clusters_text.constructed.txt');
    expect(shape(text, 'xds-grpc')).toEqual(shape(refText, 'xds-grpc'));
    const refOne = shape(refText, 'outbound|9080||reviews.default.svc.cluster.local');
    const perHost = refOne.filter((l) => l.startsWith('HOST::')).length / 2;
    const refSingleHost = [
      ...refOne.filter((l) => !l.startsWith('HOST::')),
      ...refOne.filter((l) => l.startsWith('HOST::')).slice(0, perHost),
    ];
    expect(shape(text, 'outbound|8080||echo.mesh-test.svc.cluster.local')).toEqual(refSingleHost);
    expect(text).toContain(
      'outbound|8080||echo.mesh-test.svc.cluster.local::observability_name::outbound|8080||echo.mesh-test.svc.cluster.local;',
    );
  });
});

describe('WorkloadEntry (auto-registered) vs the reference', () => {
  it('has the reference metadata keys, annotations, ownerReference and condition keys', async () => {
    const theirs = parseYaml(ref('workloadentry/autoregistered-workloadentry.constructed.yaml').split('\n---')[0]!) as {
      metadata: { annotations: Record<string, string>; ownerReferences: Array<Record<string, unknown>> };
      spec: Record<string, unknown>;
      status: { conditions: Array<Record<string, unknown>> };
    };
    const we = await waitFor(() => {
      const e = mesh.kube.store.get('workloadentries.networking.istio.io', 'vm-ns', 'vm-app-10.7.0.1');
      return e?.status?.conditions?.length ? e : undefined;
    });
    expect(Object.keys(we.metadata.annotations ?? {}).sort()).toEqual(Object.keys(theirs.metadata.annotations).sort());
    expect(Object.keys(we.metadata.ownerReferences?.[0] ?? {}).sort()).toEqual(
      Object.keys(theirs.metadata.ownerReferences[0]!).sort(),
    );
    expect(Object.keys(we.spec).sort()).toEqual(
      Object.keys(theirs.spec)
        .filter((k) => k !== 'network')
        .sort(),
    );
    expect(Object.keys(we.status.conditions[0]).sort()).toEqual(Object.keys(theirs.status.conditions[0]!).sort());
  });
});
