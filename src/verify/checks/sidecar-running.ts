// sidecar-running: the `istio` unit is active and not restarting. Round trip 1 reads the unit before
// and after a restart window (deferred to round trip 2 when the sidecar is ready, so the wait overlaps
// the mesh client's Job) and the agent's logs; round trip 2 may finish the window.
import {
  agentLogLines,
  failResult,
  parseUnitState,
  passResult,
  readyFacts,
  type CheckDefinition,
  type ProbeOutcome,
} from '../check.js';
import { classifyAgentLog } from '../hints.js';
import { scrubSecrets } from '../scrub.js';
import { followUpParts, type ScriptOutput } from '../vm-script.js';
import type { CheckName, CheckResult, VerifyContext } from '../types.js';

/**
 * The error pilot-agent exited with: its command line reports it on stderr as `Error: …` (cobra, from
 * pilot/cmd/pilot-agent/main.go: rootCmd.Execute() failing ends in os.Exit), which Istio's unit sends to
 * istio.err.log. The last such line of the current run is why the process stopped.
 */
function exitLine(errLines: string[]): { line: string } | undefined {
  for (let i = errLines.length - 1; i >= 0; i--) {
    if (/^Error: \S/.test(errLines[i]!)) return { line: errLines[i]! };
  }
  return undefined;
}

/** The agent's last error-level line (pilot-agent: `<time>\terror\t…`), when no known cause matched. */
function lastErrorLine(lines: string[]): { line: string } | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/\t(error|critical|fatal)\t/i.test(lines[i]!)) return { line: lines[i]! };
  }
  return undefined;
}

