// Query strings of Kubernetes API requests are encoded once: client-node puts `labelSelector=app=istiod`
// on the wire as `labelSelector=app%3Distiod`, the server reads back `app=istiod`, and the transport
// reports exactly the path that was sent. The `%253D` seen in a raw job log is the runner's workflow-
// command escaping of `%` (`::debug::` data: % → %25), which the runner undoes when it shows the line.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as core from '@actions/core';
import { KubeConfig } from '@kubernetes/client-node';
import { createClusterContext, type ClusterContext } from '../../src/cluster/context.js';
import { KubeTransport } from '../../src/cluster/transport.js';

let server: Server;
const received: string[] = [];
let ctx: ClusterContext;
const observed: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    const kind = req.url?.includes('/deployments') ? 'DeploymentList' : 'PodList';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ kind, apiVersion: kind === 'DeploymentList' ? 'apps/v1' : 'v1', metadata: {}, items: [] }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'lab', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'unit-test-token' }],
    contexts: [{ name: 'lab', cluster: 'lab', user: 'u' }],
    currentContext: 'lab',
  });
  const transport = new KubeTransport(url, {
    onRequest: (r) => observed.push(`${r.method} ${r.path}`),
    retry: { attempts: 1, baseDelayMs: 1 },
  });
  ctx = createClusterContext(kc, transport, 'istio-vm-onboard');
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('query strings reach the API server encoded once', () => {
  it('labelSelector values with = are sent as %3D, decoded by the server to the selector, and reported as sent', async () => {
    received.length = 0;
    observed.length = 0;
    await ctx.transport.call((o) =>
      ctx.apps.listNamespacedDeployment({ namespace: 'istio-system', labelSelector: 'app=istiod' }, o),
    );
    await ctx.transport.call((o) =>
      ctx.core.listNamespacedPod({ namespace: 'vm-app', labelSelector: 'job-name=ivo-verify-vm1-ab12c' }, o),
    );

    expect(received).toEqual([
      'GET /apis/apps/v1/namespaces/istio-system/deployments?labelSelector=app%3Distiod',
      'GET /api/v1/namespaces/vm-app/pods?labelSelector=job-name%3Divo-verify-vm1-ab12c',
    ]);
    const selectors = received.map((line) =>
      new URL(line.split(' ')[1]!, 'http://x').searchParams.get('labelSelector'),
    );
    expect(selectors).toEqual(['app=istiod', 'job-name=ivo-verify-vm1-ab12c']);
    // What `kube GET …` debug lines print is the request as it went on the wire.
    expect(observed).toEqual(received);
  });

  it('the %253D of a raw ::debug:: line is the runner escaping % as %25, not a second encoding', () => {
    const written: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      core.debug(`kube ${observed[0]}`);
    } finally {
      spy.mockRestore();
    }
    const line = written.join('').trim();
    expect(line).toBe(
      '::debug::kube GET /apis/apps/v1/namespaces/istio-system/deployments?labelSelector=app%253Distiod',
    );
    // The runner unescapes workflow-command data (%25 → %) before it shows the line.
    expect(line.replace('::debug::', '').replace(/%25/g, '%')).toBe(`kube ${observed[0]}`);
  });
});
