import { describe, expect, it } from '@jest/globals';
import type { GroupSpec } from '../../src/inventory/types.js';
import { sharedPerServiceAccount, type IssuedToken } from '../../src/cluster/group-tokens.js';

const group = (name: string, namespace: string, serviceAccount: string): GroupSpec =>
  ({ name, namespace, serviceAccount }) as GroupSpec;

/** A TokenRequest fake on one clock: each answer is a new token valid `lifetime` seconds from "now". */
function tokenServer(clock: { ms: number }, lifetime: number) {
  const asked: string[] = [];
  let failNext = false;
  return {
    asked,
    failOnce: () => {
      failNext = true;
    },
    request: async (g: GroupSpec): Promise<IssuedToken> => {
      asked.push(`${g.namespace}/${g.serviceAccount}`);
      if (failNext) {
        failNext = false;
        throw new Error('TokenRequest refused');
      }
      return { token: `token-${asked.length}`, expiresAt: new Date(clock.ms + lifetime * 1000) };
    },
  };
}

describe('one bootstrap token per ServiceAccount and run', () => {
  const start = Date.parse('2026-12-07T12:00:00Z');

  it('VMs of one group, asking at once or one after the other, share one TokenRequest', async () => {
    const clock = { ms: start };
    const server = tokenServer(clock, 3600);
    const token = sharedPerServiceAccount(server.request, { lifetimeSeconds: 3600, now: () => clock.ms });
    const app = group('app', 'vm-ns', 'vm-sa');
    const together = await Promise.all([token(app), token(app), token(app)]);
    clock.ms += 10 * 60_000;
    const later = await token(app);
    expect(new Set([...together, later].map((t) => t.token))).toEqual(new Set(['token-1']));
    expect(server.asked).toEqual(['vm-ns/vm-sa']);
  });

  it('another ServiceAccount or namespace gets its own token; two groups of one ServiceAccount share', async () => {
    const clock = { ms: start };
    const server = tokenServer(clock, 3600);
    const token = sharedPerServiceAccount(server.request, { lifetimeSeconds: 3600, now: () => clock.ms });
    const a = await token(group('a', 'ns1', 'sa'));
    const b = await token(group('b', 'ns1', 'sa'));
    const c = await token(group('c', 'ns2', 'sa'));
    const d = await token(group('d', 'ns1', 'other'));
    expect([a.token, b.token, c.token, d.token]).toEqual(['token-1', 'token-1', 'token-2', 'token-3']);
  });

  it('asks again once less than half of the lifetime is left', async () => {
    const clock = { ms: start };
    const server = tokenServer(clock, 3600);
    const token = sharedPerServiceAccount(server.request, { lifetimeSeconds: 3600, now: () => clock.ms });
    const app = group('app', 'vm-ns', 'vm-sa');
    await token(app);
    clock.ms += 30 * 60_000; // exactly half left: still shared
    expect((await token(app)).token).toBe('token-1');
    clock.ms += 1_000;
    const renewed = await token(app);
    expect(renewed.token).toBe('token-2');
    expect(renewed.expiresAt.getTime()).toBe(clock.ms + 3600_000);
  });

  it('a failed request is not remembered: the next VM asks again', async () => {
    const clock = { ms: start };
    const server = tokenServer(clock, 3600);
    const token = sharedPerServiceAccount(server.request, { lifetimeSeconds: 3600, now: () => clock.ms });
    const app = group('app', 'vm-ns', 'vm-sa');
    server.failOnce();
    await expect(token(app)).rejects.toThrow('TokenRequest refused');
    expect((await token(app)).token).toBe('token-2');
    expect(server.asked).toHaveLength(2);
  });
});
