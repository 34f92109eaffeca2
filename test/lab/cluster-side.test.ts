// The cluster side (src/cluster) against the lab's Kubernetes API double (HTTPS on loopback) with
// the real @kubernetes/client-node. Every check has a passing and a failing case.
//
// Why no istiod here (issue 16): this suite tests the action's client against the Kubernetes API only — how it reads,
// applies, retries, reviews access, watches Jobs and WorkloadEntries and words API errors. It starts the lab's
// Kubernetes API alone (test/lab/kube/), never a lab, so no istiod runs. Where a case needs an object istiod or a
// kubelet would write (the istio-ca-root-cert ConfigMap, an auto-registered WorkloadEntry and its Healthy condition, a
// Job's pod status), the test puts that object into the API itself: the API state is the input under test, not istiod's
// behaviour. That istiod really writes those objects, and in that shape, is held by the suites on real Istio:
// action-plan-fresh (the root cert istiod's namespace controller publishes), real-sidecar-action and action-e2e (the
// WorkloadEntry istiod auto-registers and its health), verify and mesh-to-vm-service (verification Jobs whose pods the
// real istiod injected).
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import {
  ClusterConfigError,
  KubeRequestError,
  PreflightError,
  createClusterClient,
  loadKubeConfig,
  type ClusterClient,
  type ClusterClientOptions,
} from '../../src/cluster/index.js';
import { SHARED_WORKLOAD_ENTRY_LIST_MS } from '../../src/cluster/workload-entries.js';
import type { GroupSpec, Inventory, VmSpec } from '../../src/inventory/types.js';
import {
  JOBS,
  KINDS,
  jobActiveStatus,
  jobFinishedStatus,
  podFromJob,
  podStatus,
  startKubeApi,
  type KubeApiDouble,
  type KubeObject,
} from './kube/index.js';
import { startLabDns } from './dns/index.js';

const ROOT_CERT = '-----BEGIN CERTIFICATE-----\nMIIBlabrootcert\n-----END CERTIFICATE-----\n';
const dirs: string[] = [];
const doubles: KubeApiDouble[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ivo-cluster-'));
  dirs.push(d);
  return d;
}

async function newDouble(seed: Parameters<typeof startKubeApi>[0]['seed'] = {}): Promise<KubeApiDouble> {
  const kube = await startKubeApi({ dir: tempDir(), seed: { rootCertPem: ROOT_CERT, ...seed } });
  doubles.push(kube);
  return kube;
}