function formatUptime(ms: number): string {
  const seconds = ms / 1000;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Where round trip 1 began (VM clock, epoch ms), for finishing a deferred restart window in round trip 2. */
export function probeStartMs(output: ScriptOutput): number | undefined {
  const value = /start_ms=(\d+)/.exec(output.sections.get('ready')?.body ?? '')?.[1];
  return value === undefined ? undefined : Number(value);
}

/** Round trip 1 left the restart window to round trip 2 (the sidecar was ready). */
export function windowDeferred(output: ScriptOutput): boolean {
  return /(^|\s)deferred=1(\s|$)/.test(output.sections.get('window')?.body ?? '');
}

/**
 * `probe` is round trip 1. When it deferred the restart window, `followUp` (round trip 2) holds the end
 * of the window: the unit's state after it and how long the current run had lasted. Without it (round
 * trip 2 did not run or failed) the verdict rests on round trip 1 alone, and the summary says so.
 */
export function checkSidecarRunning(ctx: VerifyContext, probe: ProbeOutcome, followUp?: ProbeOutcome): CheckResult {
  const name: CheckName = 'sidecar-running';
  if (!probe.ok) {
    return failResult(ctx, {
      check: name,
      seen: 'could not run the verification script on the VM',
      hint: 'probe-failed',
      vars: { detail: probe.error },
      evidence: [scrubSecrets(probe.error, ctx.secretValues)],
      durationMs: probe.durationMs,
    });
  }
  const deferred = windowDeferred(probe.output);
  const end = deferred && followUp?.ok && followUp.output.sections.has('window') ? followUp.output : undefined;
  const output = probe.output;
  const durationMs = probe.durationMs + (end && followUp ? followUp.durationMs : 0);
  const missing = ['curl', 'base64', 'systemctl'].filter((t) => output.tools[t] === false);
  if (missing.length > 0 || output.sections.size === 0) {
    const tools = missing.length > 0 ? missing.join(', ') : 'base64';
    return failResult(ctx, {
      check: name,
      seen: `the VM lacks ${tools}`,
      hint: 'tool-missing',
      vars: { tools },
      evidence: [`tools: ${JSON.stringify(output.tools)}`],
      durationMs,
    });
  }
  const before = parseUnitState(output.sections.get('unit-before')?.body ?? '');
  const after = parseUnitState((end ?? output).sections.get('unit-after')?.body ?? '');
  const windowBody = (end ?? output).sections.get('window')?.body ?? '';
  const windowMs = Number(/window_ms=(\d+)/.exec(windowBody)?.[1] ?? 0);
  // How long the current run had lasted when the window ended (not reported: the observation itself).
  const upMs = Number(/up_ms=(\d+)/.exec(windowBody)?.[1] ?? windowMs);
  const evidence = [
    `before: ${before.raw.replace(/\n/g, ' ')}`,
    `after ${windowMs} ms: ${after.raw.replace(/\n/g, ' ')}`,
  ];
  const logs = agentLogLines(ctx, output);
  const logEvidence = [
    ...logs.err.slice(-8).map((l) => `istio.err.log: ${l}`),
    ...logs.log.slice(-8).map((l) => `istio.log: ${l}`),
  ];

  if (before.loadState === 'not-found' || after.loadState === 'not-found') {
    return failResult(ctx, { check: name, seen: 'unit `istio` not found', hint: 'unit-missing', evidence, durationMs });
  }
  const restartsGrew =
    before.nRestarts !== undefined && after.nRestarts !== undefined && after.nRestarts > before.nRestarts;
  const pidChanged = !!before.mainPid && !!after.mainPid && before.mainPid !== after.mainPid;
  const autoRestart = before.subState === 'auto-restart' || after.subState === 'auto-restart';
  const restartedDuringReady = readyFacts(output).outcome === 'restarted';
  if (restartsGrew || pidChanged || autoRestart || restartedDuringReady) {
    // In auto-restart the unit has exited and systemd is restarting it (RestartSec): count that restart,
    // a 2-s window rarely sees NRestarts itself grow.
    const restarts = restartsGrew ? after.nRestarts! - before.nRestarts! : 1;
    // The error the agent exited with says why; otherwise a known cause, otherwise its last error line.
    const cause =
      exitLine(logs.err) ?? classifyAgentLog([...logs.log, ...logs.err]) ?? lastErrorLine([...logs.log, ...logs.err]);
    const seen = restartsGrew
      ? `crash-looping: NRestarts ${before.nRestarts} → ${after.nRestarts} within ${(windowMs / 1000).toFixed(1)} s`
      : autoRestart
        ? `crash-looping: unit in auto-restart (NRestarts=${after.nRestarts ?? before.nRestarts ?? '?'})`
        : `crash-looping: main PID changed ${before.mainPid ?? '?'} → ${after.mainPid ?? '?'}`;
    return failResult(ctx, {
      check: name,
      seen,
      hint: 'crash-loop',
      vars: {
        restarts,
        windowSec: (windowMs / 1000).toFixed(1),
        logCause: cause ? `; the log shows: ${cause.line.slice(0, 200)}` : '',
      },
      evidence: [...evidence, ...logEvidence],
      durationMs,
    });
  }
  const activeBefore = (before.isActive ?? before.activeState) === 'active';
  const activeAfter = (after.isActive ?? after.activeState) === 'active';
  if (!activeBefore || !activeAfter) {
    const state = (activeBefore ? after : before).isActive ?? (activeBefore ? after : before).activeState ?? 'unknown';
    return failResult(ctx, {
      check: name,
      seen: `unit istio is ${state}`,
      hint: 'unit-inactive',
      vars: { state },
      evidence: [...evidence, ...logEvidence],
      durationMs,
    });
  }
  const restartNote =
    before.nRestarts === undefined ? 'restart count not reported by systemctl' : `NRestarts=${after.nRestarts} stable`;
  const span =
    deferred && !end
      ? 'restart window not observed: the follow-up on the VM did not run'
      : `current run up ${formatUptime(upMs)}`;
  return passResult({ check: name, seen: `active, ${restartNote} (${span})`, evidence, durationMs });
}

export const sidecarRunning: CheckDefinition = {
  name: 'sidecar-running',
  short: 'run',
  passesWhen:
    'the `istio` unit is active and not restarting: its current run has lasted at least 2 s with no restart seen ' +
    '(a sidecar that has run for a while is not waited for)',
  dependsOn: [],
  blocksBecause: (result) =>
    result.hintId === 'probe-failed' ? 'the checks could not run on the VM' : 'the sidecar is not running',
  hints: {
    'probe-failed': {
      cause: 'the verification script could not run on the VM ({detail})',
      fix: 'check SSH access and passwordless sudo for the login user, then rerun `mode: verify`',
    },
    'tool-missing': {
      cause: 'the VM lacks {tools}, which the checks use to read the sidecar admin ports',
      fix: 'install {tools} on the VM (Debian: `apt-get install curl coreutils`; RHEL: `dnf install curl coreutils`)',
    },
    'unit-missing': {
      cause: 'the `istio` systemd unit does not exist: the istio-sidecar package is not installed',
      fix: 'run the action with `mode: onboard` for this VM (it installs the package)',
    },
    'unit-inactive': {
      cause: 'the `istio` unit is {state}: the sidecar exited or was stopped',
      fix:
        'read /var/log/istio/istio.err.log on the VM, fix the error, ' +
        'then `sudo systemctl restart istio` (or rerun onboard)',
    },
    'crash-loop': {
      cause: 'the sidecar is crash-looping (systemd restarted it {restarts} time(s) in {windowSec} s){logCause}',
      fix:
        'read the evidence lines from /var/log/istio/istio.err.log; ' +
        'fix cluster.env / mesh config / token / root cert as they say, then rerun onboard',
    },
  },
  phase: 'probe',
  collect: {
    // The rest of a restart window round trip 1 deferred, anchored where round trip 1 began (VM clock).
    followUp: ({ probe, options }) => {
      const start = probe?.ok && windowDeferred(probe.output) ? probeStartMs(probe.output) : undefined;
      return start === undefined ? undefined : followUpParts.restartWindow(options.restartWindowMs, start);
    },
  },
  evaluate: ({ ctx, probe, followUp }) => checkSidecarRunning(ctx, probe!, followUp),
  reviseAfterFollowUp: true,
};
