// The job summary (GitHub-flavoured Markdown): one row per VM, then the failures with evidence and
// hints, then the cluster objects. Passing VMs fold away so that 500 VMs stay readable.
import { checkDefinition, checkNames } from '../verify/registry.js';
import {
  changesSidecarVersion,
  isSuccess,
  runFailed,
  sidecarVersionOf,
  controlPlaneMoveOf,
  movesControlPlane,
  type CheckResult,
  type RunReport,
  type VmReport,
} from './model.js';

/** Above this many VMs the passing ones are folded into a <details> block. */
const FOLD_PASSING_ABOVE = 20;

export function renderJobSummary(report: RunReport): string {
  const out: string[] = [];
  const verdict = runFailed(report) ? '❌ failed' : '✅ succeeded';
  out.push(`## istio-vm-onboard · ${report.mode} · ${verdict}`, '');
  out.push(
    `${report.totals.vms} VM(s): **${report.totals.succeeded} ok**, **${report.totals.failed} failed**, ` +
      `${report.totals.changed} changed, ${report.totals.unchanged} unchanged, ${report.totals.skipped} skipped · ` +
      `${formatDuration(report.durationMs)} · inventory \`${escapeCell(report.inventory.source)}\`` +
      (report.inventory.shard ? ` · shard ${report.inventory.shard}` : ''),
    '',
  );
  if (report.fatal) {
    out.push(`> [!CAUTION]`, `> **${report.fatal.stage}**: ${escapeCell(report.fatal.message)}`);
    if (report.fatal.hint) out.push(`> `, `> ${escapeCell(report.fatal.hint)}`);
    out.push('');
  }
  const active = report.vms.filter((vm) => !vm.outcome.startsWith('skipped-shard'));
  const failing = active.filter((vm) => !isSuccess(vm));
  const passing = active.filter(isSuccess);
  if (active.length > 0) {
    if (active.length > FOLD_PASSING_ABOVE) {
      if (failing.length > 0) out.push(...vmTable(failing), '');
      out.push(
        `<details><summary>${passing.length} VM(s) passed</summary>`,
        '',
        ...vmTable(passing),
        '',
        '</details>',
        '',
      );
    } else {
      out.push(...vmTable(active), '');
    }
  }
  const skippedShard = report.vms.filter((vm) => vm.outcome === 'skipped-shard').length;
  if (skippedShard > 0) out.push(`${skippedShard} VM(s) belong to other shards.`, '');

  const failures = report.vms.filter((vm) => vm.error || vm.checks.some((check) => check.status === 'fail'));
  if (failures.length > 0) {
    out.push('### Failures', '');
    for (const vm of failures) out.push(...failureBlock(vm));
  }
  const drifted = report.vms.filter((vm) => (vm.drift ?? []).length > 0);
  if (drifted.length > 0) {
    out.push('### Drift', '', report.mode === 'verify' ? 'Run onboard to repair it.' : 'Onboard would repair it.', '');
    for (const vm of drifted) out.push(...driftBlock(vm));
  }
  if (report.warnings.length > 0) {
    out.push('### Warnings', '', ...report.warnings.map((warning) => `- ${escapeCell(warning)}`), '');
  }
  const objects = report.cluster?.objects ?? [];
  if (report.cluster) {
    out.push('### Cluster', '');
    const facts = [
      report.cluster.server && `API server \`${report.cluster.server}\``,
      report.cluster.istioVersion && `Istio ${report.cluster.istioVersion}`,
      report.cluster.revision && `revision \`${report.cluster.revision}\``,
      report.cluster.clusterID && `cluster ID \`${report.cluster.clusterID}\``,
      report.cluster.trustDomain && `trust domain \`${report.cluster.trustDomain}\``,
      report.cluster.eastWest &&
        `east-west gateway \`${report.cluster.eastWest.address}\` (${report.cluster.eastWest.source}${
          report.cluster.eastWest.hostname ? ` of \`${report.cluster.eastWest.hostname}\`` : ''
        })`,
      report.cluster.apiRequests !== undefined && `${report.cluster.apiRequests} API requests`,
    ].filter(Boolean);
    out.push(facts.join(' · '), '');
    if (objects.length > 0) {
      out.push(
        `<details><summary>${objects.length} object(s) applied</summary>`,
        '',
        '| kind | namespace | name | action |',
        '| --- | --- | --- | --- |',
        ...objects.map(
          (object) => `| ${object.kind} | ${object.namespace ?? ''} | ${object.name} | ${object.action} |`,
        ),
        '',
        '</details>',
        '',
      );
    }
  }
  return out.join('\n');
}

function vmTable(vms: VmReport[]): string[] {
  const checkColumns = checkNames().filter((name) => vms.some((vm) => vm.checks.some((check) => check.name === name)));
  const sidecar = changesSidecarVersion(vms);
  const istiod = movesControlPlane(vms);
  const header = [
    'VM',
    'group',
    'address',
    'result',
    ...(sidecar ? ['sidecar'] : []),
    ...(istiod ? ['istiod'] : []),
    ...checkColumns.map((name) => checkDefinition(name)?.short ?? name),
    'time',
  ];
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...vms.map((vm) => {
      const cells = [
        `\`${vm.name}\``,
        vm.group,
        `${vm.address}${vm.workloadIP && !vm.address.startsWith(`${vm.workloadIP}:`) ? ` (${vm.workloadIP})` : ''}`,
        outcomeLabel(vm),
        ...(sidecar ? [sidecarVersionOf(vm)] : []),
        ...(istiod ? [controlPlaneMoveOf(vm)] : []),
        ...checkColumns.map((name) => checkMark(vm.checks.find((check) => check.name === name))),
        formatDuration(vm.durationMs),
      ];
      return `| ${cells.map(escapeCell).join(' | ')} |`;
    }),
  ];
}

