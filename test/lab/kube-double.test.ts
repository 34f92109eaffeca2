// The Kubernetes API double held against real clients: kubectl (/usr/bin/kubectl) and
// @kubernetes/client-node 2.x. No network namespaces needed: everything is on 127.0.0.1.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApi, type KubeApiDouble } from './kube/index.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kubectl(d: KubeApiDouble, args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile('/usr/bin/kubectl', ['--kubeconfig', d.kubeconfigPath, ...args], { timeout: timeoutMs, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
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
  kube = await startKubeApi({ dir, seed: { gatewayIP: '10.233.0.1', rootCertPem: '-----BEGIN CERTIFICATE-----\nlab-root\n-----END CERTIFICATE-----\n' } });
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
    expect((await kubectl(kube, ['create', 'sa', 'vm-sa', '-n', 'vm-ns'])).stdout).toContain('serviceaccount/vm-sa created');
    const file = join(dir, 'wg.yaml');
    await writeFile(file, WORKLOAD_GROUP(8080));
    const applied = await kubectl(kube, ['apply', '-f', file]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout.trim()).toBe('workloadgroup.networking.istio.io/vm-app created');
    expect((await kubectl(kube, ['apply', '-f', file])).stdout.trim()).toBe('workloadgroup.networking.istio.io/vm-app unchanged');
    await writeFile(file, WORKLOAD_GROUP(9090));
    expect((await kubectl(kube, ['apply', '-f', file])).stdout.trim()).toBe('workloadgroup.networking.istio.io/vm-app configured');

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
    expect(gone.stderr).toContain('Error from server (NotFound): workloadgroups.networking.istio.io "vm-app" not found');
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
    expect((await kubectl(kube, ['auth', 'can-i', 'create', 'workloadgroups.networking.istio.io', '-n', 'vm-ns'])).stdout.trim()).toBe('yes');
    const restricted = await kubectl(kube, ['auth', 'can-i', 'create', 'workloadgroups.networking.istio.io', '-n', 'vm-ns', '--context', 'lab-restricted']);
    expect(restricted.stdout.trim()).toBe('no');
    expect((await kubectl(kube, ['auth', 'can-i', 'list', 'configmaps', '-n', 'vm-ns', '--context', 'lab-restricted'])).stdout.trim()).toBe('yes');
    const undo = kube.denyPermission({ verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' });
    try {
      expect((await kubectl(kube, ['auth', 'can-i', 'create', 'serviceaccounts', '--subresource=token', '-n', 'vm-ns'])).stdout.trim()).toBe('no');
      const denied = await kubectl(kube, ['create', 'token', 'vm-sa', '-n', 'vm-ns']);
      expect(denied.stderr).toContain(
        'failed to create token: serviceaccounts "vm-sa" is forbidden: User "lab-admin" cannot create resource "serviceaccounts/token" in API group "" in the namespace "vm-ns"',
      );
    } finally {
      undo();
    }
    expect((await kubectl(kube, ['auth', 'can-i', 'create', 'serviceaccounts', '--subresource=token', '-n', 'vm-ns'])).stdout.trim()).toBe('yes');
  });

  it('restricted user cannot delete (403 with the RBAC message)', async () => {
    const r = await kubectl(kube, ['delete', 'cm', 'kube-root-ca.crt', '-n', 'vm-ns', '--context', 'lab-restricted']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('configmaps "kube-root-ca.crt" is forbidden: User "lab-restricted" cannot delete resource "configmaps" in API group "" in the namespace "vm-ns"');
  });

  it('kubectl create token returns a JWT with the bound-token claims', async () => {
    const r = await kubectl(kube, ['create', 'token', 'vm-sa', '-n', 'vm-ns', '--audience', 'istio-ca', '--duration', '1h']);
    expect(r.code).toBe(0);
    const token = r.stdout.trim();
    const review = kube.reviewToken(token, ['istio-ca']);
    expect(review.authenticated).toBe(true);
    expect(review.user?.username).toBe('system:serviceaccount:vm-ns:vm-sa');
    expect(review.audiences).toEqual(['istio-ca']);
  });
});
