// The verification-Job runner of ADR 0002 on the Kubernetes double: Jobs labelled managed-by
// istio-vm-onboard get a Pod, calls routed as the pod's sidecar (Envoy) would route them
// (mesh/routing.ts), `ivo-wait`/`ivo-call <n> <code>` … `ivo-done` logs, and batch/v1-like status.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { startJobRunner, type CallTrace } from './mesh/job-runner.js';
import { EchoService } from './mesh/echo.js';
import { SERVICE_ENTRIES } from './mesh/routing.js';
import { startLoopbackMesh, waitFor, type LoopbackMesh } from './sidecar/testing.js';
import { KINDS, type KubeObject } from './kube/index.js';

let mesh: LoopbackMesh;
let echo: EchoService;
let stopRunner: () => void;
const traces: CallTrace[] = [];
const ECHO_HOST = 'echo.mesh-test.svc.cluster.local';

beforeAll(async () => {
  mesh = await startLoopbackMesh();
  echo = new EchoService({ ca: mesh.ca, host: '127.0.0.1', port: 0, vip: '127.0.0.250' });
  await echo.start();
  stopRunner = startJobRunner(mesh.kube, {
    ca: mesh.ca,
    services: () => [echo.registryEntry],
    propagationMs: 300,
    waitPauseMs: 200,
    onCall: (t) => traces.push(t),
  });
  mesh.kube.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vm-ns' } });
});
afterAll(async () => {
  stopRunner?.();
  await echo?.stop();
  await mesh?.stop();
});

interface JobShape {
  inject?: 'true' | 'false';
  url: string;
  env?: Record<string, string>;
  labels?: Record<string, string>;
  managed?: boolean;
}

function job(name: string, o: JobShape): KubeObject {
  const labels: Record<string, string> =
    o.managed === false ? {} : { 'app.kubernetes.io/managed-by': 'istio-vm-onboard' };
  const podLabels: Record<string, string> = { ...(o.labels ?? {}) };
  if (o.inject) podLabels['sidecar.istio.io/inject'] = o.inject;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: 'vm-ns', labels },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: 60,
      ttlSecondsAfterFinished: 300,
      template: {
        metadata: { labels: podLabels },
        spec: {
          serviceAccountName: 'default',
          restartPolicy: 'Never',
          containers: [
            {
              name: 'ivo-client',
              image: 'curlimages/curl:8.11.1',
              env: [
                { name: 'IVO_TARGET_URL', value: o.url },
                { name: 'IVO_REQUESTS', value: '3' },
                ...Object.entries(o.env ?? {}).map(([name, value]) => ({ name, value })),
              ],
            },
          ],
        },
      },
    },
  };
}

async function runJob(name: string, o: JobShape) {
  mesh.kube.store.create(KINDS.jobs, job(name, o));
  const done = await waitFor(() => {
    const j = mesh.kube.store.get(KINDS.jobs, 'vm-ns', name);
    return j?.status?.conditions?.some((c: { type: string }) => c.type === 'Complete' || c.type === 'Failed')
      ? j
      : undefined;
  });
  const pod = mesh.kube.store.list(KINDS.pods, { namespace: 'vm-ns', labelSelector: `job-name=${name}` })[0]!;
  const res = await fetchLog(pod.metadata.name);
  return {
    job: done,
    pod: mesh.kube.store.get(KINDS.pods, 'vm-ns', pod.metadata.name)!,
    log: res,
    routes: traces.filter((t) => t.job === name).map((t) => t.route),
  };
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

/** A per-VM ServiceEntry as ADR 0005 describes it, with the echo server standing in for the VM. */
function serviceEntry(name: string, host: string, spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: 'vm-ns' },
    spec: {
      hosts: [host],
      addresses: ['127.0.0.1'],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      exportTo: ['.'],
      ports: [{ number: echo.boundPort, name: 'http-verify', protocol: 'HTTP' }],
      endpoints: [{ address: '127.0.0.1', serviceAccount: 'vm-sa', labels: { app: 'vm' } }],
      ...spec,
    },
  };
}

