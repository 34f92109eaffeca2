// The Kubernetes API double held against real clients: kubectl (/usr/bin/kubectl) and
// @kubernetes/client-node 2.x. No network namespaces needed: everything is on 127.0.0.1.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { KINDS, startKubeApi, type KubeApiDouble } from './kube/index.js';

/** The bearer token of the kubeconfig's `lab` context (the admin user). */
function adminToken(): string {
  const cfg = parseYaml(readFileSync(kube.kubeconfigPath, 'utf8')) as {
    users: Array<{ name: string; user: { token: string } }>;
  };
  return cfg.users.find((u) => u.name === kube.adminUser)?.user.token ?? '';
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kubectl(d: KubeApiDouble, args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/kubectl',
      ['--kubeconfig', d.kubeconfigPath, ...args],
      { timeout: timeoutMs, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' } },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

const WORKLOAD_GROUP = (port: number): string => `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: vm-app
  namespace: vm-ns
  labels:
    app: vm-app
spec:
  metadata:
    labels:
      app: vm-app
  template:
    serviceAccount: vm-sa
    ports:
      http: ${port}
  probe:
    httpGet:
      port: ${port}
      path: /ready
`;

let dir: string;
let kube: KubeApiDouble;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ivo-kube-'));
  kube = await startKubeApi({
    dir,
    seed: {
      gatewayIP: '10.233.0.1',
      rootCertPem: '-----BEGIN CERTIFICATE-----\nlab-root\n-----END CERTIFICATE-----\n',
    },
  });
});

afterAll(async () => {
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kubectl against the double', () => {
  it('gets namespaces (table output with STATUS and AGE)', async () => {
    const r = await kubectl(kube, ['get', 'ns']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+STATUS\s+AGE/m);
    expect(r.stdout).toMatch(/^istio-system\s+Active\s+\d+s/m);
  });

  it('creates a namespace and service account (protobuf bodies), applies a WorkloadGroup, reads it back, deletes it', async () => {
    expect((await kubectl(kube, ['create', 'ns', 'vm-ns'])).stdout).toContain('namespace/vm-ns created');
    expect((await kubectl(kube, ['create', 'sa', 'vm-sa', '-n', 'vm-ns'])).stdout).toContain(
      'serviceaccount/vm-sa created',
    );
    const file = join(dir, 'wg.yaml');
    await writeFile(file, WORKLOAD_GROUP(8080));
    const applied = await kubectl(kube, ['apply', '-f', file]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout.trim()).toBe('workloadgroup.networking.istio.io/vm-app created');
    expect((await kubectl(kube, ['apply', '-f', file])).stdout.trim()).toBe(
      'workloadgroup.networking.istio.io/vm-app unchanged',
    );
    await writeFile(file, WORKLOAD_GROUP(9090));
    expect((await kubectl(kube, ['apply', '-f', file])).stdout.trim()).toBe(
      'workloadgroup.networking.istio.io/vm-app configured',
    );

    const got = await kubectl(kube, ['get', 'workloadgroup', '-n', 'vm-ns', 'vm-app', '-o', 'yaml']);
    expect(got.code).toBe(0);
    expect(got.stdout).toContain('apiVersion: networking.istio.io/v1\nkind: WorkloadGroup');
    expect(got.stdout).toMatch(/ports:\n\s+http: 9090/);
    expect(got.stdout).toContain('generation: 2');
    expect(got.stdout).toContain('kubectl.kubernetes.io/last-applied-configuration');

    const del = await kubectl(kube, ['delete', '-f', file]);
    expect(del.stdout.trim()).toBe('workloadgroup.networking.istio.io "vm-app" deleted');
    const gone = await kubectl(kube, ['get', 'wg', '-n', 'vm-ns', 'vm-app']);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain(
      'Error from server (NotFound): workloadgroups.networking.istio.io "vm-app" not found',
    );
  });

  it('apply --server-side creates, then an identical apply writes nothing', async () => {
    const file = join(dir, 'wg-ssa.yaml');
    await writeFile(file, WORKLOAD_GROUP(8080));
    const first = await kubectl(kube, ['apply', '--server-side', '-f', file]);
    expect(first.stdout.trim()).toBe('workloadgroup.networking.istio.io/vm-app serverside-applied');
    const rv1 = kube.store.get('workloadgroups.networking.istio.io', 'vm-ns', 'vm-app')?.metadata.resourceVersion;
    const storeRv = kube.store.resourceVersion;
    const second = await kubectl(kube, ['apply', '--server-side', '-f', file]);
    expect(second.code).toBe(0);
    expect(kube.store.get('workloadgroups.networking.istio.io', 'vm-ns', 'vm-app')?.metadata.resourceVersion).toBe(rv1);
    expect(kube.store.resourceVersion).toBe(storeRv);
    const mf = await kubectl(kube, ['get', 'wg', '-n', 'vm-ns', 'vm-app', '-o', 'yaml', '--show-managed-fields']);
    expect(mf.stdout).toMatch(/manager: kubectl\n\s+operation: Apply/);
  });

  it('auth can-i answers from the user allow-list and the deny switch', async () => {
    expect(
      (
        await kubectl(kube, ['auth', 'can-i', 'create', 'workloadgroups.networking.istio.io', '-n', 'vm-ns'])
      ).stdout.trim(),
    ).toBe('yes');
    const restricted = await kubectl(kube, [
      'auth',
      'can-i',
      'create',
      'workloadgroups.networking.istio.io',
      '-n',
      'vm-ns',
      '--context',
      'lab-restricted',
    ]);
    expect(restricted.stdout.trim()).toBe('no');
    expect(
      (
        await kubectl(kube, ['auth', 'can-i', 'list', 'configmaps', '-n', 'vm-ns', '--context', 'lab-restricted'])
      ).stdout.trim(),
    ).toBe('yes');
    const undo = kube.denyPermission({ verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' });
    try {
      expect(
        (
          await kubectl(kube, ['auth', 'can-i', 'create', 'serviceaccounts', '--subresource=token', '-n', 'vm-ns'])
        ).stdout.trim(),
      ).toBe('no');
      const denied = await kubectl(kube, ['create', 'token', 'vm-sa', '-n', 'vm-ns']);
      expect(denied.stderr).toContain(
        'failed to create token: serviceaccounts "vm-sa" is forbidden: User "lab-admin" cannot create resource "serviceaccounts/token" in API group "" in the namespace "vm-ns"',
      );
    } finally {
      undo();
    }
    expect(
      (
        await kubectl(kube, ['auth', 'can-i', 'create', 'serviceaccounts', '--subresource=token', '-n', 'vm-ns'])
      ).stdout.trim(),
    ).toBe('yes');
  });

  it('auth can-i --list (a SelfSubjectRulesReview) prints the rules kubectl reads from the double', async () => {
    const admin = await kubectl(kube, ['auth', 'can-i', '--list', '-n', 'vm-ns']);
    expect(admin.code).toBe(0);
    expect(admin.stdout).toMatch(/^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs$/m);
    expect(admin.stdout).toMatch(/^\*\.\*\s+\[\]\s+\[\]\s+\[\*\]$/m);
    expect(admin.stdout).toMatch(/^selfsubjectrulesreviews\.authorization\.k8s\.io\s+\[\]\s+\[\]\s+\[create\]$/m);
    const restricted = await kubectl(kube, ['auth', 'can-i', '--list', '-n', 'vm-ns', '--context', 'lab-restricted']);
    expect(restricted.stdout).toMatch(/^\*\.networking\.istio\.io\s+\[\]\s+\[\]\s+\[get list watch\]$/m);
    expect(restricted.stdout).not.toMatch(/\[\*\]/);
  });

  it('restricted user cannot delete (403 with the RBAC message)', async () => {
    const r = await kubectl(kube, ['delete', 'cm', 'kube-root-ca.crt', '-n', 'vm-ns', '--context', 'lab-restricted']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'configmaps "kube-root-ca.crt" is forbidden: User "lab-restricted" cannot delete resource "configmaps" in API group "" in the namespace "vm-ns"',
    );
  });

  it('kubectl create token returns a JWT with the bound-token claims', async () => {
    const r = await kubectl(kube, [
      'create',
      'token',
      'vm-sa',
      '-n',
      'vm-ns',
      '--audience',
      'istio-ca',
      '--duration',
      '1h',
    ]);
    expect(r.code).toBe(0);
    const token = r.stdout.trim();
    const review = kube.reviewToken(token, ['istio-ca']);
    expect(review.authenticated).toBe(true);
    expect(review.user?.username).toBe('system:serviceaccount:vm-ns:vm-sa');
    expect(review.audiences).toEqual(['istio-ca']);
  });
});

describe('@kubernetes/client-node against the double', () => {
  beforeAll(() => {
    // Independent of the kubectl tests (which may be filtered out with -t).
    if (!kube.store.get('namespaces', undefined, 'vm-ns'))
      kube.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vm-ns' } });
    if (!kube.store.get('serviceaccounts', 'vm-ns', 'vm-sa'))
      kube.store.create('serviceaccounts', {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'vm-sa', namespace: 'vm-ns' },
      });
  });

  async function client() {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    return { k8s, kc };
  }

  const group = (port: number, manager = 'ivo'): KubernetesObject & { spec: object } => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadGroup',
    metadata: { name: 'ssa-group', namespace: 'vm-ns', labels: { app: 'ssa', owner: manager } },
    spec: { metadata: { labels: { app: 'ssa' } }, template: { serviceAccount: 'vm-sa', ports: { http: port } } },
  });

  it('server-side apply through KubernetesObjectApi: create, identical rerun makes no write, conflict, force', async () => {
    const { k8s, kc } = await client();
    const api = k8s.KubernetesObjectApi.makeApiClient(kc);
    const created = await api.patch(group(8080), undefined, undefined, 'ivo', true, k8s.PatchStrategy.ServerSideApply);
    expect(created.metadata?.resourceVersion).toBeDefined();
    expect(created.metadata?.managedFields?.[0]).toMatchObject({ manager: 'ivo', operation: 'Apply' });

    const writesBefore = kube.requests.writes().length;
    const rvBefore = kube.store.resourceVersion;
    const again = await api.patch(group(8080), undefined, undefined, 'ivo', true, k8s.PatchStrategy.ServerSideApply);
    expect(again.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    expect(kube.store.resourceVersion).toBe(rvBefore); // the API server stored nothing
    expect(kube.requests.writes().length).toBe(writesBefore + 1); // one PATCH request was made

    // Another manager changing a field owned by "ivo" conflicts unless forced.
    const err = await api
      .patch(group(9090, 'other'), undefined, undefined, 'other', false, k8s.PatchStrategy.ServerSideApply)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(k8s.ApiException);
    const apiErr = err as InstanceType<typeof k8s.ApiException<string>>;
    expect(apiErr.code).toBe(409);
    const body = JSON.parse(apiErr.body) as {
      reason: string;
      message: string;
      details: { causes: Array<{ field: string }> };
    };
    expect(body.reason).toBe('Conflict');
    expect(body.message).toContain('conflict with "ivo" using networking.istio.io/v1');
    expect(body.details.causes.map((c) => c.field).sort()).toEqual([
      '.metadata.labels.owner',
      '.spec.template.ports.http',
    ]);

    const forced = await api.patch(
      group(9090, 'other'),
      undefined,
      undefined,
      'other',
      true,
      k8s.PatchStrategy.ServerSideApply,
    );
    expect(forced.spec).toMatchObject({ template: { ports: { http: 9090 } } });
    const managers = (forced.metadata?.managedFields ?? []).map((m) => m.manager).sort();
    expect(managers).toEqual(['ivo', 'other']);

    // Drift: "ivo" applies without the label it owned alone → removed; forced fields now owned by "other".
    const trimmed = group(9090);
    delete (trimmed.metadata?.labels as Record<string, string>).owner;
    const after = await api.patch(trimmed, undefined, undefined, 'ivo', true, k8s.PatchStrategy.ServerSideApply);
    expect(after.metadata?.labels).toEqual({ app: 'ssa', owner: 'other' });
  });

  it('SSA without fieldManager is a 400, apply to a missing namespace is a 404', async () => {
    const { k8s, kc } = await client();
    const api = k8s.KubernetesObjectApi.makeApiClient(kc);
    const noManager = await api
      .patch(group(1), undefined, undefined, undefined, undefined, k8s.PatchStrategy.ServerSideApply)
      .catch((e: unknown) => e);
    expect((noManager as { code: number }).code).toBe(400);
    const wrongNs = { ...group(1), metadata: { ...group(1).metadata, namespace: 'no-such-ns' } } as KubernetesObject;
    const missing = await api
      .patch(wrongNs, undefined, undefined, 'ivo', true, k8s.PatchStrategy.ServerSideApply)
      .catch((e: unknown) => e);
    expect((missing as { code: number }).code).toBe(404);
    expect(JSON.parse((missing as { body: string }).body).message).toBe('namespaces "no-such-ns" not found');
  });

  it('TokenRequest returns an RS256 JWT that verifies with the signing key and carries the real claims', async () => {
    const { k8s, kc } = await client();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'vm-sa',
      namespace: 'vm-ns',
      body: { spec: { audiences: ['istio-ca'], expirationSeconds: 3600 } },
    });
    const token = tr.status?.token ?? '';
    const [h, p, s] = token.split('.') as [string, string, string];
    const { createVerify } = await import('node:crypto');
    expect(createVerify('RSA-SHA256').update(`${h}.${p}`).verify(kube.signingKey, Buffer.from(s, 'base64url'))).toBe(
      true,
    );
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toMatchObject({ alg: 'RS256' });
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    expect(claims).toMatchObject({
      aud: ['istio-ca'],
      iss: kube.issuer,
      sub: 'system:serviceaccount:vm-ns:vm-sa',
      'kubernetes.io': { namespace: 'vm-ns', serviceaccount: { name: 'vm-sa' } },
    });
    expect(claims.exp - claims.iat).toBe(3600);
    expect(Math.abs(new Date(tr.status?.expirationTimestamp ?? 0).getTime() / 1000 - claims.exp)).toBeLessThanOrEqual(
      1,
    );

    expect(kube.reviewToken(token, ['istio-ca']).authenticated).toBe(true);
    const wrongAud = kube.reviewToken(token, ['https://kubernetes.default.svc.cluster.local']);
    expect(wrongAud.authenticated).toBe(false);
    expect(wrongAud.error).toContain('token audiences ["istio-ca"] is invalid for the target audiences');
    expect(kube.reviewToken(token.slice(0, -4) + 'AAAA', ['istio-ca']).authenticated).toBe(false);
    const expired = kube.issueServiceAccountToken('vm-ns', 'vm-sa', ['istio-ca'], -10);
    expect(kube.reviewToken(expired.token, ['istio-ca'])).toMatchObject({
      authenticated: false,
      error: expect.stringContaining('expired'),
    });

    // TokenReview over HTTP gives the same answer.
    const authn = kc.makeApiClient(k8s.AuthenticationV1Api);
    const review = await authn.createTokenReview({ body: { spec: { token, audiences: ['istio-ca'] } } });
    expect(review.status).toMatchObject({
      authenticated: true,
      user: { username: 'system:serviceaccount:vm-ns:vm-sa' },
      audiences: ['istio-ca'],
    });

    const tooShort = await core
      .createNamespacedServiceAccountToken({
        name: 'vm-sa',
        namespace: 'vm-ns',
        body: { spec: { audiences: ['istio-ca'], expirationSeconds: 60 } },
      })
      .catch((e: unknown) => e);
    expect((tooShort as { code: number }).code).toBe(422);
    const noSa = await core
      .createNamespacedServiceAccountToken({ name: 'ghost', namespace: 'vm-ns', body: { spec: {} } })
      .catch((e: unknown) => e);
    expect((noSa as { code: number }).code).toBe(404);
  });

  it('SelfSubjectAccessReview answers per user', async () => {
    const { k8s, kc } = await client();
    const ask = async (context: string, verb: string, resource: string, grp: string) => {
      kc.setCurrentContext(context);
      const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
      const r = await authz.createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: { namespace: 'vm-ns', verb, resource, group: grp } } },
      });
      return r.status?.allowed;
    };
    expect(await ask('lab', 'create', 'workloadgroups', 'networking.istio.io')).toBe(true);
    expect(await ask('lab-restricted', 'create', 'workloadgroups', 'networking.istio.io')).toBe(false);
    expect(await ask('lab-restricted', 'get', 'workloadgroups', 'networking.istio.io')).toBe(true);
  });

  it('SelfSubjectRulesReview lists the rules per user; a deny makes the list incomplete; no namespace is a 400', async () => {
    const { k8s, kc } = await client();
    const rules = async (context: string, namespace?: string) => {
      kc.setCurrentContext(context);
      const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
      return authz.createSelfSubjectRulesReview({ body: { spec: namespace ? { namespace } : {} } });
    };
    const admin = await rules('lab', 'vm-ns');
    expect(admin.status?.incomplete).toBe(false);
    expect(admin.status?.resourceRules).toContainEqual(
      expect.objectContaining({ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }),
    );
    const restricted = await rules('lab-restricted', 'vm-ns');
    expect(restricted.status?.resourceRules.flatMap((r) => r.verbs).sort()).toEqual(['create', 'get', 'list', 'watch']);
    const undo = kube.denyPermission({ verb: 'delete', group: 'batch', resource: 'jobs' });
    try {
      const denied = await rules('lab', 'vm-ns');
      expect(denied.status?.incomplete).toBe(true);
      expect(denied.status?.evaluationError).toMatch(/deny rule/);
    } finally {
      undo();
    }
    const noNamespace = await rules('lab').catch((e: unknown) => e);
    expect((noNamespace as { code: number }).code).toBe(400);
  });

  it('watch delivers ADDED/MODIFIED/DELETED with resourceVersions, filtered by label selector', async () => {
    const { k8s, kc } = await client();
    const watch = new k8s.Watch(kc);
    const seen: Array<{ type: string; name: string; rv: string }> = [];
    let req: AbortController | undefined;
    try {
      req = await watch.watch(
        '/api/v1/namespaces/vm-ns/configmaps',
        { labelSelector: 'watched=yes', resourceVersion: kube.store.resourceVersion },
        (type: string, obj: { metadata: { name: string; resourceVersion: string } }) => {
          seen.push({ type, name: obj.metadata.name, rv: obj.metadata.resourceVersion });
        },
        () => undefined,
      );
      const core = kc.makeApiClient(k8s.CoreV1Api);
      await core.createNamespacedConfigMap({
        namespace: 'vm-ns',
        body: { metadata: { name: 'w1', labels: { watched: 'yes' } }, data: { a: '1' } },
      });
      await core.createNamespacedConfigMap({
        namespace: 'vm-ns',
        body: { metadata: { name: 'w2', labels: { watched: 'no' } } },
      });
      await core.patchNamespacedConfigMap(
        { namespace: 'vm-ns', name: 'w1', body: { data: { a: '2' } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await core.deleteNamespacedConfigMap({ namespace: 'vm-ns', name: 'w1' });
      const deadline = Date.now() + 5000;
      while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      req?.abort();
    }
    expect(seen.map((e) => `${e.type} ${e.name}`)).toEqual(['ADDED w1', 'MODIFIED w1', 'DELETED w1']);
    const rvs = seen.map((e) => Number(e.rv));
    expect([...rvs].sort((a, b) => a - b)).toEqual(rvs);
  });

  it('streams a list as a watch (sendInitialEvents, as client-go 0.35+ and istiod ask): objects, then the end bookmark', async () => {
    const { k8s, kc } = await client();
    const watch = new k8s.Watch(kc);
    const seen: Array<{ type: string; name?: string; annotations?: Record<string, string>; rv: string }> = [];
    let req: AbortController | undefined;
    try {
      req = await watch.watch(
        '/api/v1/namespaces/istio-system/configmaps',
        {
          sendInitialEvents: true,
          allowWatchBookmarks: true,
          resourceVersionMatch: 'NotOlderThan',
          resourceVersion: '',
        },
        (
          type: string,
          obj: { metadata: { name?: string; resourceVersion: string; annotations?: Record<string, string> } },
        ) => {
          seen.push({
            type,
            ...(obj.metadata.name ? { name: obj.metadata.name } : {}),
            ...(obj.metadata.annotations ? { annotations: obj.metadata.annotations } : {}),
            rv: obj.metadata.resourceVersion,
          });
        },
        () => undefined,
      );
      const deadline = Date.now() + 5000;
      while (!seen.some((e) => e.type === 'BOOKMARK') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
    } finally {
      req?.abort();
    }
    const names = kube.store.list('configmaps', { namespace: 'istio-system' }).map((o) => o.metadata.name);
    expect(
      seen
        .filter((e) => e.type === 'ADDED')
        .map((e) => e.name)
        .sort(),
    ).toEqual([...names].sort());
    const last = seen[seen.length - 1];
    expect(last?.type).toBe('BOOKMARK');
    expect(last?.annotations).toEqual({ 'k8s.io/initial-events-end': 'true' });
    expect(Number(last?.rv)).toBeGreaterThanOrEqual(Math.max(...seen.map((e) => Number(e.rv))));
  });

  it('refuses sendInitialEvents without allowWatchBookmarks and resourceVersionMatch=NotOlderThan (400)', async () => {
    const res = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      const r = request(
        `${kube.url}/api/v1/namespaces/istio-system/configmaps?watch=true&sendInitialEvents=true`,
        { ca: kube.caCertPem, headers: { Authorization: `Bearer ${adminToken()}` } },
        (m) => {
          let body = '';
          m.on('data', (c: Buffer) => (body += c.toString()));
          m.on('end', () => resolve({ code: m.statusCode ?? 0, body }));
        },
      );
      r.on('error', reject);
      r.end();
    });
    expect(res.code).toBe(400);
    expect(res.body).toContain('sendInitialEvents requires setting resourceVersionMatch to NotOlderThan');
  });

  it('lists across namespaces with label and field selectors; built-in list items omit kind', async () => {
    const { k8s, kc } = await client();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const all = await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=kube-root-ca.crt' });
    expect(all.items.length).toBe(kube.store.list('namespaces').length);
    const istio = await core.listNamespacedConfigMap({
      namespace: 'istio-system',
      labelSelector: 'istio.io/rev=default,release',
    });
    expect(istio.items.map((i) => i.metadata?.name).sort()).toEqual(['istio', 'istio-sidecar-injector']);
    expect(istio.kind).toBe('ConfigMapList');
    expect(istio.items[0]?.kind).toBeUndefined();
  });

  it('rejects requests without a bearer token (401 Status)', async () => {
    const res = await new Promise<{ code: number; body: string }>((resolve, reject) => {
      const r = request(`${kube.url}/api/v1/namespaces`, { ca: kube.caCertPem }, (m) => {
        let body = '';
        m.on('data', (c: Buffer) => (body += c.toString()));
        m.on('end', () => resolve({ code: m.statusCode ?? 0, body }));
      });
      r.on('error', reject);
      r.end();
    });
    expect(res.code).toBe(401);
    expect(JSON.parse(res.body)).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    });
  });

  it('PUT with a stale resourceVersion is 409 Conflict', async () => {
    const { k8s, kc } = await client();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const cm = await core.createNamespacedConfigMap({
      namespace: 'vm-ns',
      body: { metadata: { name: 'rv-test' }, data: { v: '1' } },
    });
    await core.replaceNamespacedConfigMap({ namespace: 'vm-ns', name: 'rv-test', body: { ...cm, data: { v: '2' } } });
    const stale = await core
      .replaceNamespacedConfigMap({ namespace: 'vm-ns', name: 'rv-test', body: { ...cm, data: { v: '3' } } })
      .catch((e: unknown) => e);
    expect((stale as { code: number }).code).toBe(409);
    expect(JSON.parse((stale as { body: string }).body).message).toBe(
      'Operation cannot be fulfilled on configmaps "rv-test": the object has been modified; please apply your changes to the latest version and try again',
    );
    const dup = await core
      .createNamespacedConfigMap({ namespace: 'vm-ns', body: { metadata: { name: 'rv-test' } } })
      .catch((e: unknown) => e);
    expect(JSON.parse((dup as { body: string }).body)).toMatchObject({ reason: 'AlreadyExists', code: 409 });
    const bad = await core
      .createNamespacedConfigMap({ namespace: 'vm-ns', body: { metadata: { name: 'Bad_Name' } } })
      .catch((e: unknown) => e);
    expect(JSON.parse((bad as { body: string }).body)).toMatchObject({
      reason: 'Invalid',
      code: 422,
      details: { causes: [{ field: 'metadata.name' }] },
    });
  });
});

