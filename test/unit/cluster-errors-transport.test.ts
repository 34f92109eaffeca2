import { describe, expect, it } from '@jest/globals';
import { ApiException } from '@kubernetes/client-node';
import {
  describeRequest,
  formatForbidden,
  formatRetriesExhausted,
  KubeRequestError,
  redact,
} from '../../src/cluster/errors.js';
import { backoffDelayMs, classifyFailure, KubeTransport } from '../../src/cluster/transport.js';

describe('describeRequest (REST path → RBAC target)', () => {
  it.each([
    [
      'GET',
      '/api/v1/namespaces/ns/configmaps/istio',
      { verb: 'get', group: '', resource: 'configmaps', namespace: 'ns', name: 'istio' },
    ],
    [
      'GET',
      '/apis/apps/v1/namespaces/istio-system/deployments?labelSelector=app%3Distiod',
      { verb: 'list', group: 'apps', resource: 'deployments', namespace: 'istio-system' },
    ],
    [
      'POST',
      '/api/v1/namespaces/ns/serviceaccounts/sa/token',
      { verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token', namespace: 'ns', name: 'sa' },
    ],
    [
      'PATCH',
      '/api/v1/namespaces/vm-ns?fieldManager=x',
      { verb: 'patch', group: '', resource: 'namespaces', name: 'vm-ns' },
    ],
    [
      'DELETE',
      '/apis/batch/v1/namespaces/ns/jobs/j',
      { verb: 'delete', group: 'batch', resource: 'jobs', namespace: 'ns', name: 'j' },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns/pods/p/log?container=ivo-client',
      { verb: 'get', group: '', resource: 'pods', subresource: 'log', namespace: 'ns', name: 'p' },
    ],
    ['GET', '/api/v1/namespaces/ns/pods?watch=true', { verb: 'watch', group: '', resource: 'pods', namespace: 'ns' }],
  ])('%s %s', (method, path, expected) => {
    expect(describeRequest(method, path)).toEqual(expected);
  });
  it('non-resource paths have no target', () => {
    expect(describeRequest('GET', '/apis/networking.istio.io/v1')).toBeUndefined();
    expect(describeRequest('GET', '/version')).toBeUndefined();
  });
});

describe('messages', () => {
  it('403 names verb, resource, namespace and the kubectl check', () => {
    const m = formatForbidden(
      'https://k:6443',
      'PATCH',
      '/apis/networking.istio.io/v1/namespaces/vm-ns/workloadgroups/app?force=true',
      'nope',
    );
    expect(m).toContain('refused (403 Forbidden) to patch workloadgroups.networking.istio.io in namespace "vm-ns"');
    expect(m).toContain('(PATCH /apis/networking.istio.io/v1/namespaces/vm-ns/workloadgroups/app)');
    expect(m).toContain('kubectl auth can-i patch workloadgroups.networking.istio.io -n vm-ns');
    expect(m).toContain('Server said: nope');
  });
  it('retries exhausted: status or connection code, attempts, request without query', () => {
    expect(
      formatRetriesExhausted('https://k', 'PATCH', '/api/v1/namespaces/x?fieldManager=a', 4, { status: 500 }),
    ).toBe('Kubernetes API https://k answered 500 after 4 attempts for PATCH /api/v1/namespaces/x');
    expect(formatRetriesExhausted('https://k', 'GET', '/api', 1, { code: 'ECONNREFUSED' })).toBe(
      'Kubernetes API https://k was unreachable (ECONNREFUSED) after 1 attempt for GET /api',
    );
  });
  it('redact replaces every secret, longest first', () => {
    expect(redact('a secret-token and secret', ['secret', 'secret-token'])).toBe('a *** and ***');
  });
});

describe('classifyFailure and backoff', () => {
  it('5xx and 429 retry; 4xx do not; connection errors retry', () => {
    expect(classifyFailure(new ApiException(500, 'x', '{"message":"etcd down"}', {}))).toMatchObject({
      kind: 'server',
      retryable: true,
      serverMessage: 'etcd down',
    });
    expect(classifyFailure(new ApiException(429, 'x', {}, { 'retry-after': '2' }))).toMatchObject({
      kind: 'throttled',
      retryable: true,
      retryAfterSeconds: 2,
    });
    expect(classifyFailure(new ApiException(403, 'x', { message: 'forbidden' }, {}))).toMatchObject({
      kind: 'forbidden',
      retryable: false,
    });
    expect(classifyFailure(new ApiException(404, 'x', {}, {}))).toMatchObject({ kind: 'not-found', retryable: false });
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    expect(classifyFailure(refused)).toMatchObject({ kind: 'unreachable', retryable: true, code: 'ECONNREFUSED' });
    expect(classifyFailure(new DOMException('t', 'TimeoutError'))).toMatchObject({ kind: 'timeout', retryable: true });
    expect(classifyFailure(new Error('boom'))).toMatchObject({ kind: 'other', retryable: false });
  });
  it('doubles from the base and is capped; Retry-After raises it within the cap', () => {
    const p = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelayMs(p, a))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffDelayMs(p, 1, 0.5)).toBe(500);
    expect(backoffDelayMs(p, 1, 60)).toBe(1000);
  });
});

