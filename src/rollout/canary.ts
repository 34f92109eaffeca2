// The canary of a group: when a run changes what runs on VMs that have the sidecar installed — its version (an
// upgrade) or the istiod it dials (a revision move) — the first of the group's VMs found changing goes first,
// alone; the group's other changes wait (after inspect, before their token and apply) for its outcome, and are
// not started when it was rolled back or failed. First installs never wait: nothing runs there yet to break.
import { isSuccess, type VmReport } from '../report/model.js';

/** What the group's waiting upgrades and moves learn from their canary. */
export type CanaryResult = { vm: string; ok: true } | { vm: string; ok: false; reason: string };

export type CanaryRole = { canary: true } | { canary: false; vm: string; result: Promise<CanaryResult> };

export class GroupCanary {
  private canaryVm: string | undefined;
  private settle!: (result: CanaryResult) => void;
  private readonly result = new Promise<CanaryResult>((resolve) => {
    this.settle = resolve;
  });

  /** A changing VM of the group joins: the first becomes the canary, the others wait for it. */
  join(vm: string): CanaryRole {
    if (this.canaryVm === undefined) {
      this.canaryVm = vm;
      return { canary: true };
    }
    return { canary: false, vm: this.canaryVm, result: this.result };
  }

  /** The canary's final report (called once it is done, whatever happened). */
  finish(report: VmReport): void {
    if (report.name !== this.canaryVm) return;
    this.settle(
      isSuccess(report)
        ? { vm: report.name, ok: true }
        : { vm: report.name, ok: false, reason: describeCanaryFailure(report) },
    );
  }
}

function describeCanaryFailure(report: VmReport): string {
  const why = report.error ? ` at ${report.error.step}: ${report.error.message}` : '';
  switch (report.outcome) {
    case 'rolled-back':
      return `was rolled back${why}`;
    case 'rolled-back-unhealthy':
      return `was rolled back and is still unhealthy${why}`;
    default:
      return `${report.outcome}${why}`;
  }
}