afterAll(async () => {
  for (const c of clients) c.close();
  for (const d of doubles) await d.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function vm(i: number, group = 'app'): VmSpec {
  return {
    name: `${group}-vm${i}`,
    group,
    ssh: { host: `10.0.0.${i}`, port: 22, user: 'ops' },
    internalIP: `10.0.0.${i}`,
    labels: {},
  };
}

function group(overrides: Partial<GroupSpec> = {}, vmCount = 2): GroupSpec {
  const name = overrides.name ?? 'app';
  return {
    name,
    namespace: 'vm-ns',
    serviceAccount: 'vm-sa',
    labels: { app: name, class: 'vm' },
    annotations: {},
    ports: { http: 8080 },
    network: '',
    registration: 'auto',
    probe: { httpGet: { path: '/ready', port: 8080 } },
    service: { name, ports: { http: 8080 } },
    vms: Array.from({ length: vmCount }, (_, i) => vm(i + 1, name)),
    ...overrides,
  };
}

function inventoryOf(...groups: GroupSpec[]): Inventory {
  return {
    source: 'test',
    mesh: {
      revision: '',
      istioNamespace: 'istio-system',
      eastWestGateway: { service: 'istio-eastwestgateway', namespace: 'istio-system' },
    },
    groups,
  };
}

const clients: ClusterClient[] = [];

/** A client of the action on the double; closed after the file (its WorkloadEntry watches stop). */
function clientFor(kube: KubeApiDouble, options: ClusterClientOptions = {}): ClusterClient {
  const { kubeConfig } = loadKubeConfig({ kubeconfigPath: kube.kubeconfigPath });
  const client = createClusterClient(kubeConfig, {
    retry: { attempts: 4, baseDelayMs: 20 },
    rootCertWaitMs: 3000,
    jobPollMs: 50,
    ...options,
  });
  clients.push(client);
  return client;
}

function writesOf(kube: KubeApiDouble): string[] {
  return kube.requests.log
    .filter((r) => ['PATCH', 'POST', 'PUT', 'DELETE'].includes(r.method))
    .map((r) => `${r.method} ${r.path}`);
}

const meshInput = (g: GroupSpec, address?: string) => ({
  namespace: g.namespace,
  revision: '',
  istioNamespace: 'istio-system',
  eastWestGateway: { service: 'istio-eastwestgateway', namespace: 'istio-system', ...(address ? { address } : {}) },
});

/** The creates and deletes the API server saw, in order (`POST /apis/…`, `DELETE /apis/…`). */
function createsAndDeletes(api: KubeApiDouble): string[] {
  return api.requests.log
    .filter((r) => r.method === 'POST' || r.method === 'DELETE')
    .map((r) => `${r.method} ${r.path}`);
}

describe('mesh objects (server-side apply, idempotent)', () => {
  let kube: KubeApiDouble;
  let client: ClusterClient;
  const g = group();
  beforeAll(async () => {
    kube = await newDouble();
    client = clientFor(kube);
  });

  it('fresh apply creates namespace, ServiceAccount, WorkloadGroup, Service and PeerAuthentication', async () => {
    kube.requests.reset();
    const applied = await client.applyMeshObjects(g, { peerAuthentication: 'strict' });
    expect(applied.map((a) => `${a.kind} ${a.namespace}/${a.name} ${a.action}`)).toEqual([
      'Namespace /vm-ns created',
      'ServiceAccount vm-ns/vm-sa created',
      'WorkloadGroup vm-ns/app created',
      'Service vm-ns/app created',
      'PeerAuthentication vm-ns/app-vm-mtls created',
    ]);
    // Issue 20: the namespace looked up and created (a plain create: `create namespaces` alone); in a namespace
    // the run has just created nothing of the group's is read before it is applied.
    expect(kube.requests.log.map((r) => `${r.method} ${r.path}`).sort()).toEqual(
      [
        'GET /api/v1/namespaces/vm-ns',
        'POST /api/v1/namespaces',
        'PATCH /api/v1/namespaces/vm-ns/serviceaccounts/vm-sa',
        'PATCH /apis/networking.istio.io/v1/namespaces/vm-ns/workloadgroups/app',
        'PATCH /api/v1/namespaces/vm-ns/services/app',
        'PATCH /apis/security.istio.io/v1/namespaces/vm-ns/peerauthentications/app-vm-mtls',
      ].sort(),
    );
    const wg = kube.store.get(KINDS.workloadGroups, 'vm-ns', 'app');
    expect(wg?.spec?.template).toEqual({ serviceAccount: 'vm-sa', ports: { http: 8080 } });
    expect(wg?.spec?.probe).toEqual({ httpGet: { path: '/ready', port: 8080 } });
    expect(wg?.metadata.managedFields?.map((m) => `${m.manager}/${m.operation}`)).toContain('istio-vm-onboard/Apply');
    const svc = kube.store.get(KINDS.services, 'vm-ns', 'app');
    expect(svc?.spec?.selector).toEqual({ app: 'app', class: 'vm' });
    expect(svc?.spec?.ports?.[0]).toMatchObject({ name: 'http', port: 8080, targetPort: 8080 });
    const pa = kube.store.get(KINDS.peerAuthentications, 'vm-ns', 'app-vm-mtls');
    expect(pa?.spec).toEqual({ selector: { matchLabels: { app: 'app', class: 'vm' } }, mtls: { mode: 'STRICT' } });
    expect(kube.store.get(KINDS.serviceAccounts, 'vm-ns', 'vm-sa')).toBeDefined();
  });

  it('a rerun with no change makes no write and reports unchanged', async () => {
    kube.requests.reset();
    const fresh = clientFor(kube); // a new run: no cache
    const applied = await fresh.applyMeshObjects(g, { peerAuthentication: 'strict' });
    expect(applied.every((a) => a.action === 'unchanged')).toBe(true);
    expect(writesOf(kube)).toEqual([]);
    expect(kube.requests.count).toBe(5); // one GET per object
  });

  it('drift is corrected and reported configured; a field we no longer want is removed', async () => {
    // Someone switches mTLS to PERMISSIVE and edits the Service selector with kubectl.
    kube.store.patch(
      KINDS.peerAuthentications,
      'vm-ns',
      'app-vm-mtls',
      'merge',
      { spec: { mtls: { mode: 'PERMISSIVE' } } },
      { manager: 'kubectl-edit' },
    );
    kube.store.patch(
      KINDS.services,
      'vm-ns',
      'app',
      'merge',
      { spec: { selector: { app: 'other' } } },
      { manager: 'kubectl-edit' },
    );
    kube.requests.reset();
    const applied = await clientFor(kube).applyMeshObjects(g, { peerAuthentication: 'strict' });
    const byKind = Object.fromEntries(applied.map((a) => [a.kind, a]));
    expect(byKind['PeerAuthentication']?.action).toBe('configured');
    expect(byKind['PeerAuthentication']?.drift).toEqual(['.spec.mtls.mode differs']);
    expect(byKind['Service']?.action).toBe('configured');
    expect(byKind['WorkloadGroup']?.action).toBe('unchanged');
    expect(writesOf(kube)).toHaveLength(2);
    expect(kube.store.get(KINDS.peerAuthentications, 'vm-ns', 'app-vm-mtls')?.spec?.mtls?.mode).toBe('STRICT');
    expect(kube.store.get(KINDS.services, 'vm-ns', 'app')?.spec?.selector).toEqual({ app: 'app', class: 'vm' });

    // The inventory drops a label: our own field is no longer wanted, so the WorkloadGroup is re-applied.
    const fewer = group({ labels: { app: 'app' } });
    const again = await clientFor(kube).applyMeshObjects(fewer, { peerAuthentication: 'unchanged' });
    const wg = again.find((a) => a.kind === 'WorkloadGroup');
    expect(wg?.action).toBe('configured');
    expect(wg?.drift).toContain('.spec.metadata.labels.class no longer wanted');
    expect(kube.store.get(KINDS.workloadGroups, 'vm-ns', 'app')?.spec?.metadata?.labels).toEqual({ app: 'app' });
    expect(again.some((a) => a.kind === 'PeerAuthentication')).toBe(false); // unchanged = not touched
  });

  it('plan (dryRun) reports would-create without writing', async () => {
    kube.requests.reset();
    const applied = await clientFor(kube).applyMeshObjects(group({ name: 'planned', namespace: 'new-ns' }), {
      peerAuthentication: 'strict',
      dryRun: true,
    });
    expect(applied.map((a) => a.action)).toEqual(Array(5).fill('would-create'));
    expect(writesOf(kube)).toEqual([]);
    expect(kube.store.get(KINDS.namespaces, undefined, 'new-ns')).toBeUndefined();
  });

  it('static WorkloadEntries: applied once, unchanged on rerun, found by address, deleted', async () => {
    const sg = group({ name: 'static', registration: 'static' }, 2);
    const c = clientFor(kube);
    const applied = await c.applyMeshObjects(sg, {
      peerAuthentication: 'unchanged',
      workloadEntries: sg.vms.map((v) => ({ vm: v, address: v.internalIP ?? '' })),
    });
    expect(applied.filter((a) => a.kind === 'WorkloadEntry').map((a) => `${a.name} ${a.action}`)).toEqual([
      'static-vm1 created',
      'static-vm2 created',
    ]);
    kube.requests.reset();
    const rerun = clientFor(kube);
    const vm1 = sg.vms[0]!;
    expect((await rerun.applyStaticWorkloadEntry(sg, vm1, '10.0.0.1')).action).toBe('unchanged');
    expect((await rerun.applyStaticWorkloadEntry(sg, sg.vms[1]!, '10.0.0.2')).action).toBe('unchanged');
    expect(writesOf(kube)).toEqual([]);
    expect(kube.requests.count).toBe(1); // one LIST for the namespace, not one GET per VM
    expect((await rerun.applyStaticWorkloadEntry(sg, vm1, '10.0.0.99')).action).toBe('configured');

    const found = await rerun.findWorkloadEntryFor(
      'vm-ns',
      { name: 'static', vmNames: ['static-vm1', 'static-vm2'] },
      '10.0.0.99',
    );
    expect(found?.name).toBe('static-vm1');
    expect(found?.autoRegistered).toBe(false);
    expect(await rerun.findWorkloadEntryFor('vm-ns', 'static', '10.9.9.9')).toBeUndefined();
    expect(await rerun.deleteWorkloadEntry('vm-ns', 'static-vm1')).toBe(true);
    expect(await rerun.deleteWorkloadEntry('vm-ns', 'static-vm1')).toBe(false);
    expect(kube.store.get(KINDS.workloadEntries, 'vm-ns', 'static-vm1')).toBeUndefined();
  });

  it('finds an auto-registered WorkloadEntry by its istiod name and reads its Healthy condition', async () => {
    kube.store.create(KINDS.workloadEntries, {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: 'app-10.0.0.7', namespace: 'vm-ns', annotations: { 'istio.io/autoRegistrationGroup': 'app' } },
      spec: { address: '10.0.0.7', serviceAccount: 'vm-sa', labels: { app: 'app' } },
    });
    kube.store.patchStatus(KINDS.workloadEntries, 'vm-ns', 'app-10.0.0.7', {
      conditions: [{ type: 'Healthy', status: 'False', message: 'probe failed' }],
    });
    const c = clientFor(kube);
    kube.requests.reset();
    const entry = await c.findWorkloadEntryFor('vm-ns', 'app', '10.0.0.7');
    // One list; the watch that follows the namespace from then on may already be open.
    expect(kube.requests.log.filter((r) => r.verb === 'list').length).toBe(1);
    expect(kube.requests.count).toBeLessThanOrEqual(2);
    c.close();
    expect(entry).toMatchObject({
      name: 'app-10.0.0.7',
      autoRegistered: true,
      group: 'app',
      healthy: 'False',
      healthMessage: 'probe failed',
    });
    expect((await c.listWorkloadEntries('vm-ns', 'app')).map((e) => e.name)).toEqual(['app-10.0.0.7']);
  });

  it('one list and one watch follow the namespace for the run: a new entry, its Healthy condition and its deletion are seen without a request each', async () => {
    const c = clientFor(kube);
    const address = '10.0.0.8';
    const lookup = () => c.findWorkloadEntryFor('vm-ns', 'app', address);
    /** Bounded: 200 looks, 25 ms apart. */
    async function until(condition: (found: Awaited<ReturnType<typeof lookup>>) => boolean): Promise<void> {
      for (let look = 0; look < 200; look++) {
        if (condition(await lookup())) return;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      throw new Error('the lookup never saw the change');
    }
    const mark = kube.requests.total;
    expect(await lookup()).toBeUndefined();
    await until(() => kube.requests.since(mark).some((r) => r.verb === 'watch'));
    kube.store.create(KINDS.workloadEntries, {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: {
        name: `app-${address}`,
        namespace: 'vm-ns',
        annotations: { 'istio.io/autoRegistrationGroup': 'app' },
      },
      spec: { address, serviceAccount: 'vm-sa', labels: { app: 'app' } },
    });
    await until((found) => found?.name === `app-${address}`);
    kube.store.patchStatus(KINDS.workloadEntries, 'vm-ns', `app-${address}`, {
      conditions: [{ type: 'Healthy', status: 'True' }],
    });
    await until((found) => found?.healthy === 'True');
    kube.store.delete(KINDS.workloadEntries, 'vm-ns', `app-${address}`);
    await until((found) => found === undefined);
    const made = kube.requests.since(mark).filter((r) => r.resource === KINDS.workloadEntries);
    expect(made.map((r) => r.verb)).toEqual(['list', 'watch']);
    // Closed with the run: the watch ends and nothing more is asked.
    c.close();
    const closedAt = kube.requests.total;
    expect(await lookup()).toBeUndefined();
    expect(kube.requests.since(closedAt).map((r) => r.verb)).toEqual(['list']);
  });

  it('without permission to watch WorkloadEntries, the watch is refused once and each lookup lists the namespace', async () => {
    const allowWatch = kube.denyPermission({
      verb: 'watch',
      group: 'networking.istio.io',
      resource: 'workloadentries',
    });
    const c = clientFor(kube);
    try {
      const mark = kube.requests.total;
      expect(await c.findWorkloadEntryFor('vm-ns', 'app', '10.0.0.9')).toBeUndefined();
      // Bounded: until the refused watch is on record.
      for (let look = 0; look < 200 && !kube.requests.since(mark).some((r) => r.verb === 'watch'); look++)
        await new Promise((resolve) => setTimeout(resolve, 25));
      await new Promise((resolve) => setTimeout(resolve, SHARED_WORKLOAD_ENTRY_LIST_MS + 50));
      expect(await c.findWorkloadEntryFor('vm-ns', 'app', '10.0.0.9')).toBeUndefined();
      const made = kube.requests.since(mark).filter((r) => r.resource === KINDS.workloadEntries);
      expect(made.map((r) => `${r.verb} ${r.status}`)).toEqual(['list 200', 'watch 403', 'list 200']);
    } finally {
      allowWatch();
      c.close();
    }
  });

  it('reads the PeerAuthentication mode that applies to the group', async () => {
    const c = clientFor(kube);
    expect(await c.getPeerAuthenticationMode('vm-ns', { app: 'app', class: 'vm' })).toEqual({
      mode: 'STRICT',
      source: 'vm-ns/app-vm-mtls',
      scope: 'workload',
    });
    expect(await c.getPeerAuthenticationMode('vm-ns', { app: 'unrelated' })).toEqual({
      mode: 'PERMISSIVE',
      source: 'default',
      scope: 'default',
    });
  });
});

describe('objects the action does not manage are not taken over', () => {
  let kube: KubeApiDouble;
  beforeAll(async () => {
    kube = await newDouble();
  });
  const seed = (kindKey: string, apiVersion: string, kind: string, name: string, extra: object = {}) =>
    kube.store.apply(
      kindKey,
      'shop',
      name,
      { apiVersion, kind, metadata: { name, namespace: 'shop', labels: { team: 'payments' } }, ...extra },
      { manager: 'kubectl', force: true },
    );
  const shopGroup = (overrides: Partial<GroupSpec> = {}) =>
    group({ name: 'pay', namespace: 'shop', serviceAccount: 'pay', ...overrides });

  beforeAll(() => {
    kube.store.apply(
      KINDS.namespaces,
      undefined,
      'shop',
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
      { manager: 'kubectl', force: true },
    );
  });

  it("an existing Service of the group's name, made by someone else: refused before any write, named", async () => {
    seed(KINDS.services, 'v1', 'Service', 'pay', { spec: { selector: { app: 'payments' }, ports: [{ port: 443 }] } });
    kube.requests.reset();
    const err = await clientFor(kube)
      .applyMeshObjects(shopGroup(), { peerAuthentication: 'unchanged' })
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('UnmanagedObjectError');
    expect((err as Error).message).toMatch(
      /^Service shop\/pay already exists and is not managed by istio-vm-onboard \(label app.kubernetes.io\/managed-by is absent\); refusing to take it over.*adopt: true/,
    );
    expect(writesOf(kube)).toEqual([]);
    expect(kube.store.get(KINDS.services, 'shop', 'pay')?.spec?.selector).toEqual({ app: 'payments' });
    expect(kube.store.get(KINDS.workloadGroups, 'shop', 'pay')).toBeUndefined();
  });

  it("someone else's ServiceAccount is not handed to the VMs as their identity", async () => {
    seed(KINDS.serviceAccounts, 'v1', 'ServiceAccount', 'payments-db');
    kube.requests.reset();
    const err = await clientFor(kube)
      .applyMeshObjects(shopGroup({ name: 'db', serviceAccount: 'payments-db', service: undefined }), {
        peerAuthentication: 'unchanged',
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^ServiceAccount shop\/payments-db already exists and is not managed/);
    expect(writesOf(kube)).toEqual([]);
  });

  it('a static WorkloadEntry of the same name made by someone else is refused', async () => {
    seed(KINDS.workloadEntries, 'networking.istio.io/v1', 'WorkloadEntry', 'pay-vm1', {
      spec: { address: '10.9.9.9' },
    });
    const sg = shopGroup({ registration: 'static' });
    kube.requests.reset();
    const err = await clientFor(kube)
      .applyStaticWorkloadEntry(sg, sg.vms[0]!, '10.0.0.1')
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^WorkloadEntry shop\/pay-vm1 already exists and is not managed/);
    expect(writesOf(kube)).toEqual([]);
    expect(kube.store.get(KINDS.workloadEntries, 'shop', 'pay-vm1')?.spec?.address).toBe('10.9.9.9');
  });

  it('adopt: true takes the objects over and labels them as managed; later runs need no opt-in', async () => {
    const applied = await clientFor(kube).applyMeshObjects(shopGroup({ adopt: true }), {
      peerAuthentication: 'unchanged',
    });
    expect(applied.find((a) => a.kind === 'Service')?.action).toBe('configured');
    const svc = kube.store.get(KINDS.services, 'shop', 'pay');
    expect(svc?.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('istio-vm-onboard');
    expect(svc?.spec?.selector).toEqual({ app: 'pay', class: 'vm' });
    const again = await clientFor(kube).applyMeshObjects(shopGroup(), { peerAuthentication: 'unchanged' });
    expect(again.filter((a) => a.kind !== 'Namespace').every((a) => a.action === 'unchanged')).toBe(true);
  });

  it('a PeerAuthentication for a group without labels (namespace-wide selector) is refused before any write', async () => {
    kube.requests.reset();
    const err = await clientFor(kube)
      .applyMeshObjects(shopGroup({ name: 'nolabels', serviceAccount: 'nolabels', labels: {}, service: undefined }), {
        peerAuthentication: 'permissive',
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /peer-authentication permissive needs the group's labels.*whole namespace shop/,
    );
    expect(writesOf(kube)).toEqual([]);
    expect(kube.store.get(KINDS.peerAuthentications, 'shop', 'nolabels-vm-mtls')).toBeUndefined();
  });
});

describe('values istioctl reads', () => {
  let kube: KubeApiDouble;
  beforeAll(async () => {
    kube = await newDouble({ clusterName: 'cluster-east', trustDomain: 'corp.example' });
  });

  it('reads mesh config, root cert (waiting for it), cluster ID, trust domain and the LB IP', async () => {
    const c = clientFor(kube);
    const g = group({ namespace: 'fresh-ns' });
    await c.applyMeshObjects(g, { peerAuthentication: 'unchanged' }); // root cert appears ~300 ms later
    const mesh = await c.readMeshContext(meshInput(g));
    expect(mesh.meshConfig).toContain('trustDomain: corp.example');
    expect(mesh.rootCert).toBe(ROOT_CERT);
    expect(mesh.clusterID).toBe('cluster-east');
    expect(mesh.trustDomain).toBe('corp.example');
    expect(mesh.eastWest).toEqual({ address: '127.0.0.1', source: 'lb-ip', candidates: ['127.0.0.1'] });
    // Cached: a second read (another VM of the group) costs no request.
    const before = c.requestCount;
    await c.readMeshContext(meshInput(g));
    expect(c.requestCount).toBe(before);
  });

  it('an explicit cluster ID and address input are used as given (no Service read)', async () => {
    const c = clientFor(kube);
    kube.requests.reset();
    const mesh = await c.readMeshContext({
      ...meshInput(group({ namespace: 'fresh-ns' }), '192.0.2.10'),
      clusterID: 'given',
    });
    expect(mesh.eastWest).toEqual({ address: '192.0.2.10', source: 'input', candidates: ['192.0.2.10'] });
    expect(mesh.clusterID).toBe('given');
    expect(kube.requests.log.some((r) => r.path.includes('istio-eastwestgateway'))).toBe(false);
    expect(kube.requests.log.some((r) => r.path.includes('istio-sidecar-injector'))).toBe(false);
  });

  it('fails clearly when the root cert never appears (bounded wait)', async () => {
    kube.setRootCert(''); // istiod stops writing it
    kube.store.create(KINDS.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'no-cert-ns' } });
    const c = clientFor(kube, { rootCertWaitMs: 600 });
    await expect(c.readMeshContext({ ...meshInput(group({ namespace: 'no-cert-ns' })) })).rejects.toThrow(
      /istio-ca-root-cert .* did not appear in namespace no-cert-ns within 1 s/,
    );
    kube.setRootCert(ROOT_CERT);
  });
});

describe('east-west gateway by load-balancer hostname (lab DNS)', () => {
  let kube: KubeApiDouble;
  let stopDns: (() => Promise<void>) | undefined;
  let dnsServer = '';
  beforeAll(async () => {
    kube = await newDouble({ eastWestMode: 'hostname', gatewayIP: '127.0.0.1', namespaces: ['vm-ns'] });
    const server = await startLabDns({
      records: { 'eastwest.lab.example': ['127.0.0.9', '127.0.0.1', '127.0.0.30', '::1'] },
    });
    stopDns = () => server.stop();
    dnsServer = server.address;
  });
  afterAll(async () => {
    await stopDns?.();
  });

  it('resolves the hostname (A and AAAA), picks the first IPv4 in numeric order, lists the others', async () => {
    const c = clientFor(kube, { dnsServers: [dnsServer] });
    const mesh = await c.readMeshContext(meshInput(group()));
    expect(mesh.eastWest).toEqual({
      address: '127.0.0.1',
      source: 'lb-hostname',
      hostname: 'eastwest.lab.example',
      candidates: ['127.0.0.1', '127.0.0.9', '127.0.0.30', '::1'],
    });
  });

  it('an unresolvable hostname fails with the name and the resolver, not a silent wrong address', async () => {
    kube.setGatewayAddress({ hostname: 'missing.lab.example' });
    const c = clientFor(kube, { dnsServers: [dnsServer] });
    await expect(c.readMeshContext(meshInput(group()))).rejects.toThrow(
      new RegExp(
        `DNS name missing\\.lab\\.example of the east-west gateway did not resolve via ${dnsServer.replace(/\./g, '\\.')}`,
      ),
    );
    kube.setGatewayAddress({ hostname: 'eastwest.lab.example' });
  });
});

describe('preflight', () => {
  let kube: KubeApiDouble;
  beforeAll(async () => {
    kube = await newDouble();
  });
  afterEach(() => {
    kube.clearDenies();
    kube.setWorkloadCrdsInstalled(true);
    kube.setAutoregistration(true);
  });
  const inv = inventoryOf(group());

  it('passes on an Istio cluster and reports version, flags and CRDs', async () => {
    const report = await clientFor(kube).preflight(inv, {
      needsAutoRegistration: true,
      mode: 'onboard',
      peerAuthentication: 'strict',
    });
    expect(report.istioVersion).toBe('1.24.0');
    expect(report.istiod?.name).toBe('istiod');
    expect(report.meshConfigMap).toEqual({ namespace: 'istio-system', name: 'istio', present: true });
    expect(report.crds.every((c) => c.served)).toBe(true);
    expect(report.autoRegistration?.enabled).toBe(true);
    expect(report.permissions.missing).toEqual([]);
    expect(report.permissions.checked.length).toBeGreaterThan(20);
  });

  it('missing CRD: names the CRD', async () => {
    kube.setWorkloadCrdsInstalled(false);
    const err = await clientFor(kube)
      .preflight(inv, { needsAutoRegistration: true, mode: 'onboard' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(PreflightError);
    expect(err.message).toMatch(
      /Istio CRDs not served: workloadgroups\.networking\.istio\.io \(networking\.istio\.io\/v1\), workloadentries\.networking\.istio\.io/,
    );
  });

  it('a cluster serving the Istio networking CRDs only as v1beta1 (Istio < 1.22): preflight names Istio ≥ 1.22', async () => {
    const CRDS = 'customresourcedefinitions.apiextensions.k8s.io';
    const names = ['workloadgroups', 'workloadentries', 'serviceentries'].map((p) => `${p}.networking.istio.io`);
    const saved = names.map((n) => kube.store.get(CRDS, undefined, n)!);
    try {
      for (const crd of saved) {
        const only = structuredClone(crd);
        const versions = (only.spec as { versions: Array<{ name: string; served: boolean; storage: boolean }> })
          .versions;
        for (const v of versions) {
          v.served = v.name === 'v1beta1';
          v.storage = v.name === 'v1beta1';
        }
        kube.store.update(CRDS, only);
      }
      const err = await clientFor(kube)
        .preflight(inv, { needsAutoRegistration: true, mode: 'verify' })
        .catch((e) => e);
      expect(err).toBeInstanceOf(PreflightError);
      expect(err.message).toMatch(
        /Istio CRDs not served: workloadgroups\.networking\.istio\.io \(networking\.istio\.io\/v1\), workloadentries\.networking\.istio\.io \(networking\.istio\.io\/v1\), serviceentries\.networking\.istio\.io \(networking\.istio\.io\/v1\)\. Install Istio's CRDs \(Istio ≥ 1\.22 serves networking\.istio\.io\/v1/,
      );
    } finally {
      for (const crd of saved) {
        const current = kube.store.get(CRDS, undefined, crd.metadata.name)!;
        kube.store.update(CRDS, { ...current, spec: crd.spec });
      }
    }
  });

  it('autoregistration off: fails for registration auto, passes for static groups', async () => {
    kube.setAutoregistration(false);
    const err = await clientFor(kube)
      .preflight(inv, { needsAutoRegistration: true, mode: 'onboard' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(PreflightError);
    expect(err.message).toMatch(
      /PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false, but the inventory has groups with registration: auto/,
    );
    const staticInv = inventoryOf(group({ registration: 'static' }));
    const report = await clientFor(kube).preflight(staticInv, { needsAutoRegistration: false, mode: 'onboard' });
    expect(report.autoRegistration?.enabled).toBe(false);
  });

  it('autoregistration off: blocks plan too, but verify only warns (the workload-entry check reports it per VM)', async () => {
    kube.setAutoregistration(false);
    const plan = await clientFor(kube)
      .preflight(inv, { needsAutoRegistration: true, mode: 'plan' })
      .catch((e) => e);
    expect(plan).toBeInstanceOf(PreflightError);
    const report = await clientFor(kube).preflight(inv, { needsAutoRegistration: true, mode: 'verify' });
    expect(report.autoRegistration?.enabled).toBe(false);
    expect(report.problems).toEqual([]);
    expect(report.warnings.join('\n')).toMatch(
      /PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false, but the inventory has groups with registration: auto/,
    );
  });

  it("the mesh config's defaultConfig.proxyMetadata: a key cluster.env must not carry fails, naming the ConfigMap and key", async () => {
    const original = kube.store.get('configmaps', 'istio-system', 'istio')!;
    const meshText = (original.data as Record<string, string>).mesh!;
    const bad = meshText.replace(
      '  proxyMetadata: {}',
      '  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n    CA_ADDR: istiod.istio-system.svc:15012\n    EXEC_USER: root\n    "X=1;id>/tmp/pwn;Y": "1"',
    );
    const withMesh = (text: string) =>
      kube.store.apply(
        'configmaps',
        'istio-system',
        'istio',
        { ...original, data: { ...(original.data as Record<string, string>), mesh: text } },
        { manager: 'istio-operator', force: true },
      );
    withMesh(bad);
    try {
      const err = await clientFor(kube)
        .preflight(inv, { needsAutoRegistration: true, mode: 'onboard' })
        .catch((e) => e);
      expect(err).toBeInstanceOf(PreflightError);
      expect(err.message).toContain(
        'config map istio-system/istio key "mesh": defaultConfig.proxyMetadata "EXEC_USER": proxyMetadata key EXEC_USER is refused',
      );
      expect(err.message).toContain('defaultConfig.proxyMetadata "X=1;id>/tmp/pwn;Y": proxyMetadata key');
      expect(err.message).not.toContain('proxyMetadata "CA_ADDR"');
      expect(err.message).not.toContain('proxyMetadata "ISTIO_META_DNS_CAPTURE"');
    } finally {
      withMesh(meshText);
    }
    // Istio's documented keys pass.
    withMesh(meshText.replace('  proxyMetadata: {}', '  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"'));
    try {
      await clientFor(kube).preflight(inv, { needsAutoRegistration: true, mode: 'onboard' });
    } finally {
      withMesh(meshText);
    }
  });

  const reviewsOf = (paths: string[]) => ({
    rules: paths.filter((p) => p.endsWith('/selfsubjectrulesreviews')).length,
    access: paths.filter((p) => p.endsWith('/selfsubjectaccessreviews')).length,
  });
  const preflightPaths = async (options: ClusterClientOptions = {}, mode: 'onboard' | 'verify' = 'onboard') => {
    const paths: string[] = [];
    const outcome = await clientFor(kube, { ...options, onRequest: (info) => paths.push(info.path) })
      .preflight(inv, { needsAutoRegistration: true, mode })
      .catch((e: unknown) => e);
    return { paths, outcome };
  };

  it('permissions: one rules review per namespace; access reviews only for what the rules cannot prove (cluster-scoped)', async () => {
    const { paths, outcome } = await preflightPaths();
    expect((outcome as { permissions: { missing: unknown[] } }).permissions.missing).toEqual([]);
    // vm-ns and istio-system (the gateway's namespace too). vm-ns does not exist here, so onboard would create
    // it: create namespaces (cluster-scoped; a plain create, no patch) is the only access review.
    expect(kube.store.get(KINDS.namespaces, undefined, 'vm-ns')).toBeUndefined();
    expect(reviewsOf(paths)).toEqual({ rules: 2, access: 1 });
  });

  it('permissions: a read-only user — the rules prove the reads, access reviews confirm each missing write', async () => {
    const kubeconfig = { kubeconfigPath: kube.kubeconfigPath, context: 'lab-restricted' };
    const paths: string[] = [];
    const { kubeConfig } = loadKubeConfig(kubeconfig);
    const err = await createClusterClient(kubeConfig, {
      retry: { attempts: 2, baseDelayMs: 20 },
      onRequest: (info) => paths.push(info.path),
    })
      .preflight(inv, { needsAutoRegistration: true, mode: 'onboard' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PreflightError);
    const report = (err as PreflightError).report;
    const missing = report.permissions.missing.map(
      (m) => `${m.verb} ${m.resource}${m.subresource ? `/${m.subresource}` : ''}`,
    );
    expect(missing).toContain('create namespaces');
    expect(missing).toContain('patch workloadgroups');
    expect(missing).toContain('create serviceaccounts/token');
    expect(missing.some((m) => /^(get|list|watch) /.test(m))).toBe(false);
    // Every permission the rules did not prove was asked, and only those: the reads (get, list, watch: the
    // read-only user's verbs) were not.
    const reads = report.permissions.checked.filter((m) => m.namespace && ['get', 'list', 'watch'].includes(m.verb));
    expect(reviewsOf(paths)).toEqual({ rules: 2, access: report.permissions.checked.length - reads.length });
  });

  it('permissions: an incomplete rules list (a deny the rules cannot express) falls back to access reviews for that namespace', async () => {
    kube.denyPermission({ verb: 'delete', group: 'batch', resource: 'jobs' });
    const { paths, outcome } = await preflightPaths({}, 'verify');
    expect(outcome).toBeInstanceOf(PreflightError);
    const report = (outcome as PreflightError).report;
    expect(report.permissions.missing.map((m) => `${m.verb} ${m.resource} ${m.namespace}`)).toEqual([
      'delete jobs vm-ns',
    ]);
    expect(reviewsOf(paths)).toEqual({
      rules: 2,
      access: report.permissions.checked.filter((m) => m.namespace).length,
    });
  });

  it('missing RBAC permission: one error listing exactly the missing ones', async () => {
    kube.denyPermission({ verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' });
    kube.denyPermission({ verb: 'delete', group: 'batch', resource: 'jobs' });
    const err = await clientFor(kube)
      .preflight(inv, { needsAutoRegistration: true, mode: 'onboard' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(PreflightError);
    const missing = (err as PreflightError).report.permissions.missing.map(
      (m) => `${m.verb} ${m.resource}${m.subresource ? `/${m.subresource}` : ''} ${m.namespace}`,
    );
    expect(missing).toEqual(['create serviceaccounts/token vm-ns', 'delete jobs vm-ns']);
    expect(err.message).toContain('create serviceaccounts/token in namespace "vm-ns"');
    expect(err.message).toContain('delete jobs.batch in namespace "vm-ns"');
    expect(err.message).toMatch(/lack 2 permissions/);
    // Not needed in verify mode? delete jobs is (verification); the token is not.
    const verifyErr = await clientFor(kube)
      .preflight(inv, { needsAutoRegistration: true, mode: 'verify' })
      .catch((e) => e);
    expect((verifyErr as PreflightError).report.permissions.missing.map((m) => m.resource)).toEqual(['jobs']);
  });

  it('a 403 on a real request names verb, resource and namespace', async () => {
    kube.denyPermission({ verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' });
    const err = await clientFor(kube)
      .requestBootstrapToken({ namespace: 'vm-ns', serviceAccount: 'vm-sa' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(KubeRequestError);
    expect(err.kind).toBe('forbidden');
    expect(err.message).toMatch(/refused \(403 Forbidden\) to create serviceaccounts\/token in namespace "vm-ns"/);
    expect(err.message).toContain('kubectl auth can-i create serviceaccounts --subresource=token -n vm-ns');
  });
});

describe('API errors: retries with backoff, then a clear failure', () => {
  let kube: KubeApiDouble;
  beforeAll(async () => {
    kube = await newDouble();
  });
  afterEach(() => kube.healServerErrors());

  it('two 500s are retried and the call succeeds', async () => {
    const c = clientFor(kube);
    kube.failNextRequests(2);
    const report = await c.preflight(inventoryOf(group()), { needsAutoRegistration: true, mode: 'plan' });
    expect(report.istioVersion).toBe('1.24.0');
    expect(kube.requests.log.filter((r) => r.status === 500)).toHaveLength(2);
  });

  it('persistent 500: 4 attempts with growing delays, then a message naming server, status, attempts and request', async () => {
    const times: number[] = [];
    const c = clientFor(kube, { retry: { attempts: 4, baseDelayMs: 40 }, onRequest: () => times.push(Date.now()) });
    kube.failNextRequests();
    const err = await c.readMeshContext(meshInput(group(), '192.0.2.1')).catch((e) => e);
    expect(err).toBeInstanceOf(KubeRequestError);
    expect(err.message).toMatch(
      new RegExp(
        `^Kubernetes API ${kube.url.replace(/[.]/g, '\\.')} answered 500 after 4 attempts for GET /api/v1/namespaces/istio-system/configmaps(?!/)`,
      ),
    );
    // Two parallel reads, 4 attempts each: the list of istiod's ConfigMaps (the mesh config and the injector's
    // share it, issue 20) and the group namespace's root cert.
    expect(c.requestCount).toBe(8);
  });

  it('persistent 500 in preflight: only the reviews already in flight are retried, the queued ones are not sent', async () => {
    const c = clientFor(kube, { retry: { attempts: 4, baseDelayMs: 20 } });
    kube.failNextRequests();
    // The group namespace is looked at first (which permissions the run needs depends on it).
    await expect(c.preflight(inventoryOf(group()), { needsAutoRegistration: true, mode: 'onboard' })).rejects.toThrow(
      /answered 500 after 4 attempts for (GET \/api\/v1\/namespaces\/vm-ns|POST \/apis\/authorization\.k8s\.io\/v1\/selfsubject(access|rules)reviews)/,
    );
    // The reviews still in flight finish their attempts (bounded); wait until no more requests come.
    let settled = -1;
    for (let i = 0; i < 20 && settled !== c.requestCount; i++) {
      settled = c.requestCount;
      await new Promise((r) => setTimeout(r, 300));
    }
    // The first requests only, 4 attempts each: the group namespace's read, the 3 reads asked alongside it
    // (istiod, mesh config, API discovery); at most the rules reviews (2 namespaces) and the cluster-scoped
    // access reviews (2) after it. The access reviews the rules would have left are never sent.
    expect(c.requestCount).toBe(settled);
    expect(c.requestCount).toBeLessThanOrEqual((1 + 3 + 2 + 2) * 4);
  });

  it('backoff doubles between attempts (bounded)', async () => {
    const times: number[] = [];
    const c = clientFor(kube, { retry: { attempts: 4, baseDelayMs: 60 }, onRequest: () => times.push(Date.now()) });
    kube.failNextRequests();
    await expect(c.requestBootstrapToken({ namespace: 'default', serviceAccount: 'default' })).rejects.toThrow(
      /answered 500 after 4 attempts for POST/,
    );
    expect(times).toHaveLength(4);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps[0]!).toBeGreaterThanOrEqual(55);
    expect(gaps[1]!).toBeGreaterThanOrEqual(115);
    expect(gaps[2]!).toBeGreaterThanOrEqual(235);
  });

  it('an unreachable API is named with its URL after bounded retries', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const text = readFileSync(kube.kubeconfigPath, 'utf8').replace(kube.url, `https://127.0.0.1:${port}`);
    const { kubeConfig } = loadKubeConfig({ kubeconfig: text });
    const c = createClusterClient(kubeConfig, { retry: { attempts: 3, baseDelayMs: 10 } });
    await expect(c.preflight(inventoryOf(group()), { needsAutoRegistration: false, mode: 'plan' })).rejects.toThrow(
      new RegExp(
        `Kubernetes API https://127\\.0\\.0\\.1:${port} was unreachable \\(ECONNREFUSED\\) after 3 attempts for (GET /api/v1/namespaces/vm-ns|POST /apis/authorization)`,
      ),
    );
  });
});

describe('credentials never appear in output', () => {
  let kube: KubeApiDouble;
  beforeAll(async () => {
    kube = await newDouble();
  });

  it('kubeconfig text, tokens and their base64 are absent from every error and request log line', async () => {
    const text = readFileSync(kube.kubeconfigPath, 'utf8');
    const loaded = loadKubeConfig({ kubeconfig: Buffer.from(text).toString('base64') });
    const doc = parseYaml(text) as { users: Array<{ user: { token: string } }> };
    const tokens = doc.users.map((u) => u.user.token);
    expect(loaded.secrets).toEqual(expect.arrayContaining([...tokens, text]));
    expect(loaded.server).toBe(kube.url);

    const outputs: string[] = [];
    const capture = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        outputs.push(String((e as Error).message), String((e as Error).stack ?? ''));
      }
    };
    const c = createClusterClient(loaded.kubeConfig, {
      retry: { attempts: 2, baseDelayMs: 5 },
      onRequest: (i) => outputs.push(`${i.method} ${i.path}`),
    });
    // 403, 500, 404, preflight failure, bad kubeconfigs, unknown context.
    kube.denyPermission({ verb: 'get', group: '', resource: 'configmaps' });
    await capture(c.readMeshContext(meshInput(group())));
    kube.clearDenies();
    kube.failNextRequests();
    await capture(c.requestBootstrapToken({ namespace: 'vm-ns', serviceAccount: 'vm-sa' }));
    kube.healServerErrors();
    await capture(c.requestBootstrapToken({ namespace: 'nope', serviceAccount: 'nope' }));
    kube.setWorkloadCrdsInstalled(false);
    await capture(c.preflight(inventoryOf(group()), { needsAutoRegistration: true, mode: 'onboard' }));
    kube.setWorkloadCrdsInstalled(true);
    await capture(Promise.resolve().then(() => loadKubeConfig({ kubeconfig: text, context: 'prod' })));
    await capture(Promise.resolve().then(() => loadKubeConfig({ kubeconfig: `${text}\n  : [broken` })));
    const badUsers = toYaml({ ...parseYaml(text), users: [{ user: { token: tokens[0] } }] });
    await capture(Promise.resolve().then(() => loadKubeConfig({ kubeconfig: badUsers })));

    expect(outputs.length).toBeGreaterThan(10);
    const all = outputs.join('\n');
    expect(all).toContain('has no context "prod"; available contexts: "lab", "lab-restricted"');
    expect(all).toMatch(/is not valid YAML at line \d+/);
    for (const secret of [...tokens, text, Buffer.from(text).toString('base64')]) expect(all).not.toContain(secret);
    for (const line of text.split('\n').filter((l) => l.includes('data:') || l.includes('token:'))) {
      expect(all).not.toContain(line.trim());
    }
  });
});

describe('requests per run: O(groups) + 1 per VM', () => {
  let kube: KubeApiDouble;
  beforeAll(async () => {
    // Namespaces exist with their root cert, so no run waits for istiod (which would add polls).
    kube = await newDouble({ namespaces: ['count-5', 'count-10'] });
    for (let i = 0; i < 50 && !kube.store.get(KINDS.configMaps, 'count-10', 'istio-ca-root-cert'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(kube.store.get(KINDS.configMaps, 'count-5', 'istio-ca-root-cert')).toBeDefined();
  });

  /** What an onboard run asks of the cluster: preflight, mesh objects, mesh values, one token per VM. */
  async function onboardRun(vmCount: number): Promise<{ total: number; tokens: number; perPath: Map<string, number> }> {
    const g = group({ name: `g${vmCount}`, namespace: `count-${vmCount}` }, vmCount);
    const inv = inventoryOf(g);
    const c = clientFor(kube);
    kube.requests.reset();
    await c.preflight(inv, { needsAutoRegistration: true, mode: 'onboard', peerAuthentication: 'strict' });
    await c.applyMeshObjects(g, { peerAuthentication: 'strict' });
    for (const v of g.vms) {
      await c.readMeshContext(meshInput(g));
      await c.requestBootstrapToken({ namespace: g.namespace, serviceAccount: g.serviceAccount });
      expect(v.name).toBeTruthy();
    }
    expect(c.requestCount).toBe(kube.requests.count);
    const perPath = new Map<string, number>();
    for (const r of kube.requests.log) {
      const key = `${r.method} ${r.path.replace(/count-\d+/, 'NS').replace(/\/g\d+/, '/G')}`;
      perPath.set(key, (perPath.get(key) ?? 0) + 1);
    }
    return {
      total: kube.requests.count,
      tokens: kube.requests.log.filter((r) => r.path.endsWith('/token')).length,
      perPath,
    };
  }

  it('1 group × 10 VMs costs exactly 5 token requests more than 1 group × 5 VMs', async () => {
    const five = await onboardRun(5);
    const ten = await onboardRun(10);
    expect(five.tokens).toBe(5);
    expect(ten.tokens).toBe(10);
    expect(ten.total - five.total).toBe(5);
    // Everything except the tokens is the same per group.
    const diff = [...ten.perPath].filter(([k, n]) => five.perPath.get(k) !== n);
    expect(diff).toEqual([['POST /api/v1/namespaces/NS/serviceaccounts/vm-sa/token', 10]]);
    // Constant part: SSARs + istiod + configmaps + discovery + objects + mesh values.
    expect(five.total - 5).toBeLessThan(60);
  });
});

describe('verification Jobs (ADR 0002)', () => {
  let kube: KubeApiDouble;
  let behaviour: 'succeed' | 'fail' | 'hang' = 'succeed';
  const seenJobs: KubeObject[] = [];
  beforeAll(async () => {
    kube = await newDouble({ namespaces: ['vm-ns'] });
    // A stand-in for the lab's Job runner (test/lab/mesh): pod, log lines of ADR 0002, status.
    kube.addController(
      (event, api) => {
        if (event.type !== 'ADDED') return;
        const job = event.object;
        seenJobs.push(job);
        const pod = api.store.create('pods', podFromJob(job));
        const ns = job.metadata.namespace as string;
        api.store.patchStatus(JOBS, ns, job.metadata.name, jobActiveStatus());
        if (behaviour === 'hang') return;
        const env = (job.spec.template.spec.containers[0].env as Array<{ name: string; value: string }>) ?? [];
        const n = Number(env.find((e) => e.name === 'IVO_REQUESTS')?.value ?? '0');
        const vms = Number(env.find((e) => e.name === 'IVO_VMS')?.value ?? '1');
        // VM k answers 200 (succeed) or nothing (fail); the VM at 10.0.0.2 (its IVO_RESOLVE_k) answers 503.
        const codeOf = (k: number) =>
          behaviour !== 'succeed'
            ? '000'
            : env.find((e) => e.name === `IVO_RESOLVE_${k}`)?.value.endsWith(':10.0.0.2')
              ? '503'
              : '200';
        const lines = Array.from({ length: vms }, (_, v) =>
          Array.from({ length: n }, (_, i) => `ivo-call ${v + 1} ${i + 1} ${codeOf(v + 1)}`),
        ).flat();
        api.setPodLog(
          ns,
          pod.metadata.name,
          'ivo-client',
          `${lines.join('\n')}\n${behaviour === 'succeed' ? 'ivo-done\n' : ''}`,
        );
        setTimeout(() => {
          try {
            api.store.patchStatus(
              'pods',
              ns,
              pod.metadata.name,
              podStatus(pod, behaviour === 'succeed' ? 'Succeeded' : 'Failed'),
            );
            api.store.patchStatus(JOBS, ns, job.metadata.name, jobFinishedStatus(behaviour === 'succeed'));
          } catch {
            // the Job may already be deleted
          }
        }, 100);
      },
      [JOBS],
    );
  });

  const input = (name: string, injectSidecar = true) => ({
    namespace: 'vm-ns',
    name,
    image: 'curlimages/curl:8.11.1',
    targetUrl: 'http://10.0.0.1:8080/',
    requests: 3,
    injectSidecar,
    timeoutMs: 3000,
  });

  it('creates the Job of ADR 0002, reads the calls from the log, deletes the Job', async () => {
    behaviour = 'succeed';
    kube.requests.reset();
    const result = await clientFor(kube).runVerificationJob(input('ivo-verify-vm1-abc123'));
    expect(result.succeeded).toBe(true);
    expect(result.calls).toEqual([
      { n: 1, code: '200' },
      { n: 2, code: '200' },
      { n: 3, code: '200' },
    ]);
    expect(result.podName).toMatch(/^ivo-verify-vm1-abc123-/);
    const job = seenJobs.at(-1)!;
    expect(job.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'istio-vm-onboard' });
    expect(job.spec).toMatchObject({ ttlSecondsAfterFinished: 300, backoffLimit: 0, activeDeadlineSeconds: 60 });
    expect(job.spec.template.metadata.labels['sidecar.istio.io/inject']).toBe('true');
    expect(job.spec.template.spec.serviceAccountName).toBe('default');
    expect(job.spec.template.spec.containers[0].name).toBe('ivo-client');
    expect(job.spec.template.spec.containers[0].env).toEqual([
      { name: 'IVO_VMS', value: '1' },
      { name: 'IVO_REQUESTS', value: '3' },
      { name: 'IVO_TARGET_URL_1', value: 'http://10.0.0.1:8080/' },
    ]);
    const del = kube.requests.log.find((r) => r.method === 'DELETE');
    expect(del?.path).toBe('/apis/batch/v1/namespaces/vm-ns/jobs/ivo-verify-vm1-abc123');
    expect(kube.store.get(JOBS, 'vm-ns', 'ivo-verify-vm1-abc123')).toBeUndefined();
    expect(kube.requests.log.some((r) => r.path.endsWith('/log') && r.query.includes('container=ivo-client'))).toBe(
      true,
    );
    // Waiting for it is one watch of its pods (issue 20): no GET per poll, no watch of the Job, no list of pods.
    const reads = kube.requests.log.filter(
      (r) => r.method === 'GET' && (r.resource === 'jobs.batch' || r.resource === 'pods') && !r.path.endsWith('/log'),
    );
    expect(reads.map((r) => `${r.verb} ${r.path} ${decodeURIComponent(r.query)}`)).toEqual([
      expect.stringMatching(
        /^watch \/api\/v1\/namespaces\/vm-ns\/pods \?.*labelSelector=job-name=ivo-verify-vm1-abc123/,
      ),
    ]);
  });

  it('without permission to watch pods the run says which permission it lacks, and the Job is still deleted', async () => {
    behaviour = 'succeed';
    const undo = kube.denyPermission({ verb: 'watch', group: '', resource: 'pods' });
    try {
      await expect(clientFor(kube).runVerificationJob(input('ivo-verify-vm1-nowatch'))).rejects.toThrow(
        /refused \(403 Forbidden\) to watch pods in namespace "vm-ns"/,
      );
      expect(kube.store.get(JOBS, 'vm-ns', 'ivo-verify-vm1-nowatch')).toBeUndefined();
    } finally {
      undo();
    }
  });

  const service = {
    host: 'ivo-verify-vm1-se1234.vm-ns.ivo-verify.internal',
    address: '10.0.0.1',
    port: 8080,
    protocol: 'http' as const,
    serviceAccount: 'vm-sa',
    labels: { app: 'vm' },
    vmName: 'vm1',
    waitAttempts: 3,
  };

  it('ADR 0005: creates the Job, then the ServiceEntry owned by it; deleting the Job removes both: one more request per VM', async () => {
    behaviour = 'succeed';
    kube.requests.reset();
    const entries: KubeObject[] = [];
    const unwatch = kube.store.watch('serviceentries.networking.istio.io', (e) => {
      if (e.type === 'ADDED') entries.push(e.object);
    });
    const result = await clientFor(kube).runVerificationJob({ ...input('ivo-verify-vm1-se1234'), service });
    unwatch();
    expect(entries.map((e) => e.metadata.ownerReferences)).toEqual([
      [{ apiVersion: 'batch/v1', kind: 'Job', name: 'ivo-verify-vm1-se1234', uid: seenJobs.at(-1)!.metadata.uid }],
    ]);
    expect(result).toMatchObject({
      succeeded: true,
      serviceEntry: 'ivo-verify-vm1-se1234',
      calledUrl: 'http://ivo-verify-vm1-se1234.vm-ns.ivo-verify.internal:8080/',
    });
    const writes = createsAndDeletes(kube);
    expect(writes).toEqual([
      'POST /apis/batch/v1/namespaces/vm-ns/jobs',
      'POST /apis/networking.istio.io/v1/namespaces/vm-ns/serviceentries',
      'DELETE /apis/batch/v1/namespaces/vm-ns/jobs/ivo-verify-vm1-se1234',
    ]);
    // Owned by the Job; the Job deleted with propagation Background, the API server's garbage collector removed it.
    const entryCreate = kube.requests.log.find((r) => r.method === 'POST' && r.resource?.startsWith('serviceentries'));
    expect(entryCreate).toBeDefined();
    expect(kube.requests.log.find((r) => r.method === 'DELETE')?.query).toContain('propagationPolicy=Background');
    expect(kube.store.get('serviceentries.networking.istio.io', 'vm-ns', 'ivo-verify-vm1-se1234')).toBeUndefined();
    expect(seenJobs.at(-1)!.spec.template.spec.containers[0].env.map((e: { name: string }) => e.name)).toEqual([
      'IVO_VMS',
      'IVO_REQUESTS',
      'IVO_TARGET_URL_1',
      'IVO_RESOLVE_1',
      'IVO_WAIT_FOR_1',
      'IVO_WAIT_ATTEMPTS',
    ]);
  });

  it('issue 20: one Job for two VMs of a group, a ServiceEntry per VM owned by it; each VM gets its own calls', async () => {
    behaviour = 'succeed';
    kube.requests.reset();
    const entries: KubeObject[] = [];
    const unwatch = kube.store.watch('serviceentries.networking.istio.io', (e) => {
      if (e.type === 'ADDED') entries.push(e.object);
    });
    const other = {
      ...service,
      host: 'ivo-verify-vm2-se5678.vm-ns.ivo-verify.internal',
      address: '10.0.0.2',
      vmName: 'vm2',
    };
    const results = await clientFor(kube).runGroupVerificationJob(
      {
        namespace: 'vm-ns',
        name: 'ivo-verify-app-g1h2i3',
        targets: [
          { ...input('ivo-verify-vm1-se1234'), service },
          { ...input('ivo-verify-vm2-se5678'), targetUrl: 'http://10.0.0.2:8080/', service: other },
        ],
      },
      3000,
    );
    unwatch();
    const uid = seenJobs.at(-1)!.metadata.uid;
    expect(entries.map((e) => [e.metadata.name, e.metadata.ownerReferences])).toEqual([
      ['ivo-verify-vm1-se1234', [{ apiVersion: 'batch/v1', kind: 'Job', name: 'ivo-verify-app-g1h2i3', uid }]],
      ['ivo-verify-vm2-se5678', [{ apiVersion: 'batch/v1', kind: 'Job', name: 'ivo-verify-app-g1h2i3', uid }]],
    ]);
    expect(
      results.map((r) => [r.succeeded, r.job, r.serviceEntry, r.calledUrl, r.calls.map((c) => c.code).join(' ')]),
    ).toEqual([
      [
        true,
        'ivo-verify-app-g1h2i3',
        'ivo-verify-vm1-se1234',
        'http://ivo-verify-vm1-se1234.vm-ns.ivo-verify.internal:8080/',
        '200 200 200',
      ],
      [
        true,
        'ivo-verify-app-g1h2i3',
        'ivo-verify-vm2-se5678',
        'http://ivo-verify-vm2-se5678.vm-ns.ivo-verify.internal:8080/',
        '503 503 503',
      ],
    ]);
    const writes = createsAndDeletes(kube);
    expect(writes).toEqual([
      'POST /apis/batch/v1/namespaces/vm-ns/jobs',
      'POST /apis/networking.istio.io/v1/namespaces/vm-ns/serviceentries',
      'POST /apis/networking.istio.io/v1/namespaces/vm-ns/serviceentries',
      'DELETE /apis/batch/v1/namespaces/vm-ns/jobs/ivo-verify-app-g1h2i3',
    ]);
    expect(seenJobs.at(-1)!.spec.activeDeadlineSeconds).toBe(80);
    expect(kube.store.get('serviceentries.networking.istio.io', 'vm-ns', 'ivo-verify-vm2-se5678')).toBeUndefined();
  });

  it('ADR 0005: without permission to create ServiceEntries the run says so and its Job is deleted again', async () => {
    behaviour = 'succeed';
    const undo = kube.denyPermission({ verb: 'create', group: 'networking.istio.io', resource: 'serviceentries' });
    try {
      await expect(clientFor(kube).runVerificationJob({ ...input('ivo-verify-vm1-se403'), service })).rejects.toThrow(
        /serviceentries/,
      );
      expect(kube.store.get(JOBS, 'vm-ns', 'ivo-verify-vm1-se403')).toBeUndefined();
    } finally {
      undo();
    }
  });

  it('plaintext Job: inject=false; a failed Job is reported with its reason and still deleted', async () => {
    behaviour = 'fail';
    const result = await clientFor(kube).runVerificationJob(input('ivo-plain-vm1-abc123', false));
    expect(seenJobs.at(-1)!.spec.template.metadata.labels['sidecar.istio.io/inject']).toBe('false');
    expect(result.succeeded).toBe(false);
    expect(result.calls.map((c) => c.code)).toEqual(['000', '000', '000']);
    expect(result.reason).toMatch(
      /failed: its pod ivo-plain-vm1-abc123-\w+ failed: container ivo-client exited 1 \(Error\)/,
    );
    expect(kube.store.get(JOBS, 'vm-ns', 'ivo-plain-vm1-abc123')).toBeUndefined();
  });

  it('a Job that never finishes times out (bounded) and is deleted', async () => {
    behaviour = 'hang';
    const result = await clientFor(kube).runVerificationJob({ ...input('ivo-verify-vm1-hang'), timeoutMs: 500 });
    expect(result.succeeded).toBe(false);
    expect(result.reason).toMatch(/did not finish within 1 s/);
    expect(kube.store.get(JOBS, 'vm-ns', 'ivo-verify-vm1-hang')).toBeUndefined();
  });
});

describe('kubeconfig loading errors', () => {
  it('unknown context lists the available ones; unreadable file is named', async () => {
    const kube = await newDouble();
    expect(() => loadKubeConfig({ kubeconfigPath: kube.kubeconfigPath, context: 'nope' })).toThrow(
      'has no context "nope"; available contexts: "lab", "lab-restricted"',
    );
    expect(loadKubeConfig({ kubeconfigPath: kube.kubeconfigPath, context: 'lab-restricted' }).context).toBe(
      'lab-restricted',
    );
    expect(() => loadKubeConfig({ kubeconfigPath: '/nonexistent/kubeconfig' })).toThrow(ClusterConfigError);
    expect(() => loadKubeConfig({ kubeconfigPath: '/nonexistent/kubeconfig' })).toThrow(
      'cannot read kubeconfig file /nonexistent/kubeconfig (ENOENT)',
    );
  });
});