describe('KubeTransport.call', () => {
  const fakeCtx = (method: string, url: string) => ({
    getUrl: () => url,
    getHttpMethod: () => method,
    setHeaderParam: () => undefined,
    setSignal: () => undefined,
  });
  /** Runs the pre middleware like client-node does, then the outcome. */
  function endpoint(
    outcomes: Array<() => unknown>,
    method = 'GET',
    url = 'https://k/api/v1/namespaces/ns/configmaps/c',
  ) {
    let i = 0;
    return async (options: { middleware?: Array<{ pre(c: unknown): { toPromise(): Promise<unknown> } }> }) => {
      for (const m of options.middleware ?? []) await m.pre(fakeCtx(method, url)).toPromise();
      const o = outcomes[Math.min(i++, outcomes.length - 1)]!;
      return o();
    };
  }
  it('retries 500 with the policy delays, then succeeds; counts and reports every attempt', async () => {
    const delays: number[] = [];
    const seen: string[] = [];
    const t = new KubeTransport('https://k', {
      retry: { attempts: 4, baseDelayMs: 10 },
      sleep: async (ms) => void delays.push(ms),
      onRequest: (r) => seen.push(`${r.method} ${r.path}`),
    });
    const err500 = () => {
      throw new ApiException(500, 'x', {}, {});
    };
    const result = await t.call(endpoint([err500, err500, () => 'ok']) as never);
    expect(result).toBe('ok');
    expect(delays).toEqual([10, 20]);
    expect(t.requestCount).toBe(3);
    expect(seen).toEqual(Array(3).fill('GET /api/v1/namespaces/ns/configmaps/c'));
  });
  it('gives up after the attempts with a clear error; 404 is undefined for callOptional; 403 is not retried', async () => {
    const t = new KubeTransport('https://k', { retry: { attempts: 3, baseDelayMs: 1 }, sleep: async () => undefined });
    const err = (await t
      .call(
        endpoint(
          [
            () => {
              throw new ApiException(503, 'x', {}, {});
            },
          ],
          'POST',
          'https://k/api/v1/namespaces/ns/serviceaccounts/sa/token',
        ) as never,
      )
      .catch((e: unknown) => e)) as KubeRequestError;
    expect(err).toBeInstanceOf(KubeRequestError);
    expect(err.message).toBe(
      'Kubernetes API https://k answered 503 after 3 attempts for POST /api/v1/namespaces/ns/serviceaccounts/sa/token',
    );
    expect(
      await t.callOptional(
        endpoint([
          () => {
            throw new ApiException(404, 'x', {}, {});
          },
        ]) as never,
      ),
    ).toBeUndefined();
    const before = t.requestCount;
    await expect(
      t.call(
        endpoint([
          () => {
            throw new ApiException(403, 'x', {}, {});
          },
        ]) as never,
      ),
    ).rejects.toThrow(/403 Forbidden\) to get configmaps in namespace "ns"/);
    expect(t.requestCount - before).toBe(1);
  });
});
