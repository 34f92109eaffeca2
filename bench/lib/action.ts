// One measured run of the bundled action (dist/index.js) against a lab, as a GitHub runner runs it
// (the INPUT_* environment of test/lab/action-harness.ts, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY,
// RUNNER_TEMP), under GNU time for the runner CPU, with every stdout line timestamped.
//
// Phases. The report gives each VM's step durations (connect, inspect, token, render, apply, verify)
// and the VM's total; with concurrency = N and max-unavailable 100% every VM's pipeline starts at the
// same instant S, once the cluster side (preflight, namespace/ServiceAccount/WorkloadGroup, mesh
// values) is done. S = finishedAt − max(vm.durationMs) (the longest VM ends the run). Then
//   apply end of VM i      = S + Σ durations of its steps up to and including `apply`
//   onboarding phase       = max_i(apply end of VM i) − process spawn   (node start + cluster side + VMs)
//   verification phase     = process exit − max_i(apply end)            (checks + report + exit)
// Cross-check: the arrival time of the last `[vm] apply: …` log line (printed when apply ends).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { actionEnvironment, parseOutputFile } from '../../test/lab/action-harness.js';
import { node24 } from '../../test/lab/testing.js';
import type { RunReport, StepName, VmReport } from '../../src/report/model.js';
import type { BenchLab } from './lab.js';
import { runTimed } from './proc.js';
import { max, median, sum } from './stats.js';

export type ActionKind = 'first' | 'rerun';

/** The checks whose durations the results break the verification phase into. */
export const VERIFY_PARTS = ['sidecar-ready', 'workload-entry', 'mesh-to-vm-mtls'] as const;

export interface ActionMeasurement {
  kind: ActionKind;
  vms: number;
  ok: boolean;
  problems: string[];
  exitCode: number | null;
  wallMs: number;
  onboardingMs: number;
  verificationMs: number;
  /** Spawn → the moment the VMs' pipelines start (node start, inputs, cluster preflight and objects). */
  beforeVmsMs: number;
  /** Cross-check of onboardingMs from the last `[vm] apply:` log line's arrival. */
  onboardingFromLogMs: number | undefined;
  firstOutputMs: number | undefined;
  /** First line a user sees in the log (not ::add-mask:: / ::debug:: commands). */
  firstVisibleLineMs: number | undefined;
  cpuS: number;
  maxRssKiB: number;
  apiRequests: number | undefined;
  restarts: number;
  outcomes: Record<string, number>;
  /** Each VM as the report has it (counters from the report's instrumentation). */
  perVm: {
    name: string;
    outcome: string;
    restarted: boolean;
    sshConnections: number;
    execRoundTrips: number;
    bytesUploaded: number;
  }[];
  /** Failed checks, by "check: summary with numbers and names blanked" → how many VMs. */
  failedChecks: Record<string, number>;
  /** Per step: the median and the maximum over the VMs, ms. */
  steps: Record<string, { medianMs: number; maxMs: number }>;
}

const PRE_VERIFY_STEPS: readonly StepName[] = ['connect', 'inspect', 'token', 'render', 'plan', 'apply'];

