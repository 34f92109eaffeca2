// Expectations on a run of the action, shared by the action-level suites (jest only: the harness itself is
// also used by the demo and the bench, outside jest).
import { expect } from '@jest/globals';
import { vmOf, type ActionRun } from './action-harness.js';

/** Every VM skipped at the cluster preflight: no step, no SSH counters, nothing onboarded or failed. */
export function expectNoVmTouched(r: ActionRun, vms: readonly string[]): void {
  for (const vm of vms) {
    const report = vmOf(r.report, vm);
    expect({ vm, outcome: report.outcome, steps: report.steps, counters: report.counters }).toEqual({
      vm,
      outcome: 'skipped-preflight',
      steps: [],
      counters: undefined,
    });
  }
  expect({ failed: r.outputs.failed, onboarded: r.outputs.onboarded }).toEqual({ failed: '', onboarded: '' });
}
