// The verification-Job runner of ADR 0002 on the Kubernetes double: Jobs labelled managed-by
// istio-vm-onboard get a Pod, calls (mTLS with mesh identity + Istio SNI when injected, plaintext
// when not), `ivo-call <n> <code>` … `ivo-done` logs, and batch/v1-like status.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { startJobRunner } from './mesh/job-runner.js';
import { EchoService } from './mesh/echo.js';
import { startLoopbackMesh, waitFor, type LoopbackMesh } from './sidecar/testing.js';
import { KINDS, type KubeObject } from './kube/index.js';

let mesh: LoopbackMesh;
let echo: EchoService;
let stopRunner: () => void;

beforeAll(async () => {
  mesh = await startLoopbackMesh();
  echo = new EchoService({ ca: mesh.ca, host: '127.0.0.1', port: 0, vip: '127.0.0.250' });
  await echo.start();
  stopRunner = startJobRunner(mesh.kube, { ca: mesh.ca });
  mesh.kube.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vm-ns' } });
});
afterAll(async () => {
  stopRunner?.();
  await echo?.stop();
  await mesh?.stop();
});

function job(name: string, inject: 'true' | 'false', url: string, managed = true): KubeObject {
  const labels: Record<string, string> = managed ? { 'app.kubernetes.io/managed-by': 'istio-vm-onboard' } : {};
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: 'vm-ns', labels },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: 60,
      ttlSecondsAfterFinished: 300,
      template: {
        metadata: { labels: { 'sidecar.istio.io/inject': inject } },
        spec: {
          serviceAccountName: 'default',
          restartPolicy: 'Never',
          containers: [
            {
              name: 'ivo-client',
              image: 'curlimages/curl:8.11.1',
              env: [
                { name: 'IVO_TARGET_URL', value: url },
                { name: 'IVO_REQUESTS', value: '3' },
              ],
            },
          ],
        },
      },
    },
  };
}

async function runJob(name: string, inject: 'true' | 'false', url: string) {
  mesh.kube.store.create(KINDS.jobs, job(name, inject, url));
  const done = await waitFor(() => {
    const j = mesh.kube.store.get(KINDS.jobs, 'vm-ns', name);
    return j?.status?.conditions?.some((c: { type: string }) => c.type === 'Complete' || c.type === 'Failed')
      ? j
      : undefined;
  });
  const pod = mesh.kube.store.list(KINDS.pods, { namespace: 'vm-ns', labelSelector: `job-name=${name}` })[0]!;
  const res = await fetchLog(pod.metadata.name);
  return { job: done, pod: mesh.kube.store.get(KINDS.pods, 'vm-ns', pod.metadata.name)!, log: res };
}

async function fetchLog(pod: string): Promise<string> {
  const { kubeRestFromKubeconfig } = await import('./istiod/kube-rest.js');
  const https = await import('node:https');
  const o = kubeRestFromKubeconfig(mesh.kube.kubeconfigPath);
  const u = new URL(`/api/v1/namespaces/vm-ns/pods/${pod}/log?container=ivo-client`, o.server);
  return new Promise((resolve, reject) => {
    https
      .get(
        {
          hostname: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          ca: o.caPem,
          headers: { authorization: `Bearer ${o.token}` },
        },
        (r) => {
          let b = '';
          r.on('data', (c) => (b += c));
          r.on('end', () => resolve(b));
        },
      )
      .on('error', reject);
  });
}

describe('verification Job runner', () => {
  it('injected: calls over mTLS with a mesh identity; logs ivo-call lines; Job Complete, Pod Succeeded', async () => {
    const before = echo.requests;
    const r = await runJob('ivo-verify-vm1-aaaa', 'true', `http://127.0.0.1:${echo.boundPort}/`);
    expect(r.log).toBe('ivo-call 1 200\nivo-call 2 200\nivo-call 3 200\nivo-done\n');
    expect(echo.requests - before).toBe(3);
    expect(r.job.status.succeeded).toBe(1);
    expect(r.pod.status.phase).toBe('Succeeded');
    expect(r.pod.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Job', name: 'ivo-verify-vm1-aaaa' });
  });
  it('not injected: plaintext to an mTLS-only service fails: every call 000', async () => {
    const r = await runJob('ivo-verify-vm1-bbbb', 'false', `http://127.0.0.1:${echo.boundPort}/`);
    expect(r.log).toBe('ivo-call 1 000\nivo-call 2 000\nivo-call 3 000\nivo-done\n');
  });
  it('mesh-service-down: injected calls fail with 000, and succeed again after heal', async () => {
    await echo.stop();
    expect((await runJob('ivo-verify-vm1-cccc', 'true', `http://127.0.0.1:${echo.boundPort}/`)).log).toContain(
      'ivo-call 1 000',
    );
    await echo.start();
    expect((await runJob('ivo-verify-vm1-dddd', 'true', `http://127.0.0.1:${echo.boundPort}/`)).log).toContain(
      'ivo-call 3 200',
    );
  });
  it('ignores Jobs without the managed-by label (stored, no Pod)', async () => {
    mesh.kube.store.create(KINDS.jobs, job('someone-elses', 'true', 'http://127.0.0.1:1/', false));
    await new Promise((r) => setTimeout(r, 300));
    expect(
      mesh.kube.store.list(KINDS.pods, { namespace: 'vm-ns', labelSelector: 'job-name=someone-elses' }),
    ).toHaveLength(0);
  });
});