describe('seeded cluster, controllers and faults', () => {
  async function core() {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    return { k8s, kc, core: kc.makeApiClient(k8s.CoreV1Api) };
  }
  const fault = (name: string) => {
    const f = kube.faults.find((x) => x.name === name);
    if (!f) throw new Error(`no fault ${name}`);
    return f;
  };

  it('seeds what istioctl reads: mesh config, injector values (cluster ID), istiod env and image, east-west LB', async () => {
    const { core: api, k8s, kc } = await core();
    const mesh = await api.readNamespacedConfigMap({ namespace: 'istio-system', name: 'istio' });
    expect(mesh.data?.mesh).toContain('discoveryAddress: istiod.istio-system.svc:15012');
    expect(mesh.data?.mesh).toContain('trustDomain: cluster.local');
    const inj = await api.readNamespacedConfigMap({ namespace: 'istio-system', name: 'istio-sidecar-injector' });
    const values = JSON.parse(inj.data?.values ?? '{}');
    expect(values.global.multiCluster.clusterName).toBe('Kubernetes');
    expect(values.global.network).toBe('');
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const istiod = await apps.readNamespacedDeployment({ namespace: 'istio-system', name: 'istiod' });
    expect(istiod.metadata?.labels).toMatchObject({ app: 'istiod', 'istio.io/rev': 'default' });
    const c = istiod.spec?.template.spec?.containers[0];
    expect(c?.image).toBe('docker.io/istio/pilot:1.24.0');
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION: 'true',
      PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS: 'true',
    });
    const svc = await api.readNamespacedService({ namespace: 'istio-system', name: 'istio-eastwestgateway' });
    expect(svc.spec?.type).toBe('LoadBalancer');
    expect(svc.spec?.ports?.map((p) => p.port)).toEqual(expect.arrayContaining([15012, 15017, 15443]));
    expect(svc.status?.loadBalancer?.ingress?.[0]?.ip).toBe('10.233.0.1');
  });

  it('a new namespace gets ServiceAccount default at once and istio-ca-root-cert after a short delay; setRootCert updates it', async () => {
    const { core: api } = await core();
    await api.createNamespace({ body: { metadata: { name: 'fresh-ns' } } });
    expect(kube.store.get('serviceaccounts', 'fresh-ns', 'default')).toBeDefined();
    expect(kube.store.get('configmaps', 'fresh-ns', 'istio-ca-root-cert')).toBeUndefined();
    const deadline = Date.now() + 3000;
    let cm = kube.store.get('configmaps', 'fresh-ns', 'istio-ca-root-cert');
    while (!cm && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      cm = kube.store.get('configmaps', 'fresh-ns', 'istio-ca-root-cert');
    }
    expect(cm?.data['root-cert.pem']).toContain('lab-root');
    kube.setRootCert('-----BEGIN CERTIFICATE-----\nrotated\n-----END CERTIFICATE-----\n');
    const read = await api.readNamespacedConfigMap({ namespace: 'fresh-ns', name: 'istio-ca-root-cert' });
    expect(read.data?.['root-cert.pem']).toContain('rotated');
    expect(kube.store.get('configmaps', 'kube-system', 'istio-ca-root-cert')).toBeUndefined();
  });

  it('kube-403 forbids every resource request of the action user; SSAR says no; heal restores', async () => {
    const { core: api, k8s, kc } = await core();
    await fault('kube-403').apply({});
    try {
      const err = await api.readNamespace({ name: 'vm-ns' }).catch((e: unknown) => e);
      expect((err as { code: number }).code).toBe(403);
      expect(JSON.parse((err as { body: string }).body).message).toBe(
        // A request on one namespace object is a request in that namespace (requestinfo.go), as the API server says.
        'namespaces "vm-ns" is forbidden: User "lab-admin" cannot get resource "namespaces" in API group "" in the namespace "vm-ns"',
      );
      const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
      const r = await authz.createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: { verb: 'get', resource: 'namespaces' } } },
      });
      expect(r.status?.allowed).toBe(false);
    } finally {
      await fault('kube-403').heal({});
    }
    expect((await api.readNamespace({ name: 'vm-ns' })).metadata?.name).toBe('vm-ns');
  });

  it('kube-500 fails requests with 500 InternalError (next N, or until healed)', async () => {
    const { core: api } = await core();
    kube.failNextRequests(2);
    for (let i = 0; i < 2; i++) {
      const err = await api.readNamespace({ name: 'vm-ns' }).catch((e: unknown) => e);
      expect((err as { code: number }).code).toBe(500);
      expect(JSON.parse((err as { body: string }).body)).toMatchObject({ reason: 'InternalError', code: 500 });
    }
    expect((await api.readNamespace({ name: 'vm-ns' })).metadata?.name).toBe('vm-ns');
    await fault('kube-500').apply({});
    try {
      for (let i = 0; i < 3; i++)
        expect(((await api.readNamespace({ name: 'vm-ns' }).catch((e: unknown) => e)) as { code: number }).code).toBe(
          500,
        );
    } finally {
      await fault('kube-500').heal({});
    }
    expect((await api.readNamespace({ name: 'vm-ns' })).metadata?.name).toBe('vm-ns');
  });

  it('kube-slow adds about 2 s to every request; heal removes it', async () => {
    const { core: api } = await core();
    await fault('kube-slow').apply({});
    let t0 = Date.now();
    try {
      await api.readNamespace({ name: 'vm-ns' });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    } finally {
      await fault('kube-slow').heal({});
    }
    t0 = Date.now();
    await api.readNamespace({ name: 'vm-ns' });
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('crd-missing removes networking.istio.io from discovery and the kinds from kubectl; heal restores', async () => {
    // Its custom resources go with the definition, each with a DELETED event for watchers (istiod's informers).
    kube.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'crd-ns' } });
    kube.store.create(KINDS.workloadEntries, {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: 'app-10.0.0.5', namespace: 'crd-ns' },
      spec: { address: '10.0.0.5' },
    });
    const seen: string[] = [];
    const unwatch = kube.store.watch(KINDS.workloadEntries, (e) => seen.push(`${e.type} ${e.object.metadata.name}`));
    await fault('crd-missing').apply({});
    unwatch();
    expect(seen).toEqual(['DELETED app-10.0.0.5']);
    try {
      const groups = await kubectl(kube, ['api-versions']);
      expect(groups.stdout).not.toContain('networking.istio.io');
      expect(groups.stdout).toContain('security.istio.io/v1');
      const r = await kubectl(kube, ['get', 'workloadgroups', '-A']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`the server doesn't have a resource type "workloadgroups"`);
    } finally {
      await fault('crd-missing').heal({});
    }
    expect((await kubectl(kube, ['api-versions'])).stdout).toContain('networking.istio.io/v1\n');
    expect((await kubectl(kube, ['get', 'workloadgroups', '-A'])).code).toBe(0);
  });

  it('eastwest-hostname switches the LB ingress to a hostname; autoregistration-off flips the istiod env', async () => {
    const { core: api } = await core();
    await fault('eastwest-hostname').apply({});
    let svc = await api.readNamespacedService({ namespace: 'istio-system', name: 'istio-eastwestgateway' });
    expect(svc.status?.loadBalancer?.ingress).toEqual([{ hostname: 'eastwest.lab.example' }]);
    await fault('eastwest-hostname').heal({});
    svc = await api.readNamespacedService({ namespace: 'istio-system', name: 'istio-eastwestgateway' });
    expect(svc.status?.loadBalancer?.ingress?.[0]?.ip).toBe('10.233.0.1');

    await fault('autoregistration-off').apply({});
    expect(kube.istiodEnv('PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION')).toBe('false');
    expect(kube.istiodEnv('PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS')).toBe('true');
    const d = kube.store.get('deployments.apps', 'istio-system', 'istiod');
    expect(d?.spec.template.spec.containers[0].env.length).toBe(15); // merged by name, not appended
    await fault('autoregistration-off').heal({});
    expect(kube.istiodEnv('PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION')).toBe('true');
  });

  it('controller hook: sees a created Job, creates its Pod, writes logs and status; Background delete removes the Pod', async () => {
    const { podFromJob, podStatus, jobFinishedStatus, KINDS } = await import('./kube/index.js');
    const stopController = kube.addController(
      async (event, api) => {
        if (event.type !== 'ADDED') return;
        const job = event.object;
        const pod = api.store.create(KINDS.pods, podFromJob(job));
        api.setPodLog(job.metadata.namespace as string, pod.metadata.name, 'ivo-client', 'ivo-call 1 200\nivo-done\n');
        api.store.patchStatus(KINDS.pods, pod.metadata.namespace, pod.metadata.name, podStatus(pod, 'Succeeded'));
        api.store.patchStatus(KINDS.jobs, job.metadata.namespace, job.metadata.name, jobFinishedStatus(true));
      },
      [KINDS.jobs],
    );
    try {
      const { k8s, kc, core: api } = await core();
      const batch = kc.makeApiClient(k8s.BatchV1Api);
      await batch.createNamespacedJob({
        namespace: 'vm-ns',
        body: {
          metadata: { name: 'ivo-verify-vm1-abcde', labels: { 'app.kubernetes.io/managed-by': 'istio-vm-onboard' } },
          spec: {
            backoffLimit: 0,
            template: {
              metadata: { labels: { 'sidecar.istio.io/inject': 'true' } },
              spec: { restartPolicy: 'Never', containers: [{ name: 'ivo-client', image: 'curlimages/curl:8.11.1' }] },
            },
          },
        },
      });
      const job = await batch.readNamespacedJob({ namespace: 'vm-ns', name: 'ivo-verify-vm1-abcde' });
      expect(job.status?.succeeded).toBe(1);
      expect(job.status?.conditions?.map((c) => c.type)).toContain('Complete');
      const pods = await api.listNamespacedPod({ namespace: 'vm-ns', labelSelector: 'job-name=ivo-verify-vm1-abcde' });
      expect(pods.items).toHaveLength(1);
      const podName = pods.items[0]?.metadata?.name as string;
      const log = await api.readNamespacedPodLog({ namespace: 'vm-ns', name: podName, container: 'ivo-client' });
      expect(log).toBe('ivo-call 1 200\nivo-done\n');
      await batch.deleteNamespacedJob({
        namespace: 'vm-ns',
        name: 'ivo-verify-vm1-abcde',
        propagationPolicy: 'Background',
      });
      expect((await api.listNamespacedPod({ namespace: 'vm-ns' })).items).toHaveLength(0);
      expect(kube.controllerErrors).toEqual([]);
    } finally {
      stopController();
    }
  });

  it('a Service gets a cluster IP (10.96.0.0/16); its EndpointSlice follows the selected Pods; deleting it removes the slice', async () => {
    const { k8s, kc, core: api } = await core();
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    const created = await api.createNamespacedService({
      namespace: 'vm-ns',
      body: {
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http-web' }] },
      },
    });
    expect(created.spec?.clusterIP).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(created.spec?.type).toBe('ClusterIP');
    const other = await api.createNamespacedService({
      namespace: 'vm-ns',
      body: { metadata: { name: 'headless' }, spec: { clusterIP: 'None', ports: [{ port: 81 }] } },
    });
    expect(other.spec?.clusterIP).toBe('None');
    const slices = async () =>
      (
        await discovery.listNamespacedEndpointSlice({
          namespace: 'vm-ns',
          labelSelector: 'kubernetes.io/service-name=web',
        })
      ).items;
    const settle = () => new Promise((r) => setImmediate(r));
    await settle();
    expect((await slices()).map((sl) => sl.endpoints ?? [])).toEqual([[]]);
    // The kubelet's side: a Pod with the label, its IP and readiness.
    const pod = kube.store.create('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1', namespace: 'vm-ns', labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image: 'web', ports: [{ name: 'http-web', containerPort: 8080 }] }] },
    });
    const status = (ready: boolean) =>
      kube.store.patchStatus('pods', 'vm-ns', 'web-1', {
        phase: 'Running',
        podIP: '10.244.0.7',
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      });
    status(false);
    await settle();
    let [slice] = await slices();
    expect(slice?.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(slice?.endpoints).toEqual([
      expect.objectContaining({
        addresses: ['10.244.0.7'],
        conditions: { ready: false, serving: false, terminating: false },
        targetRef: expect.objectContaining({ kind: 'Pod', name: 'web-1', uid: pod.metadata.uid }),
      }),
    ]);
    status(true);
    await settle();
    [slice] = await slices();
    expect(slice?.endpoints?.[0]?.conditions?.ready).toBe(true);
    expect(slice?.metadata?.ownerReferences?.[0]).toEqual(expect.objectContaining({ kind: 'Service', name: 'web' }));
    await api.deleteNamespacedService({ namespace: 'vm-ns', name: 'web' });
    await api.deleteNamespacedService({ namespace: 'vm-ns', name: 'headless' });
    kube.store.delete('pods', 'vm-ns', 'web-1');
    await settle();
    expect(await slices()).toEqual([]);
    expect(kube.controllerErrors).toEqual([]);
  });

  it('counts API requests with method, path, verb and user', async () => {
    const { core: api } = await core();
    kube.requests.reset();
    await api.readNamespace({ name: 'vm-ns' });
    await api.listNamespacedConfigMap({ namespace: 'vm-ns' });
    expect(kube.requests.count).toBe(2);
    expect(kube.requests.log.map((r) => `${r.method} ${r.path} ${r.verb} ${r.user} ${r.status}`)).toEqual([
      'GET /api/v1/namespaces/vm-ns get lab-admin 200',
      'GET /api/v1/namespaces/vm-ns/configmaps list lab-admin 200',
    ]);
    expect(kube.requests.writes()).toEqual([]);
  });
});
