// `istio-vm-onboard render -f wg.yaml --kubeconfig …` reads what istioctl reads from a live cluster
// (here the lab's Kubernetes double, driven by the real client-node), and writes the same bytes as the
// offline render given those values as files.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRenderCommand } from '../../src/commands/render.js';
import { startKubeApi, type KubeApiDouble } from './kube/index.js';
import { startLabDns } from './dns/index.js';

const ROOT = '-----BEGIN CERTIFICATE-----\nTUVTSC1ST09U\n-----END CERTIFICATE-----\n';
let dir: string;
let kube: KubeApiDouble;
let dns: Awaited<ReturnType<typeof startLabDns>>;

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) }, cwd: dir },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ivo-render-live-'));
  kube = await startKubeApi({ dir, seed: { gatewayIP: '127.0.0.9', rootCertPem: ROOT, namespaces: ['vm-ns'] } });
  kube.store.create('serviceaccounts', {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'vm-sa', namespace: 'vm-ns' },
  });
  dns = await startLabDns({ records: { 'eastwest.lab.example': ['127.0.0.9', '127.0.0.8'] } });
  writeFileSync(
    join(dir, 'wg.yaml'),
    'apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata:\n  name: vm-app\n  namespace: vm-ns\nspec:\n  metadata:\n    labels: {app: vm-app}\n  template:\n    serviceAccount: vm-sa\n',
  );
  await new Promise((resolve) => setTimeout(resolve, 600)); // the double's root-cert controller
});
afterAll(async () => {
  await dns?.stop();
  await kube?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('render --kubeconfig', () => {
  it('reads mesh config, root cert, cluster ID, gateway IP and a fresh token, like istioctl', async () => {
    const run = capture();
    const code = await runRenderCommand(
      [
        '-f',
        'wg.yaml',
        '--kubeconfig',
        kube.kubeconfigPath,
        '--internalIP',
        '10.1.2.3',
        '--autoregister',
        '-o',
        'live',
      ],
      run.io,
    );
    expect([code, run.err.join('')]).toEqual([0, '']);
    const read = (name: string) => readFileSync(join(dir, 'live', name), 'utf8');
    expect(read('hosts')).toBe('127.0.0.9 istiod.istio-system.svc\n');
    expect(read('root-cert.pem')).toBe(ROOT);
    expect(read('cluster.env')).toContain("ISTIO_META_CLUSTER_ID='Kubernetes'");
    expect(read('cluster.env')).toContain("ISTIO_META_AUTO_REGISTER_GROUP='vm-app'");
    const token = read('istio-token');
    const review = kube.reviewToken(token, ['istio-ca']);
    expect(review).toMatchObject({ authenticated: true, user: { username: 'system:serviceaccount:vm-ns:vm-sa' } });
    expect(run.out.join('')).not.toContain(token);

    // The offline render, given the same values as files, writes the same bytes.
    const meshText = (kube.store.get('configmaps', 'istio-system', 'istio') as unknown as { data: { mesh: string } })
      .data.mesh;
    writeFileSync(join(dir, 'mesh.txt'), meshText);
    writeFileSync(join(dir, 'root.pem'), ROOT);
    writeFileSync(join(dir, 'token'), token);
    const offline = capture();
    const offlineCode = await runRenderCommand(
      [
        '-f',
        'wg.yaml',
        '--mesh-config',
        'mesh.txt',
        '--root-cert',
        'root.pem',
        '--token',
        'token',
        '--clusterID',
        'Kubernetes',
        '--ingressIP',
        '127.0.0.9',
        '--internalIP',
        '10.1.2.3',
        '--autoregister',
        '-o',
        'offline',
      ],
      offline.io,
    );
    expect(offlineCode).toBe(0);
    for (const name of ['cluster.env', 'mesh.yaml', 'hosts', 'root-cert.pem', 'istio-token']) {
      expect([name, readFileSync(join(dir, 'offline', name), 'utf8')]).toEqual([name, read(name)]);
    }
  });

  it('resolves a hostname load balancer through the given DNS servers and says which address it used', async () => {
    kube.setEastWestMode('hostname');
    try {
      const run = capture();
      const code = await runRenderCommand(
        [
          '-f',
          'wg.yaml',
          '--kubeconfig',
          kube.kubeconfigPath,
          '--dns-servers',
          dns.address,
          '--internalIP',
          '10.1.2.3',
          '-o',
          'hostname',
        ],
        run.io,
      );
      expect(code).toBe(0);
      expect(run.err.join('')).toContain(
        'east-west gateway eastwest.lab.example resolved to 127.0.0.8, 127.0.0.9; using 127.0.0.8',
      );
      expect(readFileSync(join(dir, 'hostname', 'hosts'), 'utf8')).toBe('127.0.0.8 istiod.istio-system.svc\n');
    } finally {
      kube.setEastWestMode('ip');
    }
  });

  it('fails clearly when the cluster refuses the token request', async () => {
    const undo = kube.denyPermission({ verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' });
    try {
      await expect(
        runRenderCommand(
          ['-f', 'wg.yaml', '--kubeconfig', kube.kubeconfigPath, '--internalIP', '10.1.2.3', '-o', 'denied'],
          capture().io,
        ),
      ).rejects.toThrow(/forbidden|403/i);
    } finally {
      undo();
    }
  });
});
