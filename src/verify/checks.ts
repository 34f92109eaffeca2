// The seven checks. The VM-side ones evaluate the parsed output of the batched scripts (vm-script.ts);
// workload-entry polls the cluster; mesh-to-vm-mtls compares the VM sidecar's counters around the
// ADR-0002 Jobs. Every failure names the VM, the check, what was seen, and a hint (hints.ts).
import { classifyAgentLog, renderHint, type HintId } from './hints.js';
import { parseEnvoyStatsText, statValue } from './envoy/stats-text.js';
import { parsePrometheusText, sumMetric } from './envoy/prometheus.js';
import {
  inspectCertificate,
  parseCertsJson,
  parseSecretsConfigDump,
  parseSpiffeId,
  splitPemCertificates,
  verifyChainToRoots,
  type CertificateInfo,
} from './envoy/certs.js';
import { scrubSecrets } from './scrub.js';
import type { ScriptOutput, ScriptSection } from './vm-script.js';
import type { VerificationJobResult, WorkloadEntryView } from './ports.js';
import type { CheckName, CheckResult, VerifyContext, VerifyOptions } from './types.js';

// ---------------------------------------------------------------- result helpers

type HintVars = Record<string, string | number | undefined>;

/** The whole story of a failed check in one line: VM, check, what was seen, likely cause, fix. */
export function describeFailure(vmName: string, result: CheckResult): string {
  return `[${vmName}] ${result.name}: ${result.summary}${result.hint ? ` — likely cause: ${result.hint}` : ''}`;
}

export function passResult(
  ctx: VerifyContext,
  name: CheckName,
  seen: string,
  evidence: string[],
  durationMs: number,
): CheckResult {
  return { name, status: 'pass', summary: seen, evidence, durationMs };
}

export function failResult(
  ctx: VerifyContext,
  name: CheckName,
  seen: string,
  hintId: HintId,
  vars: HintVars,
  evidence: string[],
  durationMs: number,
): CheckResult {
  return {
    name,
    status: 'fail',
    summary: seen,
    evidence,
    hint: renderHint(hintId, { vm: ctx.vm.name, namespace: ctx.group.namespace, group: ctx.group.name, ...vars }),
    hintId,
    durationMs,
  };
}

export function skippedResult(ctx: VerifyContext, name: CheckName, reason: string): CheckResult {
  return { name, status: 'skipped', summary: `skipped: ${reason}`, evidence: [], durationMs: 0 };
}

function scrubLines(ctx: VerifyContext, text: string): string[] {
  return scrubSecrets(text, ctx.secretValues ?? [])
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '');
}

/** A section's HTTP answer in one phrase, e.g. `HTTP 503` or `no answer (curl: (7) Failed to connect…)`. */
function describeFetch(section: ScriptSection | undefined): string {
  if (!section) return 'not read (script output incomplete)';
  if (section.http !== '000') return `HTTP ${section.http}`;
  const err = section.stderr.trim().split('\n').pop() ?? '';
  return `no answer (curl exit ${section.rc}${err ? `: ${err}` : ''})`;
}

function fetchOk(section: ScriptSection | undefined): section is ScriptSection {
  return !!section && section.rc === 0 && section.http === '200';
}

function isSuccessCode(code: string | number): boolean {
  const n = Number(code);
  return Number.isInteger(n) && n >= 200 && n < 400;
}

// ---------------------------------------------------------------- probe facts (round trip 1)

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

/** What round trip 1 produced, or why it produced nothing. */
export type ProbeOutcome =
  { ok: true; output: ScriptOutput; durationMs: number } | { ok: false; error: string; durationMs: number };

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

/**
 * Drops log lines written before the sidecar's current run started (pilot-agent lines begin with an
 * RFC 3339 time): the log keeps earlier runs, and a cause they show (a token rejected before a fix, say)
 * must not be blamed for what the current run does. Lines without a time are kept.
 */
function currentRunLines(lines: string[], startedMs: number | undefined): string[] {
  if (startedMs === undefined) return lines;
  return lines.filter((line) => {
    const at = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s/.exec(line)?.[1];
    const ms = at ? Date.parse(at) : NaN;
    return Number.isNaN(ms) || ms >= startedMs;
  });
}

function agentLogLines(ctx: VerifyContext, output: ScriptOutput): { log: string[]; err: string[] } {
  const started = unitStartedMs(output);
  return {
    log: currentRunLines(scrubLines(ctx, output.sections.get('agent-log')?.body ?? ''), started),
    err: currentRunLines(scrubLines(ctx, output.sections.get('agent-err-log')?.body ?? ''), started),
  };
}

function readyFacts(output: ScriptOutput): { http: string; attempts: number; elapsedMs: number; outcome: string } {
  const section = output.sections.get('ready');
  const body = section?.body ?? '';
  const get = (k: string) => new RegExp(`${k}=(\\S+)`).exec(body)?.[1];
  return {
    http: section?.http ?? '000',
    attempts: Number(get('attempts') ?? 0),
    elapsedMs: Number(get('elapsed_ms') ?? 0),
    outcome: get('outcome') ?? 'unknown',
  };
}