function failureBlock(vm: VmReport): string[] {
  const lines = [`#### \`${vm.name}\` (${vm.group}, ${vm.address}) — ${vm.outcome}`, ''];
  if (vm.error) {
    lines.push(`- **${vm.error.step}**: ${escapeCell(vm.error.message)}`);
    // A verify failure's hint is the failing check's own, shown with it below.
    if (vm.error.hint && vm.error.step !== 'verify') lines.push(`  - what to do: ${escapeCell(vm.error.hint)}`);
  }
  if (vm.canary?.self)
    lines.push(`- this VM was the canary of group ${vm.group}: its other upgrades and revision moves were not started`);
  if (vm.afterRollback) {
    const failedAfter = vm.afterRollback.checks.filter((check) => check.status === 'fail').map((check) => check.name);
    const on = vm.afterRollback.version ? ` on ${vm.afterRollback.version}` : '';
    lines.push(
      vm.afterRollback.healthy
        ? `- **after rollback**: healthy again${on} (every check passed)`
        : `- **after rollback**: STILL UNHEALTHY${on}: ${failedAfter.join(', ')} failed — the VM needs a look`,
    );
  }
  for (const check of vm.checks.filter((item) => item.status === 'fail')) {
    lines.push(`- **${check.name}**: ${escapeCell(check.summary)}`);
    if (check.hint) lines.push(`  - what to do: ${escapeCell(check.hint)}`);
    if (check.evidence.length > 0) {
      lines.push(
        '  <details><summary>evidence</summary>',
        '',
        '  ```',
        ...check.evidence.map((line) => `  ${line}`),
        '  ```',
        '  </details>',
      );
    }
  }
  lines.push('');
  return lines;
}

function driftBlock(vm: VmReport): string[] {
  const lines = [`#### \`${vm.name}\` (${vm.group}, ${vm.address})`, ''];
  for (const record of vm.drift ?? []) {
    lines.push(`- **${record.kind}** \`${escapeCell(record.subject)}\` ${record.change}: ${escapeCell(record.detail)}`);
    if (record.diff) {
      lines.push(
        '  <details><summary>diff</summary>',
        '',
        '  ```diff',
        ...record.diff.split('\n').map((line) => `  ${line}`),
        '  ```',
        '  </details>',
      );
    }
  }
  lines.push('');
  return lines;
}

function outcomeLabel(vm: VmReport): string {
  const icon = isSuccess(vm)
    ? '✅'
    : vm.outcome.startsWith('skipped')
      ? '⏭️'
      : vm.outcome === 'rolled-back'
        ? '↩️'
        : vm.outcome === 'rolled-back-unhealthy'
          ? '↩️❌'
          : '❌';
  return `${icon} ${vm.outcome}`;
}

function checkMark(check: CheckResult | undefined): string {
  if (!check) return '';
  return check.status === 'pass' ? '✅' : check.status === 'fail' ? '❌' : '–';
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}
