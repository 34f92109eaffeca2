// The CLI's view of a run: one line per VM with every check, then the failures with hints.
import { checkNames } from '../verify/registry.js';
import {
  changesSidecarVersion,
  controlPlaneMoveOf,
  isSuccess,
  movesControlPlane,
  runFailed,
  sidecarVersionOf,
  type RunReport,
} from './model.js';
import { formatDuration } from './summary.js';

const MARK = { pass: 'ok', fail: 'FAIL', skipped: '-' } as const;

export function renderTerminalTable(report: RunReport): string {
  const shown = report.vms.filter((vm) => vm.outcome !== 'skipped-shard');
  const checks = checkNames().filter((name) => shown.some((vm) => vm.checks.some((check) => check.name === name)));
  const sidecar = changesSidecarVersion(shown);
  const istiod = movesControlPlane(shown);
  const header = [
    'VM',
    'GROUP',
    'ADDRESS',
    'RESULT',
    ...(sidecar ? ['SIDECAR'] : []),
    ...(istiod ? ['ISTIOD'] : []),
    ...checks.map((name) => name.toUpperCase()),
    'TIME',
  ];
  const rows = shown.map((vm) => [
    vm.name,
    vm.group,
    vm.address,
    vm.outcome,
    ...(sidecar ? [sidecarVersionOf(vm)] : []),
    ...(istiod ? [controlPlaneMoveOf(vm)] : []),
    ...checks.map((name) => {
      const check = vm.checks.find((item) => item.name === name);
      return check ? MARK[check.status] : '';
    }),
    formatDuration(vm.durationMs),
  ]);
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  const failures = shown.filter(
    (vm) => (!isSuccess(vm) && !vm.outcome.startsWith('skipped')) || vm.outcome === 'skipped-canary',
  );
  for (const vm of failures) {
    out.push('');
    if (vm.error)
      out.push(
        `${vm.name}: ${vm.error.step} ${vm.outcome === 'skipped-canary' ? 'skipped' : 'failed'}: ` +
          `${vm.error.message}${vm.error.hint ? `\n  what to do: ${vm.error.hint}` : ''}`,
      );
    for (const check of vm.checks.filter((item) => item.status === 'fail')) {
      out.push(`${vm.name}: ${check.name}: ${check.summary}${check.hint ? `\n  what to do: ${check.hint}` : ''}`);
    }
    if (vm.afterRollback) {
      const failedAfter = vm.afterRollback.checks.filter((check) => check.status === 'fail').map((check) => check.name);
      out.push(
        `${vm.name}: after rollback ` +
          (vm.afterRollback.healthy ? 'healthy again' : `STILL UNHEALTHY (${failedAfter.join(', ')} failed)`) +
          (vm.afterRollback.version ? ` on ${vm.afterRollback.version}` : ''),
      );
    }
  }
  if (report.fatal)
    out.push(
      '',
      `${report.fatal.stage}: ` +
        `${report.fatal.message}${report.fatal.hint ? `\n  what to do: ${report.fatal.hint}` : ''}`,
    );
  out.push(
    '',
    `${runFailed(report) ? 'FAILED' : 'OK'}: ${report.totals.succeeded} ok, ${report.totals.failed} ` +
      `failed, ${report.totals.changed} changed, ${report.totals.unchanged} unchanged, ` +
      `${report.totals.skipped} skipped in ${formatDuration(report.durationMs)}`,
  );
  return out.join('\n');
}