// ---------------------------------------------------------------- 1. sidecar-running

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
    return failResult(
      ctx,
      name,
      'could not run the verification script on the VM',
      'probe-failed',
      { detail: probe.error },
      [scrubSecrets(probe.error, ctx.secretValues)],
      probe.durationMs,
    );
  }
  const deferred = windowDeferred(probe.output);
  const end = deferred && followUp?.ok && followUp.output.sections.has('window') ? followUp.output : undefined;
  const output = probe.output;
  const durationMs = probe.durationMs + (end && followUp ? followUp.durationMs : 0);
  const missing = ['curl', 'base64', 'systemctl'].filter((t) => output.tools[t] === false);
  if (missing.length > 0 || output.sections.size === 0) {
    const tools = missing.length > 0 ? missing.join(', ') : 'base64';
    return failResult(
      ctx,
      name,
      `the VM lacks ${tools}`,
      'tool-missing',
      { tools },
      [`tools: ${JSON.stringify(output.tools)}`],
      durationMs,
    );
  }
  const before = parseUnitState(output.sections.get('unit-before')?.body ?? '');
  const after = parseUnitState((end ?? output).sections.get('unit-after')?.body ?? '');
  const windowBody = (end ?? output).sections.get('window')?.body ?? '';
  const windowMs = Number(/window_ms=(\d+)/.exec(windowBody)?.[1] ?? 0);
  // How long the current run had lasted when the window ended (older scripts: the observation itself).
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
    return failResult(ctx, name, 'unit `istio` not found', 'unit-missing', {}, evidence, durationMs);
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
    const cause = classifyAgentLog([...logs.log, ...logs.err]) ?? lastErrorLine([...logs.log, ...logs.err]);
    const seen = restartsGrew
      ? `crash-looping: NRestarts ${before.nRestarts} → ${after.nRestarts} within ${(windowMs / 1000).toFixed(1)} s`
      : autoRestart
        ? `crash-looping: unit in auto-restart (NRestarts=${after.nRestarts ?? before.nRestarts ?? '?'})`
        : `crash-looping: main PID changed ${before.mainPid ?? '?'} → ${after.mainPid ?? '?'}`;
    return failResult(
      ctx,
      name,
      seen,
      'crash-loop',
      {
        restarts,
        windowSec: (windowMs / 1000).toFixed(1),
        logCause: cause ? `; the log shows: ${cause.line.slice(0, 200)}` : '',
      },
      [...evidence, ...logEvidence],
      durationMs,
    );
  }
  const activeBefore = (before.isActive ?? before.activeState) === 'active';
  const activeAfter = (after.isActive ?? after.activeState) === 'active';
  if (!activeBefore || !activeAfter) {
    const state = (activeBefore ? after : before).isActive ?? (activeBefore ? after : before).activeState ?? 'unknown';
    return failResult(
      ctx,
      name,
      `unit istio is ${state}`,
      'unit-inactive',
      { state },
      [...evidence, ...logEvidence],
      durationMs,
    );
  }
  const restartNote =
    before.nRestarts === undefined ? 'restart count not reported by systemctl' : `NRestarts=${after.nRestarts} stable`;
  const span =
    deferred && !end
      ? 'restart window not observed: the follow-up on the VM did not run'
      : `current run up ${formatUptime(upMs)}`;
  return passResult(ctx, name, `active, ${restartNote} (${span})`, evidence, durationMs);
}

// ---------------------------------------------------------------- 2. sidecar-ready

export function checkSidecarReady(ctx: VerifyContext, output: ScriptOutput): CheckResult {
  const name: CheckName = 'sidecar-ready';
  const ready = readyFacts(output);
  const evidence = [
    `GET localhost:15021/healthz/ready → ${ready.http} after ${ready.attempts} attempt(s), ${ready.elapsedMs} ms`,
  ];
  if (ready.http === '200') {
    return passResult(
      ctx,
      name,
      `/healthz/ready answered 200 after ${ready.attempts} attempt(s) (${ready.elapsedMs} ms)`,
      evidence,
      ready.elapsedMs,
    );
  }
  const notReady = currentRunLines(
    scrubLines(ctx, output.sections.get('not-ready-line')?.body ?? ''),
    unitStartedMs(output),
  ).pop();
  if (notReady) evidence.push(`istio.log: ${notReady}`);
  const logs = agentLogLines(ctx, output);
  const cause = classifyAgentLog([...logs.log, ...logs.err]);
  if (cause && !evidence.some((e) => e.endsWith(cause.line))) evidence.push(`agent log: ${cause.line}`);
  const seen =
    ready.http === '000'
      ? `/healthz/ready did not answer (nothing listening on 15021) over ${(ready.elapsedMs / 1000).toFixed(1)} s`
      : `/healthz/ready answered ${ready.http} for ${(ready.elapsedMs / 1000).toFixed(1)} s`;
  const reason = notReady ? notReady.replace(/^.*Envoy proxy is NOT ready:\s*/, '') : '';
  let hintId: HintId;
  let detail = reason || `last answer ${ready.http}`;
  if (/but was rejected/.test(reason)) hintId = 'config-rejected';
  else if (
    /server is not live|workers have not yet started|failed to get readiness stats|server is terminated/.test(reason)
  ) {
    hintId = 'envoy-not-live';
  } else if (cause) hintId = cause.id;
  else if (/config not (fully )?received/.test(reason)) hintId = 'config-not-received';
  else {
    hintId = 'ready-timeout';
    detail = reason || `last answer ${ready.http} after ${ready.attempts} attempt(s)`;
  }
  return failResult(ctx, name, seen + (reason ? ` — ${reason}` : ''), hintId, { detail }, evidence, ready.elapsedMs);
}

