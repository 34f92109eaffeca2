// Issue 20 / ADR 0005: the VMs of a group that reach the mesh→VM check together share one verification Job.
// The rollout tells the batcher which VMs of a group are on their way to the check (`expect`, when a VM's
// pipeline starts) and which will not get there (`withdraw`: it failed earlier, its check is skipped, it waits
// for the group's upgrade canary, or its pipeline ended). A VM reaching the check `submit`s its Job; the
// group's submissions of one kind (same namespace, image, calls, injection, revision) are held until no VM of
// the group is on its way any more, the batch is full, or `maxWaitMs` after the first of them — then one Job
// serves them all and each VM gets its own result (or the runner's error).
import { verificationBatchKey } from '../cluster/verification-job.js';
import type { VerificationJobQueue, VerificationJobResult, VerificationJobSpec } from './ports.js';

/** Time, injected for tests. */
export interface BatchClock {
  now(): number;
  /** Calls `fn` once after `ms`; returns what cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const SYSTEM_BATCH_CLOCK: BatchClock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** Runs one Job for `specs` (VMs of `group`, all of one kind); one result per spec, in order. */
export type GroupJobRunner = (group: string, specs: VerificationJobSpec[]) => Promise<VerificationJobResult[]>;

export interface JobBatcherOptions {
  /** How long the first VM of a batch waits, at most, for the group's VMs still on their way. */
  maxWaitMs: number;
  /** VMs per Job at most (a larger group gets several Jobs). */
  maxVms: number;
  clock?: BatchClock;
}

export const DEFAULT_JOB_BATCHER_OPTIONS: JobBatcherOptions = { maxWaitMs: 30_000, maxVms: 20 };

/** The batcher's name for a group: `<namespace>/<group>`. Pure. */
export function verificationGroupKey(group: { namespace: string; name: string }): string {
  return `${group.namespace}/${group.name}`;
}

interface Member {
  vm: string;
  spec: VerificationJobSpec;
  resolve: (result: VerificationJobResult) => void;
  reject: (error: unknown) => void;
}

interface OpenBatch {
  group: string;
  key: string;
  members: Member[];
  cancelTimer: () => void;
}

export class VerificationJobBatcher implements VerificationJobQueue {
  private readonly options: JobBatcherOptions & { clock: BatchClock };
  /** Group → its VMs on their way to the check. */
  private readonly onTheWay = new Map<string, Set<string>>();
  /** Open batches by group and kind. */
  private readonly open = new Map<string, OpenBatch>();

  constructor(
    private readonly run: GroupJobRunner,
    options: Partial<JobBatcherOptions> = {},
  ) {
    this.options = {
      ...DEFAULT_JOB_BATCHER_OPTIONS,
      ...options,
      clock: options.clock ?? SYSTEM_BATCH_CLOCK,
    };
    this.options.maxVms = Math.max(1, Math.floor(this.options.maxVms));
    this.options.maxWaitMs = Math.max(0, this.options.maxWaitMs);
  }

  /** `vm` of `group` is on its way to the check (its pipeline started). */
  expect(group: string, vm: string): void {
    let vms = this.onTheWay.get(group);
    if (!vms) this.onTheWay.set(group, (vms = new Set()));
    vms.add(vm);
  }

  /** `vm` of `group` will not reach the check (this time): nobody waits for it. */
  withdraw(group: string, vm: string): void {
    if (!this.onTheWay.get(group)?.delete(vm)) return;
    queueMicrotask(() => this.flushReady(group));
  }

  /** The VMs of `group` still on their way (for the report and tests). */
  waitingFor(group: string): string[] {
    return [...(this.onTheWay.get(group) ?? [])];
  }

  /** `vm` reached the check: its Job runs in its group's next Job of this kind. */
  submit(group: string, vm: string, spec: VerificationJobSpec): Promise<VerificationJobResult> {
    this.onTheWay.get(group)?.delete(vm);
    const id = `${group}\n${verificationBatchKey(spec)}`;
    let batch = this.open.get(id);
    if (!batch) {
      const opened: OpenBatch = {
        group,
        key: id,
        members: [],
        cancelTimer: () => undefined,
      };
      opened.cancelTimer = this.options.clock.setTimer(this.options.maxWaitMs, () => this.flush(opened));
      this.open.set(id, (batch = opened));
    }
    const promise = new Promise<VerificationJobResult>((resolve, reject) => {
      batch.members.push({ vm, spec, resolve, reject });
    });
    if (batch.members.length >= this.options.maxVms) this.flush(batch);
    // Checked once the current turn ends: a VM submits its mTLS and its plaintext Job in one turn, and the
    // second must not find its kind's batch already gone because the first emptied the group's way.
    queueMicrotask(() => this.flushReady(group));
    return promise;
  }

  /** Flushes the group's open batches when none of its VMs is on its way any more. */
  private flushReady(group: string): void {
    if ((this.onTheWay.get(group)?.size ?? 0) > 0) return;
    for (const batch of [...this.open.values()]) if (batch.group === group) this.flush(batch);
  }

  private flush(batch: OpenBatch): void {
    if (this.open.get(batch.key) !== batch) return;
    this.open.delete(batch.key);
    batch.cancelTimer();
    const { members } = batch;
    Promise.resolve()
      .then(() =>
        this.run(
          batch.group,
          members.map((m) => m.spec),
        ),
      )
      .then(
        (results) => {
          if (results.length !== members.length) {
            const error = new Error(`the verification Job gave ${results.length} results for ${members.length} VMs`);
            for (const m of members) m.reject(error);
            return;
          }
          for (const [index, m] of members.entries()) m.resolve(results[index]!);
        },
        (error: unknown) => {
          for (const m of members) m.reject(error);
        },
      );
  }
}
