// The step outputs later workflow steps read, and the report file.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isSuccess, type RunReport } from './model.js';

export interface RunOutputs {
  'report-path': string;
  onboarded: string;
  failed: string;
  result: string;
}

export function computeOutputs(report: RunReport, reportPath: string): RunOutputs {
  const succeeded = report.vms.filter(isSuccess).map((vm) => vm.name);
  const failed = report.vms.filter((vm) => !isSuccess(vm) && !vm.outcome.startsWith('skipped')).map((vm) => vm.name);
  // Skipped for a reason of this run (not another shard's VMs): the canary's failure, the budget, the preflight.
  const skipped = report.vms
    .filter((vm) => vm.outcome.startsWith('skipped') && vm.outcome !== 'skipped-shard')
    .map((vm) => ({ vm: vm.name, outcome: vm.outcome, ...(vm.error ? { message: vm.error.message } : {}) }));
  const result = {
    schemaVersion: report.schemaVersion,
    mode: report.mode,
    ok: failed.length === 0 && !report.fatal,
    totals: report.totals,
    ...(report.fatal ? { fatal: report.fatal.message } : {}),
    failed: report.vms
      .filter((vm) => failed.includes(vm.name))
      .map((vm) => ({
        vm: vm.name,
        step: vm.error?.step,
        checks: vm.checks.filter((check) => check.status === 'fail').map((check) => check.name),
        message: vm.error?.message,
      })),
    ...(skipped.some((vm) => vm.outcome === 'skipped-canary') ? { skipped } : {}),
  };
  return {
    'report-path': reportPath,
    onboarded: succeeded.join(','),
    failed: failed.join(','),
    result: JSON.stringify(result),
  };
}

/**
 * Writes the JSON report readable by its owner only (0600, also when the file existed): it holds no
 * secrets, but names every VM, address and failure of the fleet, which other users of a shared
 * runner need not read.
 */
export async function writeReport(report: RunReport, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}