// ---------------------------------------------------------------- 3. xds-connected

const XDS_STATS = {
  active: 'cluster.xds-grpc.upstream_cx_active',
  cdsSuccess: 'cluster_manager.cds.update_success',
  cdsRejected: 'cluster_manager.cds.update_rejected',
  ldsSuccess: 'listener_manager.lds.update_success',
  ldsRejected: 'listener_manager.lds.update_rejected',
} as const;

/** Envoy's open xDS streams (the ADS stream to pilot-agent); see checkXdsConnected. */
const XDS_STREAMS_ACTIVE = 'cluster.xds-grpc.upstream_rq_active';

export function checkXdsConnected(ctx: VerifyContext, output: ScriptOutput): CheckResult {
  const name: CheckName = 'xds-connected';
  const started = Date.now();
  const section = output.sections.get('stats');
  if (!fetchOk(section)) {
    const detail = `GET localhost:15000/stats → ${describeFetch(section)}`;
    return failResult(
      ctx,
      name,
      `Envoy admin /stats unreadable: ${describeFetch(section)}`,
      'stats-unavailable',
      { detail },
      [detail],
      Date.now() - started,
    );
  }
  const stats = parseEnvoyStatsText(section.body);
  // `usedonly` omits stats that never changed: absent counts as 0.
  const v = Object.fromEntries(
    Object.entries(XDS_STATS).map(([k, stat]) => [k, statValue(stats, stat) ?? 0]),
  ) as Record<keyof typeof XDS_STATS, number>;
  const evidence = Object.values(XDS_STATS).map((stat) => `${stat}: ${statValue(stats, stat) ?? '(absent)'}`);
  const duration = () => Date.now() - started;
  // Envoy's ADS stream is one request on xds-grpc, and it ends at pilot-agent: the agent keeps it open only
  // while its own stream to istiod is up, and closes it as soon as that one fails ("We must propagate upstream
  // termination to Envoy", pkg/istio-agent/xds_proxy_delta.go and xds_proxy.go). So while istiod is cut off,
  // upstream_rq_active is 0 (between Envoy's retries), though the connection to the agent stays up.
  // (Absent: an Envoy that never opened a stream, or a stats build without it — the evidence below decides.)
  const streams = statValue(stats, XDS_STREAMS_ACTIVE);
  evidence.push(`${XDS_STREAMS_ACTIVE}: ${streams ?? '(absent)'}`);
  if (streams === 0 && v.active >= 1) {
    const upstreamLine = agentLogLines(ctx, output).err.findLast((line) => /xds-grpc closed/.test(line));
    if (upstreamLine) evidence.push(`envoy log: ${upstreamLine}`);
    return failResult(
      ctx,
      name,
      `pilot-agent is not connected to istiod: Envoy's xDS stream through it is closed (${XDS_STREAMS_ACTIVE} = 0, ` +
        `connection to the agent up)`,
      'xds-upstream-down',
      { line: upstreamLine ?? `${XDS_STREAMS_ACTIVE} = 0` },
      evidence,
      duration(),
    );
  }
  if (v.active < 1) {
    const logs = agentLogLines(ctx, output);
    const cause = classifyAgentLog([...logs.log, ...logs.err]);
    if (cause) evidence.push(`agent log: ${cause.line}`);
    return failResult(
      ctx,
      name,
      `no live connection to istiod (cluster.xds-grpc upstream_cx_active = ${v.active})`,
      'xds-not-connected',
      { active: v.active, logCause: cause ? `; likely: ${renderHint(cause.id).split('. Fix:')[0]}` : '' },
      evidence,
      duration(),
    );
  }
  // upstream_cx_active counts Envoy's pipe to pilot-agent, which stays up when istiod is unreachable
  // (pkg/istio-agent/xds_proxy.go): the agent's last upstream event in its log says whether istiod is.
  const upstream = currentRunLines(
    scrubLines(ctx, output.sections.get('xds-upstream')?.body ?? ''),
    unitStartedMs(output),
  ).at(-1);
  if (upstream && !/connected to (delta )?upstream XDS server/.test(upstream)) {
    evidence.push(`agent log: ${upstream}`);
    return failResult(
      ctx,
      name,
      `pilot-agent is not connected to istiod: its last upstream event is a failure`,
      'xds-upstream-down',
      { line: upstream },
      evidence,
      duration(),
    );
  }
  evidence.push(
    upstream
      ? `istiod connection (agent log): ${upstream}`
      : 'istiod connection: no upstream event of this run in istio.log (only the pipe to pilot-agent is known)',
  );
  if (v.cdsRejected > 0 || v.ldsRejected > 0) {
    return failResult(
      ctx,
      name,
      `xDS updates rejected (cds ${v.cdsRejected}, lds ${v.ldsRejected})`,
      'xds-config-rejected',
      { cdsRejected: v.cdsRejected, ldsRejected: v.ldsRejected },
      evidence,
      duration(),
    );
  }
  if (v.cdsSuccess < 1 || v.ldsSuccess < 1) {
    return failResult(
      ctx,
      name,
      `connected but no accepted config (cds ${v.cdsSuccess}, lds ${v.ldsSuccess})`,
      'xds-no-config',
      { cdsSuccess: v.cdsSuccess, ldsSuccess: v.ldsSuccess },
      evidence,
      duration(),
    );
  }
  return passResult(
    ctx,
    name,
    `connected to istiod (${v.active} xds-grpc connection(s)); cds ${v.cdsSuccess} / lds ${v.ldsSuccess} updates accepted, none rejected`,
    evidence,
    duration(),
  );
}

