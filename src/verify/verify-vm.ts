// verifyVm: runs the registered checks (registry.ts) for one VM with two exec round trips and returns
// their results in the registry's order.
//
//   t=0 ── `cluster` checks (workload-entry: polls until round trip 1 ended + grace) ──────────────┐
//   t=0 ── `start` hooks (mesh-to-vm-mtls: the PeerAuthentication mode)                            │
//   t=0 ── round trip 1: probe script (+ the checks' `collect.probe` shell) → `probe` checks        │
//       ── if a `follow-up` check can run: its `prepare` (the mTLS Jobs), then round trip 2 with     │
//          what the checks asked for (`collect.followUp`) → `follow-up` checks, and the revision    │
//          of sidecar-running (the rest of its restart window)                                     │
//   join ──────────────────────────────────────────────────────────────────────────────────────────┘
// A check whose dependency (`dependsOn`) did not pass is skipped, naming the first cause.
import { scrubSecrets } from './scrub.js';
import { skippedResult, type CheckDefinition, type CheckInput, type ProbeOutcome } from './check.js';
import { checkDefinition, checkDefinitions } from './registry.js';
import { buildProbeScript, composeFollowUpScript, parseScriptOutput } from './vm-script.js';
import { DEFAULT_VERIFY_OPTIONS, type CheckName, type CheckResult, type VerifyContext } from './types.js';
import type { ShellPart } from '../vm/scripts/protocol.js';

export { verificationJobName } from './checks/mesh-to-vm-mtls.js';

async function runScript(ctx: VerifyContext, script: string, timeoutMs: number): Promise<ProbeOutcome> {
  const now = ctx.now ?? Date.now;
  const started = now();
  try {
    const result = await ctx.vmProbe.runScript(script, { timeoutMs });
    const output = parseScriptOutput(result.stdout);
    if (output.sections.size === 0 && Object.keys(output.tools).length === 0) {
      const stderr = scrubSecrets(result.stderr.trim().split('\n').slice(-3).join(' | '), ctx.secretValues);
      return {
        ok: false,
        error: `script exited ${result.code} without output${stderr ? `: ${stderr}` : ''}`,
        durationMs: now() - started,
      };
    }
    return { ok: true, output, durationMs: now() - started };
  } catch (err) {
    return { ok: false, error: scrubSecrets((err as Error).message, ctx.secretValues), durationMs: now() - started };
  }
}

/** Why `check` cannot run: the first dependency that did not pass (its own cause when it was skipped). */
function blockedBy(check: CheckDefinition, results: Map<CheckName, CheckResult>): string | undefined {
  for (const name of check.dependsOn) {
    const result = results.get(name);
    if (!result) return `${name} did not run`;
    if (result.status === 'skipped') return result.summary.replace(/^skipped: /, '');
    if (result.status !== 'pass') {
      const because = checkDefinition(name)?.blocksBecause?.(result) ?? `${name} did not pass`;
      return `${because} (see ${name})`;
    }
  }
  return undefined;
}

export async function verifyVm(ctx: VerifyContext): Promise<CheckResult[]> {
  const options = { ...DEFAULT_VERIFY_OPTIONS, ...ctx.options };
  const now = ctx.now ?? Date.now;
  const checks = checkDefinitions();
  const results = new Map<CheckName, CheckResult>();
  const input: CheckInput = { ctx, options, vmSide: {}, started: new Map(), prepared: new Map() };
  const evaluate = async (check: CheckDefinition): Promise<void> => {
    const blocked = blockedBy(check, results);
    results.set(check.name, blocked ? skippedResult(check.name, blocked) : await check.evaluate(input));
  };

  const clusterResults = checks
    .filter((check) => check.phase === 'cluster')
    .map((check) => Promise.resolve(check.evaluate(input)).then((result) => ({ check, result })));
  for (const check of checks) {
    if (!check.start) continue;
    const started = check.start(input);
    started.catch(() => undefined);
    input.started.set(check.name, started);
  }

  // Round trip 1.
  const probeParts = checks.flatMap((check): ShellPart[] => (check.collect?.probe ? [check.collect.probe] : []));
  const probeTimeoutMs = options.readyTimeoutMs + options.restartWindowMs + 30_000;
  input.probe = await runScript(
    ctx,
    buildProbeScript({ ...options, deferWindowWhenReady: true }, probeParts),
    probeTimeoutMs,
  );
  input.vmSide.doneAt = now();
  for (const check of checks.filter((c) => c.phase === 'probe')) await evaluate(check);

  // Round trip 2, when a check needs it.
  const followUps = checks.filter((check) => check.phase === 'follow-up');
  const runnable = followUps.filter((check) => !blockedBy(check, results));
  for (const check of followUps) if (!runnable.includes(check)) check.notRun?.(input);
  if (runnable.length > 0) {
    for (const check of runnable) {
      if (check.prepare) input.prepared.set(check.name, await check.prepare(input));
    }
    const parts = checks
      .filter((check) => check.phase !== 'follow-up' || runnable.includes(check))
      .flatMap((check): ShellPart[] => {
        const part = check.collect?.followUp?.(input);
        return part ? [part] : [];
      });
    input.followUp = await runScript(
      ctx,
      composeFollowUpScript(parts),
      options.vmToMeshTimeoutMs + options.restartWindowMs + 20_000,
    );
    for (const check of checks.filter((c) => c.phase === 'probe' && c.reviseAfterFollowUp)) {
      results.set(check.name, await check.evaluate(input));
    }
  }
  for (const check of followUps) await evaluate(check);

  for (const { check, result } of await Promise.all(clusterResults)) {
    const blocked = blockedBy(check, results);
    results.set(check.name, blocked ? skippedResult(check.name, blocked) : result);
  }
  return checks.map((check) => results.get(check.name)!);
}
