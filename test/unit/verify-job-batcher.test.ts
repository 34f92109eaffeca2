// Issue 20: the batcher that lets the VMs of a group reaching the mesh→VM check together share one Job.
// One injected clock per test; timers fire only when the test advances it.
import { describe, expect, it } from '@jest/globals';
import { VerificationJobBatcher, verificationGroupKey, type BatchClock } from '../../src/verify/job-batcher.js';
import type { VerificationJobResult, VerificationJobSpec } from '../../src/verify/ports.js';

class ManualClock implements BatchClock {
  private time = 0;
  private timers: { at: number; fn: () => void }[] = [];
  now(): number {
    return this.time;
  }
  setTimer(ms: number, fn: () => void): () => void {
    const timer = { at: this.time + ms, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }
  advance(ms: number): void {
    this.time += ms;
    for (const timer of this.timers.filter((t) => t.at <= this.time)) {
      this.timers = this.timers.filter((t) => t !== timer);
      timer.fn();
    }
  }
  pending(): number {
    return this.timers.length;
  }
}

const GROUP = verificationGroupKey({ namespace: 'vm-app', name: 'app' });

function spec(vm: string, injectSidecar = true): VerificationJobSpec {
  return {
    namespace: 'vm-app',
    name: `ivo-verify-${vm}-abcde`,
    image: 'img',
    targetUrl: `http://${vm}:8080/`,
    requests: 3,
    injectSidecar,
    timeoutMs: 90_000,
  };
}

/** A runner that records each Job's VMs and answers each VM with its own code. */
function recordingRunner(codes: Record<string, string> = {}) {
  const jobs: { group: string; vms: string[] }[] = [];
  const run = async (group: string, specs: VerificationJobSpec[]): Promise<VerificationJobResult[]> => {
    jobs.push({ group, vms: specs.map((s) => s.targetUrl) });
    return specs.map((s) => ({
      succeeded: true,
      calls: [{ n: 1, code: codes[s.targetUrl] ?? '200' }],
      logs: '',
    }));
  };
  return { jobs, run };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('VerificationJobBatcher (issue 20: one verification Job per group)', () => {
  it('the group key is namespace/group', () => {
    expect(GROUP).toBe('vm-app/app');
  });

  it('holds the VMs that reach the check until the last one on its way arrives, then runs one Job; each gets its own result', async () => {
    const clock = new ManualClock();
    const { jobs, run } = recordingRunner({ 'http://vm2:8080/': '503' });
    const batcher = new VerificationJobBatcher(run, { clock, maxWaitMs: 30_000 });
    for (const vm of ['vm1', 'vm2', 'vm3']) batcher.expect(GROUP, vm);
    const first = batcher.submit(GROUP, 'vm1', spec('vm1'));
    const second = batcher.submit(GROUP, 'vm2', spec('vm2'));
    await flush();
    expect(jobs).toEqual([]);
    expect(batcher.waitingFor(GROUP)).toEqual(['vm3']);
    const third = batcher.submit(GROUP, 'vm3', spec('vm3'));
    const results = await Promise.all([first, second, third]);
    expect(jobs).toEqual([{ group: GROUP, vms: ['http://vm1:8080/', 'http://vm2:8080/', 'http://vm3:8080/'] }]);
    expect(results.map((r) => r.calls[0]!.code)).toEqual(['200', '503', '200']);
    expect(clock.pending()).toBe(0);
  });

  it('a VM that will not reach the check (failed earlier, check skipped) is withdrawn: the others go on at once', async () => {
    const clock = new ManualClock();
    const { jobs, run } = recordingRunner();
    const batcher = new VerificationJobBatcher(run, { clock });
    batcher.expect(GROUP, 'vm1');
    batcher.expect(GROUP, 'vm2');
    const first = batcher.submit(GROUP, 'vm1', spec('vm1'));
    await flush();
    expect(jobs).toEqual([]);
    batcher.withdraw(GROUP, 'vm2');
    await first;
    expect(jobs).toEqual([{ group: GROUP, vms: ['http://vm1:8080/'] }]);
    // Withdrawing again, or a VM never expected, changes nothing.
    batcher.withdraw(GROUP, 'vm2');
    batcher.withdraw(GROUP, 'vm9');
    expect(jobs).toHaveLength(1);
  });

  it('waits at most maxWaitMs for a VM still on its way; the late VM gets a Job of its own', async () => {
    const clock = new ManualClock();
    const { jobs, run } = recordingRunner();
    const batcher = new VerificationJobBatcher(run, { clock, maxWaitMs: 30_000 });
    batcher.expect(GROUP, 'vm1');
    batcher.expect(GROUP, 'slow');
    const first = batcher.submit(GROUP, 'vm1', spec('vm1'));
    clock.advance(29_999);
    await flush();
    expect(jobs).toEqual([]);
    clock.advance(1);
    await first;
    expect(jobs).toEqual([{ group: GROUP, vms: ['http://vm1:8080/'] }]);
    await batcher.submit(GROUP, 'slow', spec('slow'));
    expect(jobs).toEqual([
      { group: GROUP, vms: ['http://vm1:8080/'] },
      { group: GROUP, vms: ['http://slow:8080/'] },
    ]);
  });

  it('the mTLS and the plaintext Jobs are batched apart (kinds never share a Job); other groups never wait', async () => {
    const clock = new ManualClock();
    const { jobs, run } = recordingRunner();
    const batcher = new VerificationJobBatcher(run, { clock });
    const other = verificationGroupKey({ namespace: 'vm-db', name: 'db' });
    batcher.expect(GROUP, 'vm1');
    batcher.expect(GROUP, 'vm2');
    batcher.expect(other, 'db1');
    const all = [
      batcher.submit(GROUP, 'vm1', spec('vm1', true)),
      batcher.submit(GROUP, 'vm1', spec('vm1', false)),
      batcher.submit(GROUP, 'vm2', spec('vm2', true)),
      batcher.submit(GROUP, 'vm2', spec('vm2', false)),
    ];
    await Promise.all(all);
    expect(jobs).toEqual([
      { group: GROUP, vms: ['http://vm1:8080/', 'http://vm2:8080/'] },
      { group: GROUP, vms: ['http://vm1:8080/', 'http://vm2:8080/'] },
    ]);
    expect(batcher.waitingFor(other)).toEqual(['db1']);
  });

  it('a full batch (maxVms) runs at once', async () => {
    const clock = new ManualClock();
    const { jobs, run } = recordingRunner();
    const batcher = new VerificationJobBatcher(run, { clock, maxVms: 2 });
    for (const vm of ['a', 'b', 'c']) batcher.expect(GROUP, vm);
    await Promise.all([batcher.submit(GROUP, 'a', spec('a')), batcher.submit(GROUP, 'b', spec('b'))]);
    expect(jobs).toEqual([{ group: GROUP, vms: ['http://a:8080/', 'http://b:8080/'] }]);
    await batcher.submit(GROUP, 'c', spec('c'));
    expect(jobs).toHaveLength(2);
  });

  it("the runner's error (or a wrong number of results) reaches every VM of the Job", async () => {
    const clock = new ManualClock();
    const failing = new VerificationJobBatcher(
      () => {
        throw new Error('serviceentries is forbidden');
      },
      { clock },
    );
    await expect(failing.submit(GROUP, 'vm1', spec('vm1'))).rejects.toThrow('serviceentries is forbidden');
    const short = new VerificationJobBatcher(async () => [], { clock });
    await expect(short.submit(GROUP, 'vm1', spec('vm1'))).rejects.toThrow('0 results for 1 VMs');
  });
});