// ---------------------------------------------------------------- 4. workload-certificate

export function expectedSpiffeId(ctx: VerifyContext): string {
  return `spiffe://${ctx.trustDomain}/ns/${ctx.group.namespace}/sa/${ctx.group.serviceAccount}`;
}

function describeCert(c: CertificateInfo): string {
  return `serial ${c.serialNumber}, SAN ${c.uriSans.join(' ') || '(none)'}, issuer "${c.issuer}", valid ${c.notBefore.toISOString()} – ${c.notAfter.toISOString()}`;
}

function samePems(a: string[], b: string[]): boolean {
  const fp = (p: string[]) =>
    p
      .map((x) => inspectCertificate(x).fingerprint256)
      .sort()
      .join(',');
  return fp(a) === fp(b);
}

export function checkWorkloadCertificate(
  ctx: VerifyContext,
  output: ScriptOutput,
  options: VerifyOptions,
): CheckResult {
  const name: CheckName = 'workload-certificate';
  const started = Date.now();
  const duration = () => Date.now() - started;
  const now = new Date(ctx.now?.() ?? Date.now());
  const evidence: string[] = [];

  const vmRootPem = splitPemCertificates(output.sections.get('root-cert')?.body ?? '');
  const installedRootPem = ctx.rootCertPem ? splitPemCertificates(ctx.rootCertPem) : vmRootPem;
  let rootDiffers = false;
  try {
    rootDiffers = !!ctx.rootCertPem && vmRootPem.length > 0 && !samePems(vmRootPem, installedRootPem);
  } catch {
    rootDiffers = true;
  }
  if (rootDiffers)
    evidence.push(`/etc/certs/root-cert.pem on the VM differs from the mesh root cert (istio-ca-root-cert)`);

  // Source 1: /config_dump?resource=dynamic_active_secrets (PEMs). Source 2: /certs (metadata only).
  let chainPem: string[] = [];
  let warming: string[] = [];
  const secrets = output.sections.get('secrets');
  if (fetchOk(secrets)) {
    try {
      const parsed = parseSecretsConfigDump(secrets.body);
      chainPem = parsed.workloadChainPem;
      warming = parsed.warmingSecrets;
    } catch (err) {
      evidence.push(`config_dump: ${(err as Error).message}`);
    }
  } else {
    evidence.push(`GET localhost:15000/config_dump?resource=dynamic_active_secrets → ${describeFetch(secrets)}`);
  }

  if (chainPem.length === 0) {
    const certsSection = output.sections.get('certs');
    if (fetchOk(certsSection)) {
      try {
        const contexts = parseCertsJson(certsSection.body);
        const withChain = contexts.find((c) => c.certChain.some((e) => e.uriSans.length > 0));
        if (withChain)
          return evaluateCertsFallback(ctx, withChain, installedRootPem, rootDiffers, evidence, options, now, started);
      } catch (err) {
        evidence.push(`/certs: ${(err as Error).message}`);
      }
    }
    const warmingNote = warming.length > 0 ? `; warming: ${warming.join(', ')}` : '';
    if (rootDiffers) {
      return failResult(
        ctx,
        name,
        "no workload certificate, and the VM's root cert is not the mesh's",
        'cert-root-mismatch',
        { detail: 'VM root-cert.pem differs from istio-ca-root-cert' },
        evidence,
        duration(),
      );
    }
    return failResult(
      ctx,
      name,
      `Envoy has no workload certificate (secret "default" absent${warmingNote})`,
      'cert-missing',
      { warming: warmingNote },
      evidence,
      duration(),
    );
  }

  let leaf: CertificateInfo;
  try {
    leaf = inspectCertificate(chainPem[0]!);
  } catch (err) {
    return failResult(
      ctx,
      name,
      'the workload certificate is not valid X.509',
      'cert-unreadable',
      { detail: (err as Error).message },
      evidence,
      duration(),
    );
  }
  evidence.unshift(`leaf: ${describeCert(leaf)}`);
  return evaluateLeaf(
    ctx,
    leaf,
    () => verifyChainToRoots(chainPem, installedRootPem),
    rootDiffers,
    evidence,
    options,
    now,
    started,
  );
}

