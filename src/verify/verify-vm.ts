// verifyVm: runs the seven checks for one VM with two exec round trips and returns them in
// CHECK_NAMES order.
//
//   t=0 ── workload-entry (cluster, polls in the background until round trip 1 ended + grace) ─┐
//   t=0 ── round trip 1: probe script → sidecar-ready, xds-connected, workload-certificate,     │
//          "before" mTLS counters, sidecar-running (preliminary when the sidecar is ready)        │
//       ── if ready: verification Job(s) (mTLS, + plaintext under STRICT, in parallel)            │
//       ── round trip 2: "after" counters + vm-to-mesh + the rest of the restart window            │
//          → vm-to-mesh, mesh-to-vm-mtls, sidecar-running                                          │
//   join ───────────────────────────────────────────────────────────────────────────────────────┘
// Dependencies: sidecar not running → every other VM-side check is skipped (workload-entry still runs);
// sidecar not ready → vm-to-mesh and mesh-to-vm-mtls are skipped.
import { randomBytes } from 'node:crypto';
import {
  checkSidecarReady,
  checkSidecarRunning,
  checkVmToMesh,
  checkWorkloadCertificate,
  checkWorkloadEntry,
  checkXdsConnected,
  defaultMtlsTarget,
  answeredPlaintextCalls,
  evaluateMeshToVmMtls,
  failResult,
  probeStartMs,
  windowDeferred,
  skippedResult,
  type MtlsEvidence,
  type MtlsTarget,
  type ProbeOutcome,
  type VmSideProgress,
} from './checks.js';
import { verificationServiceHost } from '../cluster/verification-job.js';
import { scrubSecrets } from './scrub.js';
import { buildFollowUpScript, buildProbeScript, parseScriptOutput, type ScriptOutput } from './vm-script.js';
import type { VerificationJobResult } from './ports.js';
import {
  CHECK_NAMES,
  DEFAULT_VERIFY_OPTIONS,
  type CheckName,
  type CheckResult,
  type VerifyContext,
  type VerifyOptions,
} from './types.js';

/** ADR 0002 Job name: `ivo-verify-<vm>-<random>`, a DNS-1123 label (≤ 63 chars). */
export function verificationJobName(vmName: string, suffix: string): string {
  const vm =
    vmName
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'vm';
  const tail = `-${suffix}`;
  return `ivo-verify-${vm}`.slice(0, 63 - tail.length).replace(/-+$/, '') + tail;
}

function randomSuffix(): string {
  return randomBytes(4).toString('hex').slice(0, 5);
}

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

async function isStrict(ctx: VerifyContext): Promise<{ strict: boolean; note: string }> {
  if (ctx.peerAuthentication === 'strict') return { strict: true, note: 'peer-authentication: strict' };
  if (ctx.peerAuthentication === 'permissive') return { strict: false, note: 'peer-authentication: permissive' };
  if (!ctx.meshProbe.peerAuthenticationMode) return { strict: false, note: 'PeerAuthentication mode unknown' };
  try {
    const mode = await ctx.meshProbe.peerAuthenticationMode({
      namespace: ctx.group.namespace,
      labels: ctx.group.labels,
    });
    return { strict: mode === 'STRICT', note: `PeerAuthentication on the cluster: ${mode}` };
  } catch (err) {
    return { strict: false, note: `PeerAuthentication mode unreadable: ${(err as Error).message}` };
  }
}

function acceptsPlaintext(job: VerificationJobResult | { error: string }): job is VerificationJobResult {
  return !('error' in job) && answeredPlaintextCalls(job) > 0;
}

/**
 * One verification Job. The mTLS attempt (`target` given) calls the VM through a ServiceEntry host
 * (ADR 0005): an in-mesh client's sidecar uses mTLS only for mesh services. The plaintext attempt under
 * STRICT calls the VM's IP from a pod without sidecar.
 */
async function runJob(
  ctx: VerifyContext,
  options: VerifyOptions,
  url: string,
  injectSidecar: boolean,
  target?: MtlsTarget,
): Promise<VerificationJobResult | { error: string }> {
  const name = verificationJobName(ctx.vm.name, (ctx.randomSuffix ?? randomSuffix)());
  const revision = ctx.revision && ctx.revision !== 'default' ? ctx.revision : undefined;
  try {
    return await ctx.meshProbe.runVerificationJob({
      namespace: ctx.group.namespace,
      name,
      image: ctx.verifyClientImage,
      targetUrl: url,
      requests: options.mtlsRequests,
      injectSidecar,
      timeoutMs: options.jobTimeoutMs,
      ...(injectSidecar && revision ? { revision } : {}),
      ...(injectSidecar && target
        ? {
            service: {
              host: verificationServiceHost(name, ctx.group.namespace),
              address: ctx.workloadAddress,
              port: target.port,
              protocol: target.protocol,
              serviceAccount: ctx.group.serviceAccount,
              labels: { ...ctx.group.labels },
              vmName: ctx.vm.name,
              waitAttempts: options.endpointWaitAttempts,
            },
          }
        : {}),
    });
  } catch (err) {
    return { error: scrubSecrets((err as Error).message, ctx.secretValues) };
  }
}

