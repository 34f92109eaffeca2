// What a check is (CheckDefinition: one file each in checks/, listed in registry.ts), the results a
// check returns, and the readings of the VM scripts' output that several checks share.
import type { ShellPart } from '../vm/scripts/protocol.js';
import { renderHint } from './hints.js';
import { scrubSecrets } from './scrub.js';
import type { ScriptOutput, ScriptSection } from './vm-script.js';
import type { CheckName, CheckResult, VerifyContext, VerifyOptions } from './types.js';

/** A hint: what is probably wrong and what to do; `{var}` placeholders are filled per VM. */
export interface HintText {
  cause: string;
  fix: string;
}

/** What round trip 1 or 2 produced, or why it produced nothing. */
export type ProbeOutcome =
  { ok: true; output: ScriptOutput; durationMs: number } | { ok: false; error: string; durationMs: number };

/**
 * What the WorkloadEntry wait knows of the VM side: the entry can only appear (and turn Healthy) once
 * the sidecar is up, so while the VM-side probe still waits for readiness the wait goes on, and it ends
 * no sooner than a grace period after that probe finished.
 */
export interface VmSideProgress {
  /** When the VM-side probe (readiness) finished; undefined while it runs. */
  doneAt?: number;
}

/** Everything a check may read. Round trips and preparations appear as the verification gets to them. */
export interface CheckInput {
  ctx: VerifyContext;
  options: VerifyOptions;
  vmSide: VmSideProgress;
  /** Round trip 1 (set before any `probe` or `follow-up` check is evaluated). */
  probe?: ProbeOutcome;
  /** Round trip 2 (set before any `follow-up` check is evaluated, and for a revision). */
  followUp?: ProbeOutcome;
  /** What the checks' `start` hooks returned, by check name. */
  started: Map<CheckName, unknown>;
  /** What the checks' `prepare` hooks returned, by check name. */
  prepared: Map<CheckName, unknown>;
}

/**
 * One check: everything about it in one place (one file in checks/). The verification (verify-vm.ts)
 * runs checks in the registry's order: `cluster` checks start at once and need no round trip; `probe`
 * checks are evaluated after round trip 1; `follow-up` checks after round trip 2, which runs only when
 * one of them can run. A check whose dependency did not pass is skipped and says why.
 */
export interface CheckDefinition {
  name: CheckName;
  /** Its column in the job summary. */
  short: string;
  /** When it passes, for the README's check table. */
  passesWhen: string;
  /** Checks (earlier in the registry) that must pass for this one to run. */
  dependsOn: CheckName[];
  /** When this check did not pass, why its dependents are skipped (`(see <name>)` is added). */
  blocksBecause?: (result: CheckResult) => string;
  /** Its ways to fail, by hint id (ids are unique across all checks). */
  hints: Record<string, HintText>;
  phase: 'cluster' | 'probe' | 'follow-up';
  /** Shell it adds to round trip 1 (`probe`), or values or shell it adds to round trip 2 (`followUp`). */
  collect?: { probe?: ShellPart; followUp?: (input: CheckInput) => ShellPart | undefined };
  /** Started at once, before round trip 1, whatever the other checks do (e.g. a cluster read). */
  start?: (input: CheckInput) => Promise<unknown>;
  /** Run before round trip 2 once its dependencies passed (e.g. the mesh client's Jobs). */
  prepare?: (input: CheckInput) => Promise<unknown>;
  /** Called once when a `follow-up` check will not run (a dependency did not pass), e.g. to free a shared Job. */
  notRun?: (input: CheckInput) => void;
  evaluate(input: CheckInput): CheckResult | Promise<CheckResult>;
  /** Evaluated again after round trip 2 (round trip 1's verdict stays when round trip 2 did not run). */
  reviseAfterFollowUp?: boolean;
}

// ---------------------------------------------------------------- results

type HintVars = Record<string, string | number | undefined>;

/** The whole story of a failed check in one line: VM, check, what was seen, likely cause, fix. */
export function describeFailure(vmName: string, result: CheckResult): string {
  return `[${vmName}] ${result.name}: ${result.summary}${result.hint ? ` — likely cause: ${result.hint}` : ''}`;
}

export interface PassReport {
  check: CheckName;
  /** One line: what was seen. */
  seen: string;
  evidence: string[];
  durationMs: number;
}

export function passResult(report: PassReport): CheckResult {
  return {
    name: report.check,
    status: 'pass',
    summary: report.seen,
    evidence: report.evidence,
    durationMs: report.durationMs,
  };
}

export interface FailReport extends PassReport {
  /** The hint id (a key of some check's `hints`). */
  hint: string;
  /** Values for the hint's placeholders (`vm`, `namespace` and `group` are always there). */
  vars?: HintVars;
}

export function failResult(ctx: VerifyContext, report: FailReport): CheckResult {
  const vars = { vm: ctx.vm.name, namespace: ctx.group.namespace, group: ctx.group.name, ...report.vars };
  return {
    name: report.check,
    status: 'fail',
    summary: report.seen,
    evidence: report.evidence,
    hint: renderHint(report.hint, vars),
    hintId: report.hint,
    durationMs: report.durationMs,
  };
}

export function skippedResult(name: CheckName, reason: string): CheckResult {
  return { name, status: 'skipped', summary: `skipped: ${reason}`, evidence: [], durationMs: 0 };
}

// ---------------------------------------------------------------- readings shared by checks

/** Round trip 1's output, for a check that runs only when it worked (it depends on sidecar-running). */
export function probeOutput(probe: ProbeOutcome | undefined): ScriptOutput {
  if (!probe?.ok) throw new Error('round trip 1 produced no output (a VM-side check must depend on sidecar-running)');
  return probe.output;
}