function evaluateLeaf(
  ctx: VerifyContext,
  leaf: { uriSans: string[]; notAfter: Date; notBefore?: Date },
  verifyChain: () => { ok: true; anchoredBy: CertificateInfo } | { ok: false; reason: string },
  rootDiffers: boolean,
  evidence: string[],
  options: VerifyOptions,
  now: Date,
  started: number,
): CheckResult {
  const name: CheckName = 'workload-certificate';
  const duration = () => Date.now() - started;
  const expected = expectedSpiffeId(ctx);
  const spiffe = leaf.uriSans.map(parseSpiffeId).find((s) => s !== undefined);
  const san = leaf.uriSans[0] ?? '(none)';
  if (!spiffe) {
    return failResult(
      ctx,
      name,
      `cert has no SPIFFE URI SAN (SANs: ${leaf.uriSans.join(', ') || 'none'})`,
      'cert-identity',
      { san, expected },
      evidence,
      duration(),
    );
  }
  const actual = leaf.uriSans.find((u) => parseSpiffeId(u)) ?? san;
  if (spiffe.trustDomain !== ctx.trustDomain) {
    return failResult(
      ctx,
      name,
      `cert SAN is ${actual} but mesh trust domain is ${ctx.trustDomain}`,
      'cert-trust-domain',
      { san: actual, trustDomain: ctx.trustDomain },
      evidence,
      duration(),
    );
  }
  if (actual !== expected) {
    return failResult(
      ctx,
      name,
      `cert SAN is ${actual}, expected ${expected}`,
      'cert-identity',
      { san: actual, expected },
      evidence,
      duration(),
    );
  }
  const chain = verifyChain();
  if (!chain.ok) {
    return failResult(
      ctx,
      name,
      `cert does not chain to the installed root: ${chain.reason}`,
      'cert-root-mismatch',
      { detail: chain.reason },
      evidence,
      duration(),
    );
  }
  if (rootDiffers) {
    return failResult(
      ctx,
      name,
      "the VM's /etc/certs/root-cert.pem is not the mesh root cert",
      'cert-root-mismatch',
      { detail: 'VM root-cert.pem differs from istio-ca-root-cert' },
      evidence,
      duration(),
    );
  }
  if (leaf.notBefore && leaf.notBefore.getTime() > now.getTime() + 5 * 60_000) {
    return failResult(
      ctx,
      name,
      `cert is not valid before ${leaf.notBefore.toISOString()} (VM or CA clock skew?)`,
      'cert-unreadable',
      { detail: 'notBefore in the future' },
      evidence,
      duration(),
    );
  }
  const remainingMs = leaf.notAfter.getTime() - now.getTime();
  if (remainingMs <= 0) {
    return failResult(
      ctx,
      name,
      `cert expired at ${leaf.notAfter.toISOString()}`,
      'cert-expired',
      { notAfter: leaf.notAfter.toISOString() },
      evidence,
      duration(),
    );
  }
  if (remainingMs < options.certExpiryThresholdMs) {
    return failResult(
      ctx,
      name,
      `cert expires at ${leaf.notAfter.toISOString()} (in ${Math.round(remainingMs / 60_000)} min)`,
      'cert-expiring',
      { notAfter: leaf.notAfter.toISOString(), thresholdMin: Math.round(options.certExpiryThresholdMs / 60_000) },
      evidence,
      duration(),
    );
  }
  return passResult(
    ctx,
    name,
    `SAN ${actual}, chains to the installed root, valid until ${leaf.notAfter.toISOString()}`,
    evidence,
    duration(),
  );
}

function evaluateCertsFallback(
  ctx: VerifyContext,
  context: ReturnType<typeof parseCertsJson>[number],
  installedRootPem: string[],
  rootDiffers: boolean,
  evidence: string[],
  options: VerifyOptions,
  now: Date,
  started: number,
): CheckResult {
  const leaf = context.certChain[0]!;
  evidence.unshift(
    `/certs leaf: serial ${leaf.serialNumber}, SAN ${leaf.uriSans.join(' ')}, expires ${leaf.expirationTime?.toISOString() ?? '?'} (no PEM: config_dump unavailable)`,
  );
  const notAfter = leaf.expirationTime ?? new Date(now.getTime() + (leaf.daysUntilExpiration ?? 0) * 86_400_000);
  const leafView: { uriSans: string[]; notAfter: Date; notBefore?: Date } = { uriSans: leaf.uriSans, notAfter };
  if (leaf.validFrom) leafView.notBefore = leaf.validFrom;
  // Without PEMs the chain can only be matched by the CA serial numbers Envoy reports.
  const verify = () => {
    const installedSerials = installedRootPem.map((p) => inspectCertificate(p).serialNumber);
    const caSerials = context.caCert.map((c) => c.serialNumber);
    const match = caSerials.find((s) => installedSerials.includes(s));
    if (match)
      return { ok: true as const, anchoredBy: inspectCertificate(installedRootPem[installedSerials.indexOf(match)]!) };
    return {
      ok: false as const,
      reason: `Envoy trusts CA serial(s) ${caSerials.join(', ') || 'none'}, installed root has ${installedSerials.join(', ') || 'none'}`,
    };
  };
  return evaluateLeaf(ctx, leafView, verify, rootDiffers, evidence, options, now, started);
}

// ---------------------------------------------------------------- 5. workload-entry

function healthyCondition(entry: WorkloadEntryView) {
  return entry.status?.conditions?.find((c) => c.type === 'Healthy');
}

function describeEntry(entry: WorkloadEntryView): string {
  const a = entry.metadata.annotations ?? {};
  const kind = a['istio.io/autoRegistrationGroup']
    ? `auto-registered (group ${a['istio.io/autoRegistrationGroup']})`
    : 'static';
  const h = healthyCondition(entry);
  return `WorkloadEntry ${entry.metadata.namespace ?? ''}/${entry.metadata.name} ${kind}, address ${entry.spec.address ?? '?'}, Healthy=${h ? h.status : '(none)'}${h?.message ? ` (${h.message})` : ''}`;
}

