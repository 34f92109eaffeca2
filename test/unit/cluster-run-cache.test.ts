// RunCache.recentOrNew: one read shared by the VMs that poll the same namespace at once (issue 20); RunCache.claim.
import { describe, expect, it } from '@jest/globals';
import { RunCache } from '../../src/cluster/context.js';

describe('RunCache.recentOrNew', () => {
  it('shares a read within maxAgeMs of its start, and reads again after', async () => {
    const cache = new RunCache();
    let clock = 1_000;
    let reads = 0;
    const read = () =>
      cache.recentOrNew(
        'k',
        400,
        async () => ++reads,
        () => clock,
      );
    expect(await Promise.all([read(), read()])).toEqual([1, 1]);
    clock += 399;
    expect(await read()).toBe(1);
    clock += 1;
    expect(await read()).toBe(2);
    cache.forgetRecent('k');
    expect(await read()).toBe(3);
    // A clock that went back does not make an old read look recent.
    clock -= 10_000;
    expect(await read()).toBe(4);
  });

  it('does not share a failed read once it has settled', async () => {
    const cache = new RunCache();
    let calls = 0;
    const failing = () =>
      cache.recentOrNew(
        'k',
        60_000,
        async () => {
          calls += 1;
          if (calls === 1) throw new Error('boom');
          return calls;
        },
        () => 5,
      );
    await expect(failing()).rejects.toThrow('boom');
    expect(await failing()).toBe(2);
  });
});

describe('RunCache.claim', () => {
  it('is true for the first caller of a key only (the first group applied into a namespace the run created)', () => {
    const cache = new RunCache();
    expect(cache.claim('namespace-first-group/vm-ns')).toBe(true);
    expect(cache.claim('namespace-first-group/vm-ns')).toBe(false);
    expect(cache.claim('namespace-first-group/other-ns')).toBe(true);
  });
});