const ALL_200 = 'ivo-call 1 200\nivo-call 2 200\nivo-call 3 200\nivo-done\n';

describe('verification Job runner: routing as an Envoy client does', () => {
  it('injected, by service host (cluster DNS → VIP): mTLS with Istio SNI for the host; Job Complete, Pod Succeeded', async () => {
    const before = echo.requests;
    const r = await runJob('ivo-verify-vm1-aaaa', { inject: 'true', url: `http://${ECHO_HOST}:8080/` });
    expect(r.log).toBe(ALL_200);
    expect(echo.requests - before).toBe(3);
    expect(r.routes[0]).toMatchObject({
      cluster: `outbound|8080||${ECHO_HOST}`,
      address: '127.0.0.1',
      port: echo.boundPort,
      sni: `outbound_.8080_._.${ECHO_HOST}`,
    });
    expect(r.job.status.succeeded).toBe(1);
    expect(r.pod.status.phase).toBe('Succeeded');
    expect(r.pod.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Job', name: 'ivo-verify-vm1-aaaa' });
  });

  it('injected, by raw IP (the old ADR 0002 call): PassthroughCluster, plaintext; the mTLS-only server refuses every call (Envoy answers 503)', async () => {
    const before = echo.requests;
    const r = await runJob('ivo-verify-vm1-bbbb', { inject: 'true', url: `http://127.0.0.1:${echo.boundPort}/` });
    expect(r.log).toBe('ivo-call 1 503\nivo-call 2 503\nivo-call 3 503\nivo-done\n');
    expect(echo.requests - before).toBe(0);
    expect(r.routes.map((route) => [route.cluster, route.sni])).toEqual(
      Array(3).fill(['PassthroughCluster', undefined]),
    );
  });

  it('not injected: plaintext even by service host; every call 000', async () => {
    const r = await runJob('ivo-verify-vm1-cccc', { inject: 'false', url: `http://${ECHO_HOST}:8080/` });
    expect(r.log).toBe('ivo-call 1 000\nivo-call 2 000\nivo-call 3 000\nivo-done\n');
    expect(r.routes).toEqual([]);
  });

  it('ServiceEntry host with --resolve: waits until the sidecar sees the endpoint, then mTLS with SNI outbound_.<port>_._.<host>', async () => {
    const host = 'vm1.vm-ns.ivo.internal';
    mesh.kube.store.create(SERVICE_ENTRIES, serviceEntry('ivo-verify-vm1', host));
    const r = await runJob('ivo-verify-vm1-dddd', {
      inject: 'true',
      url: `http://${host}:${echo.boundPort}/`,
      env: {
        IVO_RESOLVE: `${host}:${echo.boundPort}:127.0.0.1`,
        IVO_WAIT_FOR: `outbound|${echo.boundPort}||${host}::127.0.0.1:${echo.boundPort}::`,
        IVO_WAIT_ATTEMPTS: '20',
      },
    });
    const waits = r.log.split('\n').filter((l) => l.startsWith('ivo-wait'));
    expect(waits[waits.length - 1]).toMatch(/^ivo-wait \d+ seen$/);
    expect(r.log.endsWith(ALL_200)).toBe(true);
    expect(r.routes[0]).toMatchObject({ sni: `outbound_.${echo.boundPort}_._.${host}`, address: '127.0.0.1' });
    mesh.kube.store.delete(SERVICE_ENTRIES, 'vm-ns', 'ivo-verify-vm1');
  });

  it('a ServiceEntry the pod never sees (exported elsewhere): every wait attempt unseen, calls passthrough in plaintext', async () => {
    const host = 'vm2.vm-ns.ivo.internal';
    mesh.kube.store.create(SERVICE_ENTRIES, serviceEntry('ivo-verify-vm2', host, { exportTo: ['other-ns'] }));
    const r = await runJob('ivo-verify-vm2-aaaa', {
      inject: 'true',
      url: `http://${host}:${echo.boundPort}/`,
      env: {
        IVO_RESOLVE: `${host}:${echo.boundPort}:127.0.0.1`,
        IVO_WAIT_FOR: `outbound|${echo.boundPort}||${host}::`,
        IVO_WAIT_ATTEMPTS: '3',
      },
    });
    expect(r.log).toBe(
      'ivo-wait 1 unseen\nivo-wait 2 unseen\nivo-wait 3 unseen\nivo-call 1 503\nivo-call 2 503\nivo-call 3 503\nivo-done\n',
    );
    expect(r.routes[0]?.cluster).toBe('PassthroughCluster');
    mesh.kube.store.delete(SERVICE_ENTRIES, 'vm-ns', 'ivo-verify-vm2');
  });

  it('an endpoint that is not mTLS-capable (no service account): the service cluster, but plaintext (Envoy 503 from the mTLS-only server)', async () => {
    const host = 'vm3.vm-ns.ivo.internal';
    mesh.kube.store.create(
      SERVICE_ENTRIES,
      serviceEntry('ivo-verify-vm3', host, { endpoints: [{ address: '127.0.0.1' }] }),
    );
    const env = {
      IVO_RESOLVE: `${host}:${echo.boundPort}:127.0.0.1`,
      IVO_WAIT_FOR: `||${host}::`,
      IVO_WAIT_ATTEMPTS: '20',
    };
    const r = await runJob('ivo-verify-vm3-aaaa', { inject: 'true', url: `http://${host}:${echo.boundPort}/`, env });
    expect(r.log.endsWith('ivo-call 3 503\nivo-done\n')).toBe(true);
    expect(r.routes[0]).toMatchObject({ cluster: `outbound|${echo.boundPort}||${host}` });
    expect(r.routes[0]?.sni).toBeUndefined();
    mesh.kube.store.delete(SERVICE_ENTRIES, 'vm-ns', 'ivo-verify-vm3');
  });

  it('revisions: istio.io/rev=canary is injected only when a canary injector exists; sidecar.istio.io/inject=true picks the default', async () => {
    const url = `http://${ECHO_HOST}:8080/`;
    const without = await runJob('ivo-verify-rev-aaaa', { url, labels: { 'istio.io/rev': 'canary' } });
    expect(without.log).toBe('ivo-call 1 000\nivo-call 2 000\nivo-call 3 000\nivo-done\n');
    mesh.kube.store.create(KINDS.configMaps, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'istio-sidecar-injector-canary', namespace: 'istio-system' },
      data: {},
    });
    try {
      expect((await runJob('ivo-verify-rev-bbbb', { url, labels: { 'istio.io/rev': 'canary' } })).log).toBe(ALL_200);
    } finally {
      mesh.kube.store.delete(KINDS.configMaps, 'istio-system', 'istio-sidecar-injector-canary');
    }
    // No label at all in a namespace without injection labels: no sidecar.
    expect((await runJob('ivo-verify-rev-cccc', { url })).log).toContain('ivo-call 1 000');
  });

  it('mesh-service-down: injected calls fail (Envoy answers 503), and succeed again after heal', async () => {
    const url = `http://${ECHO_HOST}:8080/`;
    await echo.stop();
    expect((await runJob('ivo-verify-vm1-eeee', { inject: 'true', url })).log).toContain('ivo-call 1 503');
    await echo.start();
    expect((await runJob('ivo-verify-vm1-ffff', { inject: 'true', url })).log).toBe(ALL_200);
  });

  it('ignores Jobs without the managed-by label (stored, no Pod)', async () => {
    mesh.kube.store.create(
      KINDS.jobs,
      job('someone-elses', { inject: 'true', url: 'http://127.0.0.1:1/', managed: false }),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(
      mesh.kube.store.list(KINDS.pods, { namespace: 'vm-ns', labelSelector: 'job-name=someone-elses' }),
    ).toHaveLength(0);
  });
});