function probePort(ctx: VerifyContext): string {
  const p = ctx.group.probe;
  return String(p?.httpGet?.port ?? p?.tcpSocket?.port ?? '?');
}

/**
 * What the WorkloadEntry wait knows of the VM side: the entry can only appear (and turn Healthy) once
 * the sidecar is up, so while the VM-side probe still waits for readiness the wait goes on, and it ends
 * no sooner than a grace period after that probe finished.
 */
export interface VmSideProgress {
  /** When the VM-side probe (readiness) finished; undefined while it runs. */
  doneAt?: number;
}

export async function checkWorkloadEntry(
  ctx: VerifyContext,
  options: VerifyOptions,
  vmSide?: VmSideProgress,
): Promise<CheckResult> {
  const name: CheckName = 'workload-entry';
  const now = ctx.now ?? Date.now;
  const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const started = now();
  const graceMs = Math.min(options.workloadEntryTimeoutMs, 10_000);
  const deadline = (): number => {
    const base = started + options.workloadEntryTimeoutMs;
    if (!vmSide) return base;
    return vmSide.doneAt === undefined ? Number.POSITIVE_INFINITY : Math.max(base, vmSide.doneAt + graceMs);
  };
  const healthChecks = ctx.healthChecks ?? !!ctx.group.probe;
  const address = ctx.workloadAddress;
  // A static entry is named after its VM (src/render buildWorkloadEntry): the lookup must know the VM's name.
  const query = {
    namespace: ctx.group.namespace,
    address,
    group: ctx.group.name,
    vmName: ctx.vm.name,
    ...(ctx.group.network ? { network: ctx.group.network } : {}),
  };
  let entry: WorkloadEntryView | undefined;
  let lastError: string | undefined;
  let diagnosed = false;
  // Bounded in count whatever the clock does: the longest the VM side can take, plus the wait itself.
  const longestMs =
    options.workloadEntryTimeoutMs + (vmSide ? options.readyTimeoutMs + options.restartWindowMs + 60_000 : 0);
  const maxPolls = Math.ceil(longestMs / Math.max(1, options.workloadEntryPollMs)) + 1;
  for (let poll = 0; poll < maxPolls; poll++) {
    try {
      entry = await ctx.meshProbe.workloadEntryFor(query);
      lastError = undefined;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (entry) {
      if (!healthChecks) break;
      const h = healthyCondition(entry);
      if (h?.status === 'True') break;
    } else if (!lastError && !diagnosed && ctx.group.registration === 'auto') {
      // Ask once why it may be missing: a definite answer ends the wait early.
      diagnosed = true;
      const enabled = await ctx.meshProbe.autoRegistrationEnabled?.().catch(() => undefined);
      if (enabled === false) {
        return failResult(
          ctx,
          name,
          `no WorkloadEntry for ${address} and istiod has autoregistration disabled`,
          'we-autoregistration-off',
          { address },
          ['istiod env PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false'],
          now() - started,
        );
      }
      const groupExists = await ctx.meshProbe
        .workloadGroupExists?.({ namespace: ctx.group.namespace, name: ctx.group.name })
        .catch(() => undefined);
      if (groupExists === false) {
        return failResult(
          ctx,
          name,
          `no WorkloadEntry for ${address}: WorkloadGroup ${ctx.group.namespace}/${ctx.group.name} is missing`,
          'we-group-missing',
          { address },
          [`WorkloadGroup ${ctx.group.namespace}/${ctx.group.name}: not found`],
          now() - started,
        );
      }
    }
    if (now() + options.workloadEntryPollMs > deadline()) break;
    await sleep(options.workloadEntryPollMs);
  }
  const waited = `${((now() - started) / 1000).toFixed(1)} s`;
  if (!entry && lastError) {
    return failResult(
      ctx,
      name,
      `could not read WorkloadEntries: ${lastError}`,
      'we-read-failed',
      { detail: lastError },
      [lastError],
      now() - started,
    );
  }
  if (!entry) {
    const detail =
      ctx.group.registration === 'static'
        ? ' (static registration: the entry was not applied)'
        : ' (the sidecar has not auto-registered)';
    return failResult(
      ctx,
      name,
      `no WorkloadEntry with address ${address} in ${ctx.group.namespace} after ${waited}`,
      'we-missing',
      { address, detail },
      [`registration: ${ctx.group.registration}`],
      now() - started,
    );
  }
  const evidence = [describeEntry(entry)];
  if (healthChecks) {
    const h = healthyCondition(entry);
    if (!h) {
      return failResult(
        ctx,
        name,
        `${entry.metadata.name} has no Healthy condition after ${waited}`,
        'we-health-unknown',
        { entry: entry.metadata.name },
        evidence,
        now() - started,
      );
    }
    if (h.status !== 'True') {
      const detail = h.message ?? h.reason ?? `Healthy=${h.status}`;
      return failResult(
        ctx,
        name,
        `${entry.metadata.name} is not Healthy after ${waited}: ${detail}`,
        'we-unhealthy',
        { entry: entry.metadata.name, detail, probePort: probePort(ctx) },
        evidence,
        now() - started,
      );
    }
  }
  return passResult(
    ctx,
    name,
    `${entry.metadata.name} has address ${address}${healthChecks ? ' and is Healthy' : ' (health checks off)'}`,
    evidence,
    now() - started,
  );
}

// ---------------------------------------------------------------- 6. vm-to-mesh

export function checkVmToMesh(ctx: VerifyContext, output: ScriptOutput, durationMs: number): CheckResult {
  const name: CheckName = 'vm-to-mesh';
  const host = new URL(ctx.verifyUrl).hostname;
  const call = output.sections.get('vm-to-mesh');
  const resolve = output.sections.get('resolve');
  const evidence = [
    `getent hosts ${host} → ${resolve ? (resolve.rc === 0 ? resolve.body.trim() : `exit ${resolve.rc} (not resolved)`) : 'not run'}`,
    `GET ${ctx.verifyUrl} → ${describeFetch(call)}`,
  ];
  if (!call) {
    return failResult(
      ctx,
      name,
      'the request was not made (script output incomplete)',
      'mesh-service-unreachable',
      { host, detail: 'no output' },
      evidence,
      durationMs,
    );
  }
  if (call.rc === 6) {
    return failResult(
      ctx,
      name,
      `could not resolve ${host} on the VM`,
      'dns-capture-off',
      { host },
      evidence,
      durationMs,
    );
  }
  if (call.http === '000') {
    const detail = call.stderr.trim().split('\n').pop() || `curl exit ${call.rc}`;
    return failResult(
      ctx,
      name,
      `${ctx.verifyUrl} failed: ${detail}`,
      'mesh-service-unreachable',
      { host, detail },
      evidence,
      durationMs,
    );
  }
  if (!isSuccessCode(call.http)) {
    return failResult(
      ctx,
      name,
      `${ctx.verifyUrl} answered HTTP ${call.http}`,
      'mesh-service-http-error',
      { host, code: call.http },
      evidence,
      durationMs,
    );
  }
  return passResult(
    ctx,
    name,
    `${ctx.verifyUrl} answered HTTP ${call.http} (resolved through the sidecar's DNS)`,
    evidence,
    durationMs,
  );
}

// ---------------------------------------------------------------- 7. mesh-to-vm-mtls

export interface MtlsTarget {
  url: string;
  protocol: 'http' | 'tcp';
  port: number;
}

/** ADR 0002: `http://<workload IP>:<port><path>` — the group's first `http*`/`grpc*` port, else the probe port, else the first port. */
export function defaultMtlsTarget(ctx: VerifyContext): MtlsTarget {
  if (ctx.mtlsTarget) {
    const u = new URL(ctx.mtlsTarget.url);
    return { ...ctx.mtlsTarget, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) };
  }
  const ports = Object.entries(ctx.group.ports);
  const httpPort = ports.find(([n]) => /^(http|http2|grpc|grpc-web)(-|$)/.test(n))?.[1];
  const probe = ctx.group.probe;
  const probeHttpPort = probe?.httpGet?.port;
  const port = httpPort ?? probeHttpPort ?? ports[0]?.[1] ?? probe?.tcpSocket?.port;
  if (port === undefined) throw new Error(`group ${ctx.group.name} has no port to call`);
  const path = probe?.httpGet && probe.httpGet.port === port ? (probe.httpGet.path ?? '/') : '/';
  const host = ctx.workloadAddress.includes(':') ? `[${ctx.workloadAddress}]` : ctx.workloadAddress;
  const protocol = httpPort !== undefined || probeHttpPort === port ? 'http' : 'tcp';
  return { url: `http://${host}:${port}${path.startsWith('/') ? path : `/${path}`}`, protocol, port };
}