export async function verifyVm(ctx: VerifyContext): Promise<CheckResult[]> {
  const options: VerifyOptions = { ...DEFAULT_VERIFY_OPTIONS, ...ctx.options };
  const now = ctx.now ?? Date.now;
  const results = new Map<CheckName, CheckResult>();

  const vmSide: VmSideProgress = {};
  const workloadEntry = checkWorkloadEntry(ctx, options, vmSide).catch((err: unknown) =>
    failResult(
      ctx,
      'workload-entry',
      `check crashed: ${(err as Error).message}`,
      'we-read-failed',
      { detail: (err as Error).message },
      [],
      0,
    ),
  );

  // The mesh's mTLS mode (PeerAuthentication reads) is asked now, alongside round trip 1.
  const strictness = isStrict(ctx);
  strictness.catch(() => undefined);

  // Round trip 1.
  const probeTimeoutMs = options.readyTimeoutMs + options.restartWindowMs + 30_000;
  const probe = await runScript(ctx, buildProbeScript({ ...options, deferWindowWhenReady: true }), probeTimeoutMs);
  vmSide.doneAt = now();
  const running = checkSidecarRunning(ctx, probe);
  results.set('sidecar-running', running);

  if (running.status !== 'pass' || !probe.ok) {
    const reason = probe.ok
      ? 'the sidecar is not running (see sidecar-running)'
      : 'the checks could not run on the VM (see sidecar-running)';
    for (const name of [
      'sidecar-ready',
      'xds-connected',
      'workload-certificate',
      'vm-to-mesh',
      'mesh-to-vm-mtls',
    ] as const) {
      results.set(name, skippedResult(ctx, name, reason));
    }
  } else {
    const output: ScriptOutput = probe.output;
    const ready = checkSidecarReady(ctx, output);
    results.set('sidecar-ready', ready);
    results.set('xds-connected', checkXdsConnected(ctx, output));
    results.set('workload-certificate', checkWorkloadCertificate(ctx, output, options));

    if (ready.status !== 'pass') {
      for (const name of ['vm-to-mesh', 'mesh-to-vm-mtls'] as const) {
        results.set(name, skippedResult(ctx, name, 'the sidecar is not ready (see sidecar-ready)'));
      }
    } else {
      const started = now();
      let target: ReturnType<typeof defaultMtlsTarget> | undefined;
      let targetError = '';
      try {
        target = defaultMtlsTarget(ctx);
      } catch (err) {
        targetError = (err as Error).message;
      }
      const { strict, note } = await strictness;
      const [mtlsJob, firstPlaintextJob] = target
        ? await Promise.all([
            runJob(ctx, options, target.url, true, target),
            strict ? runJob(ctx, options, target.url, false) : Promise.resolve(undefined),
          ])
        : [undefined, undefined];
      // A STRICT policy applied moments ago (this run, or just before it) may not have reached the
      // sidecar yet: plaintext that is still accepted after the propagation time is the failure.
      const earlierPlaintextJobs: VerificationJobResult[] = [];
      let plaintextJob = firstPlaintextJob;
      const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
      for (
        let pauseMs = 1000;
        target &&
        plaintextJob &&
        acceptsPlaintext(plaintextJob) &&
        now() + pauseMs <= started + options.policyPropagationMs;
        pauseMs *= 2
      ) {
        earlierPlaintextJobs.push(plaintextJob);
        await sleep(pauseMs);
        plaintextJob = await runJob(ctx, options, target.url, false);
      }
      const jobsDone = now();

      // Round trip 2 (it also ends the restart window round trip 1 deferred: the Jobs' time counts toward it).
      const startMs = windowDeferred(output) ? probeStartMs(output) : undefined;
      const followUp = await runScript(
        ctx,
        buildFollowUpScript({
          readPrometheus: !!target,
          verifyUrl: ctx.verifyUrl,
          vmToMeshTimeoutMs: options.vmToMeshTimeoutMs,
          ...(startMs !== undefined
            ? { restartWindow: { windowMs: options.restartWindowMs, probeStartMs: startMs } }
            : {}),
        }),
        options.vmToMeshTimeoutMs + options.restartWindowMs + 20_000,
      );
      results.set('sidecar-running', checkSidecarRunning(ctx, probe, followUp));
      if (!followUp.ok) {
        const evidence = [followUp.error];
        results.set(
          'vm-to-mesh',
          failResult(
            ctx,
            'vm-to-mesh',
            `could not run the request on the VM: ${followUp.error}`,
            'probe-failed',
            { detail: followUp.error },
            evidence,
            followUp.durationMs,
          ),
        );
      } else {
        results.set('vm-to-mesh', checkVmToMesh(ctx, followUp.output, followUp.durationMs));
      }

      if (!target || !mtlsJob) {
        results.set(
          'mesh-to-vm-mtls',
          failResult(
            ctx,
            'mesh-to-vm-mtls',
            `no target for the mesh client: ${targetError}`,
            'mtls-calls-failed',
            { target: '(none)', detail: targetError, address: ctx.workloadAddress },
            [],
            0,
          ),
        );
      } else {
        const evidence: MtlsEvidence = { target, strict, mtlsJob, image: ctx.verifyClientImage };
        const before = output.sections.get('prometheus');
        const after = followUp.ok ? followUp.output.sections.get('prometheus') : undefined;
        if (before) evidence.before = before;
        if (after) evidence.after = after;
        if (plaintextJob) evidence.plaintextJob = plaintextJob;
        if (earlierPlaintextJobs.length > 0) evidence.earlierPlaintextJobs = earlierPlaintextJobs;
        const result = evaluateMeshToVmMtls(ctx, evidence, options, jobsDone - started + followUp.durationMs);
        result.evidence.push(note);
        results.set('mesh-to-vm-mtls', result);
      }
    }
  }

  results.set('workload-entry', await workloadEntry);
  return CHECK_NAMES.map((name) => results.get(name)!);
}