export function scrubLines(ctx: VerifyContext, text: string): string[] {
  return scrubSecrets(text, ctx.secretValues ?? [])
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '');
}

/** A section's HTTP answer in one phrase, e.g. `HTTP 503` or `no answer (curl: (7) Failed to connect…)`. */
export function describeFetch(section: ScriptSection | undefined): string {
  if (!section) return 'not read (script output incomplete)';
  if (section.http !== '000') return `HTTP ${section.http}`;
  const err = section.stderr.trim().split('\n').pop() ?? '';
  return `no answer (curl exit ${section.rc}${err ? `: ${err}` : ''})`;
}

export function fetchOk(section: ScriptSection | undefined): section is ScriptSection {
  return !!section && section.rc === 0 && section.http === '200';
}

export function isSuccessCode(code: string | number): boolean {
  const n = Number(code);
  return Number.isInteger(n) && n >= 200 && n < 400;
}

// ---------------------------------------------------------------- what round trip 1 saw

export interface UnitState {
  loadState?: string;
  activeState?: string;
  subState?: string;
  isActive?: string;
  nRestarts?: number;
  mainPid?: number;
  raw: string;
}

export function parseUnitState(text: string): UnitState {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const num = (k: string) => {
    const v = kv.get(k);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  const state: UnitState = { raw: text.trim() };
  const set = <K extends keyof UnitState>(key: K, value: UnitState[K] | undefined) => {
    if (value !== undefined && value !== '') state[key] = value;
  };
  set('loadState', kv.get('LoadState'));
  set('activeState', kv.get('ActiveState'));
  set('subState', kv.get('SubState'));
  set('isActive', kv.get('is-active'));
  set('nRestarts', num('NRestarts'));
  set('mainPid', num('MainPID'));
  return state;
}

/**
 * When the sidecar's current (or, when stopped, last) run started, from `unit-started`: `ms=<epoch ms>`
 * (its main process's start, to 10 ms) or `s=<epoch s>` (systemd's timestamp, whole seconds).
 */
export function unitStartedMs(output: ScriptOutput): number | undefined {
  const body = output.sections.get('unit-started')?.body.trim() ?? '';
  const m = /^(ms|s)=(\d+)$/.exec(body);
  if (!m) return undefined;
  // The main process is forked before it logs anything; 100 ms covers the tick and clock rounding.
  return m[1] === 'ms' ? Number(m[2]) - 100 : Number(m[2]) * 1000;
}

/** The VM's UTC offset in minutes (`date +%z` in the probe's `ready` note); undefined when not told. */
export function vmUtcOffsetMinutes(output: ScriptOutput): number | undefined {
  const m = /(?:^|\s)utc_offset=([+-])(\d\d)(\d\d)(?:\s|$)/.exec(output.sections.get('ready')?.body ?? '');
  if (!m) return undefined;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}

/** When a log line was written (epoch ms), from its leading time; NaN when it has none this can read. */
function lineTimeMs(line: string, utcOffsetMinutes: number | undefined): number {
  // pilot-agent: an RFC 3339 time.
  const rfc3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s/.exec(line)?.[1];
  if (rfc3339) return Date.parse(rfc3339);
  // Envoy's default --log-format "[%Y-%m-%d %T.%e]…" (pilot-agent passes none: pkg/envoy/proxy.go): the
  // process's local time, no zone in the line (envoyproxy/envoy#3546, #11238) — read with the VM's offset.
  const envoy = /^\[(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)\]/.exec(line);
  if (envoy && utcOffsetMinutes !== undefined)
    return Date.parse(`${envoy[1]}T${envoy[2]}Z`) - utcOffsetMinutes * 60_000;
  return NaN;
}

/**
 * Drops log lines written before the sidecar's current run started (pilot-agent lines begin with an
 * RFC 3339 time, Envoy's with its local time, read with the VM's UTC offset when known): the log keeps
 * earlier runs, and a cause they show (a token rejected before a fix, a "connection refused" while istiod
 * restarted, say) must not be blamed for what the current run does. Lines without a time are kept.
 */
export function currentRunLines(lines: string[], startedMs: number | undefined, utcOffsetMinutes?: number): string[] {
  if (startedMs === undefined) return lines;
  return lines.filter((line) => {
    const ms = lineTimeMs(line, utcOffsetMinutes);
    return Number.isNaN(ms) || ms >= startedMs;
  });
}

export function agentLogLines(ctx: VerifyContext, output: ScriptOutput): { log: string[]; err: string[] } {
  const started = unitStartedMs(output);
  const offset = vmUtcOffsetMinutes(output);
  return {
    log: currentRunLines(scrubLines(ctx, output.sections.get('agent-log')?.body ?? ''), started, offset),
    err: currentRunLines(scrubLines(ctx, output.sections.get('agent-err-log')?.body ?? ''), started, offset),
  };
}

export function readyFacts(output: ScriptOutput): {
  http: string;
  attempts: number;
  elapsedMs: number;
  outcome: string;
  /** curl's exit code on the last attempt (7: connection refused, 28: no answer in time); undefined: not told. */
  curlExit: number | undefined;
} {
  const section = output.sections.get('ready');
  const body = section?.body ?? '';
  const get = (k: string) => new RegExp(`${k}=(\\S+)`).exec(body)?.[1];
  return {
    http: section?.http ?? '000',
    attempts: Number(get('attempts') ?? 0),
    elapsedMs: Number(get('elapsed_ms') ?? 0),
    outcome: get('outcome') ?? 'unknown',
    curlExit: get('curl_rc') === undefined ? undefined : Number(get('curl_rc')),
  };
}