export const MTLS_COUNTERS = {
  http: {
    metric: 'istio_requests_total',
    filter: { reporter: 'destination', connection_security_policy: 'mutual_tls' },
  },
  tcp: {
    metric: 'istio_tcp_connections_opened_total',
    filter: { reporter: 'destination', connection_security_policy: 'mutual_tls' },
  },
} as const;

function readCounter(section: ScriptSection | undefined, protocol: 'http' | 'tcp'): number | string {
  if (!fetchOk(section)) return `GET localhost:15090/stats/prometheus → ${describeFetch(section)}`;
  const { metric, filter } = MTLS_COUNTERS[protocol];
  return sumMetric(parsePrometheusText(section.body), metric, filter);
}

export interface MtlsEvidence {
  target: MtlsTarget;
  strict: boolean;
  before?: ScriptSection;
  after?: ScriptSection;
  mtlsJob: VerificationJobResult | { error: string };
  plaintextJob?: VerificationJobResult | { error: string };
  /** Plaintext Jobs before `plaintextJob` that were answered while the policy could still be on its way. */
  earlierPlaintextJobs?: VerificationJobResult[];
  image: string;
}

/** Calls of a plaintext Job that the VM answered (any HTTP code; 000 = refused or failed). */
export function answeredPlaintextCalls(job: VerificationJobResult): number {
  return job.calls.filter((call) => Number(call.code) !== 0).length;
}

function jobCodes(job: VerificationJobResult): string {
  return job.calls.map((c) => String(c.code).padStart(3, '0')).join(' ') || '(no calls)';
}