export async function runActionMeasured(lab: BenchLab, distDir: string, kind: ActionKind): Promise<ActionMeasurement> {
  const n = lab.state.vms.length;
  const work = mkdtempSync(path.join(lab.dir, `action-${kind}-`));
  const outputFile = path.join(work, 'output');
  writeFileSync(outputFile, '');
  writeFileSync(path.join(work, 'summary'), '');
  const env = {
    ...actionEnvironment(lab.state, { concurrency: String(n), 'max-unavailable': '100%' }),
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: path.join(work, 'summary'),
    RUNNER_TEMP: work,
    GITHUB_WORKSPACE: work,
  };
  try {
    const run = await runTimed([node24(), path.join(distDir, 'index.js')], { env, cwd: work, timeoutMs: 300_000 });
    const problems: string[] = [];
    if (run.timedOut) problems.push('timed out after 300 s');
    if (run.code !== 0) problems.push(`exit code ${run.code ?? run.signal}`);
    let report: RunReport | undefined;
    try {
      const outputs = parseOutputFile(readFileSync(outputFile, 'utf8'));
      report = JSON.parse(
        readFileSync(outputs['report-path'] ?? path.join(work, 'istio-vm-onboard-report.json'), 'utf8'),
      ) as RunReport;
    } catch (error) {
      problems.push(`no report: ${String(error)}`);
    }
    const vms = report?.vms ?? [];
    const expected = kind === 'first' ? 'installed' : 'unchanged';
    const outcomes: Record<string, number> = {};
    for (const vm of vms) outcomes[vm.outcome] = (outcomes[vm.outcome] ?? 0) + 1;
    if (vms.length !== n) problems.push(`${vms.length} VM(s) in the report, expected ${n}`);
    const unexpected = vms.filter((vm) => vm.outcome !== expected);
    if (unexpected.length > 0)
      problems.push(
        `outcome not ${expected}: ${unexpected.map((vm) => `${vm.name}=${vm.outcome}${vm.error ? ` (${vm.error.step}: ${vm.error.message})` : ''}`).join(', ')}`,
      );
    const notPassed = vms.filter((vm) => vm.checks.length !== 7 || vm.checks.some((c) => c.status !== 'pass'));
    if (notPassed.length > 0) problems.push(`checks not all 7 passed on ${notPassed.map((vm) => vm.name).join(', ')}`);

    const phases = report && vms.length > 0 ? phasesOf(report, vms, run.startedEpochMs, run.wallMs) : undefined;
    const applyLines = run.lines.filter((line) => /^\[[^\]]+\] apply: /.test(line.text));
    const visible = run.lines.find(
      (line) => line.text.trim() !== '' && !line.text.startsWith('::add-mask::') && !line.text.startsWith('::debug::'),
    );
    const steps: ActionMeasurement['steps'] = {};
    for (const name of ['connect', 'inspect', 'token', 'render', 'apply', 'verify'] as const) {
      const durations = vms
        .map((vm) => vm.steps.find((s) => s.name === name)?.durationMs)
        .filter((d): d is number => d !== undefined);
      if (durations.length > 0) steps[name] = { medianMs: median(durations), maxMs: max(durations) };
    }
    // Inside verify: how long each VM waited for its restarted sidecar to be ready, for its WorkloadEntry,
    // and for the mesh client's Jobs plus the second round trip.
    for (const name of VERIFY_PARTS) {
      const durations = vms
        .map((vm) => vm.checks.find((c) => c.name === name)?.durationMs)
        .filter((d): d is number => d !== undefined);
      if (durations.length > 0) steps[`check:${name}`] = { medianMs: median(durations), maxMs: max(durations) };
    }
    return {
      kind,
      vms: n,
      ok: problems.length === 0,
      problems,
      exitCode: run.code,
      wallMs: run.wallMs,
      onboardingMs: phases?.onboardingMs ?? Number.NaN,
      verificationMs: phases ? run.wallMs - phases.onboardingMs : Number.NaN,
      beforeVmsMs: phases?.beforeVmsMs ?? Number.NaN,
      onboardingFromLogMs: applyLines.length === n ? max(applyLines.map((line) => line.atMs)) : undefined,
      firstOutputMs: run.firstOutputMs,
      firstVisibleLineMs: visible?.atMs,
      cpuS: run.cpuUserS + run.cpuSysS,
      maxRssKiB: run.maxRssKiB,
      apiRequests: report?.cluster?.apiRequests,
      restarts: vms.filter((vm) => vm.restarted).length,
      outcomes,
      perVm: vms.map((vm) => ({
        name: vm.name,
        outcome: vm.outcome,
        restarted: vm.restarted,
        sshConnections: vm.counters?.sshConnections ?? Number.NaN,
        execRoundTrips: vm.counters?.execRoundTrips ?? Number.NaN,
        bytesUploaded: vm.counters?.bytesUploaded ?? Number.NaN,
      })),
      failedChecks: countFailedChecks(vms),
      steps,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function phasesOf(
  report: RunReport,
  vms: VmReport[],
  spawnEpochMs: number,
  wallMs: number,
): { onboardingMs: number; beforeVmsMs: number } {
  const finished = Date.parse(report.finishedAt);
  const vmStart = finished - max(vms.map((vm) => vm.durationMs));
  const applyEnds = vms.map(
    (vm) => vmStart + sum(vm.steps.filter((s) => PRE_VERIFY_STEPS.includes(s.name)).map((s) => s.durationMs)),
  );
  const onboardingMs = Math.min(max(applyEnds) - spawnEpochMs, wallMs);
  return { onboardingMs, beforeVmsMs: vmStart - spawnEpochMs };
}

function countFailedChecks(vms: VmReport[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const vm of vms) {
    for (const check of vm.checks.filter((c) => c.status === 'fail')) {
      const shape = `${check.name}: ${check.summary.replace(/\d+(\.\d+)*/g, 'N').replace(/app-N/g, 'app-…')}`;
      counts[shape] = (counts[shape] ?? 0) + 1;
    }
  }
  return counts;
}