export function evaluateMeshToVmMtls(
  ctx: VerifyContext,
  e: MtlsEvidence,
  options: VerifyOptions,
  durationMs: number,
): CheckResult {
  const name: CheckName = 'mesh-to-vm-mtls';
  const { metric } = MTLS_COUNTERS[e.target.protocol];
  const counterName = `${metric}{reporter="destination",connection_security_policy="mutual_tls"}`;
  const evidence: string[] = [];
  const base = { namespace: ctx.group.namespace, image: e.image, target: e.target.url, address: ctx.workloadAddress };

  const before = readCounter(e.before, e.target.protocol);
  if (typeof before === 'string') {
    return failResult(
      ctx,
      name,
      `cannot read the VM sidecar's metrics before the calls: ${before}`,
      'metrics-unavailable',
      { detail: before },
      [before],
      durationMs,
    );
  }
  const job = e.mtlsJob;
  if ('error' in job) {
    return failResult(
      ctx,
      name,
      `the mTLS verification Job failed to run: ${job.error}`,
      'mtls-job-failed',
      { ...base, detail: job.error },
      [job.error],
      durationMs,
    );
  }
  const called = job.calledUrl ?? e.target.url;
  const waits = job.waits ?? [];
  if (job.serviceEntry) {
    evidence.push(
      `ServiceEntry ${ctx.group.namespace}/${job.serviceEntry} (MESH_INTERNAL, service account ${ctx.group.serviceAccount}): ` +
        `${new URL(called).host} → ${ctx.workloadAddress}:${e.target.port}`,
    );
    for (const w of waits)
      evidence.push(
        `client sidecar, attempt ${w.n}: VM endpoint ${w.seen ? 'seen' : 'not seen yet'} in localhost:15000/clusters`,
      );
  }
  evidence.push(`mTLS Job (injected) → ${called}: ${jobCodes(job)}${job.reason ? ` (${job.reason})` : ''}`);
  if (job.serviceEntry && job.calls.length > 0 && !waits.some((w) => w.seen)) {
    const detail = `the client's sidecar did not get the endpoint of ${new URL(called).host} in ${waits.length} attempt(s), 1 s apart`;
    return failResult(
      ctx,
      name,
      `mesh client never saw the VM's ServiceEntry: ${detail}`,
      'mtls-service-unseen',
      { ...base, detail },
      evidence,
      durationMs,
    );
  }
  if (job.calls.length === 0) {
    const detail = job.reason ?? (job.succeeded ? 'no ivo-call lines in the logs' : 'Job did not complete');
    return failResult(
      ctx,
      name,
      `the mTLS verification Job made no calls: ${detail}`,
      'mtls-job-failed',
      { ...base, detail },
      [...evidence, ...scrubLines(ctx, job.logs).slice(-5)],
      durationMs,
    );
  }
  const answered = job.calls.filter((c) => isSuccessCode(c.code)).length;
  if (answered < options.mtlsRequests || answered < job.calls.length) {
    const detail = `${answered} of ${job.calls.length} calls succeeded, codes ${jobCodes(job)}`;
    return failResult(
      ctx,
      name,
      `mesh client calls to ${e.target.url} failed: ${detail}`,
      'mtls-calls-failed',
      { ...base, detail },
      evidence,
      durationMs,
    );
  }
  const after = readCounter(e.after, e.target.protocol);
  if (typeof after === 'string') {
    return failResult(
      ctx,
      name,
      `cannot read the VM sidecar's metrics after the calls: ${after}`,
      'metrics-unavailable',
      { detail: after },
      [...evidence, after],
      durationMs,
    );
  }
  const delta = after - before;
  evidence.push(`${counterName}: ${before} → ${after} (+${delta})`);
  if (delta < answered) {
    return failResult(
      ctx,
      name,
      `${answered} calls succeeded but ${counterName} grew by ${delta}`,
      'mtls-not-mutual',
      { delta, succeeded: answered },
      evidence,
      durationMs,
    );
  }
  if (e.strict) {
    const plain = e.plaintextJob;
    if (!plain || 'error' in plain || plain.calls.length === 0) {
      const detail = !plain ? 'not run' : 'error' in plain ? plain.error : (plain.reason ?? 'no calls made');
      return failResult(
        ctx,
        name,
        `STRICT could not be proven: the plaintext Job failed to run (${detail})`,
        'mtls-job-failed',
        { ...base, detail },
        evidence,
        durationMs,
      );
    }
    const accepted = answeredPlaintextCalls(plain);
    const earlier = e.earlierPlaintextJobs ?? [];
    for (const [index, job] of earlier.entries())
      evidence.push(`plaintext Job attempt ${index + 1} (not injected) → ${e.target.url}: ${jobCodes(job)}`);
    evidence.push(
      `plaintext Job${earlier.length > 0 ? ` attempt ${earlier.length + 1}` : ''} (not injected) → ${e.target.url}: ${jobCodes(plain)}`,
    );
    if (accepted > 0) {
      const persisted =
        earlier.length > 0
          ? ` (on each of ${earlier.length + 1} attempts within ${Math.round(options.policyPropagationMs / 1000)} s: not a policy still on its way)`
          : '';
      return failResult(
        ctx,
        name,
        `plaintext accepted: ${accepted} of ${plain.calls.length} plaintext calls answered under STRICT${persisted}`,
        'plaintext-accepted',
        { accepted, total: plain.calls.length },
        evidence,
        durationMs,
      );
    }
  }
  return passResult(
    ctx,
    name,
    `${answered} mesh calls arrived over mutual TLS (+${delta} ${metric})${e.strict ? '; plaintext refused (STRICT)' : ''}`,
    evidence,
    durationMs,
  );
}
