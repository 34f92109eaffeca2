// mesh-to-vm-mtls: an in-mesh client (an ADR-0002 Job) calls the VM through a ServiceEntry host
// (ADR 0005) and the VM's own sidecar counts the calls as mutual TLS (its counters read in round trips
// 1 and 2, around the Jobs); under STRICT a plaintext call from a pod without sidecar is refused.
import { randomBytes } from 'node:crypto';
import { verificationServiceHost } from '../../cluster/verification-job.js';
import { verificationGroupKey } from '../job-batcher.js';
import { describeFetch, failResult, fetchOk, isSuccessCode, passResult, probeOutput, scrubLines } from '../check.js';
import type { CheckDefinition, CheckInput } from '../check.js';
import { parsePrometheusText, sumMetric } from '../envoy/prometheus.js';
import type { VerificationJobResult, VerificationJobSpec } from '../ports.js';
import { scrubSecrets } from '../scrub.js';
import { followUpParts, type ScriptSection } from '../vm-script.js';
import type { CheckName, CheckResult, VerifyContext, VerifyOptions } from '../types.js';

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
    return failResult(ctx, {
      check: name,
      seen: `cannot read the VM sidecar's metrics before the calls: ${before}`,
      hint: 'metrics-unavailable',
      vars: { detail: before },
      evidence: [before],
      durationMs,
    });
  }
  const job = e.mtlsJob;
  if ('error' in job) {
    return failResult(ctx, {
      check: name,
      seen: `the mTLS verification Job failed to run: ${job.error}`,
      hint: 'mtls-job-failed',
      vars: { ...base, detail: job.error },
      evidence: [job.error],
      durationMs,
    });
  }
  const called = job.calledUrl ?? e.target.url;
  const waits = job.waits ?? [];
  if (job.serviceEntry) {
    evidence.push(
      `ServiceEntry ${ctx.group.namespace}/${job.serviceEntry} ` +
        `(MESH_INTERNAL, service account ${ctx.group.serviceAccount}): ` +
        `${new URL(called).host} → ${ctx.workloadAddress}:${e.target.port}`,
    );
    for (const w of waits)
      evidence.push(
        `client sidecar, attempt ${w.n}: VM endpoint ${w.seen ? 'seen' : 'not seen yet'} in localhost:15000/clusters`,
      );
  }
  if (job.job) evidence.push(`one verification Job for the group's VMs: ${ctx.group.namespace}/${job.job}`);
  evidence.push(`mTLS Job (injected) → ${called}: ${jobCodes(job)}${job.reason ? ` (${job.reason})` : ''}`);
  if (job.serviceEntry && job.calls.length > 0 && !waits.some((w) => w.seen)) {
    const detail =
      `the client's sidecar did not get the endpoint of ${new URL(called).host} ` +
      `in ${waits.length} attempt(s), 1 s apart`;
    return failResult(ctx, {
      check: name,
      seen: `mesh client never saw the VM's ServiceEntry: ${detail}`,
      hint: 'mtls-service-unseen',
      vars: { ...base, detail },
      evidence,
      durationMs,
    });
  }
  if (job.calls.length === 0) {
    const detail = job.reason ?? (job.succeeded ? 'no ivo-call lines in the logs' : 'Job did not complete');
    return failResult(ctx, {
      check: name,
      seen: `the mTLS verification Job made no calls: ${detail}`,
      hint: 'mtls-job-failed',
      vars: { ...base, detail },
      evidence: [...evidence, ...scrubLines(ctx, job.logs).slice(-5)],
      durationMs,
    });
  }
  const answered = job.calls.filter((c) => isSuccessCode(c.code)).length;
  if (answered < options.mtlsRequests || answered < job.calls.length) {
    const detail = `${answered} of ${job.calls.length} calls succeeded, codes ${jobCodes(job)}`;
    return failResult(ctx, {
      check: name,
      seen: `mesh client calls to ${e.target.url} failed: ${detail}`,
      hint: 'mtls-calls-failed',
      vars: { ...base, detail },
      evidence,
      durationMs,
    });
  }
  const after = readCounter(e.after, e.target.protocol);
  if (typeof after === 'string') {
    return failResult(ctx, {
      check: name,
      seen: `cannot read the VM sidecar's metrics after the calls: ${after}`,
      hint: 'metrics-unavailable',
      vars: { detail: after },
      evidence: [...evidence, after],
      durationMs,
    });
  }
  const delta = after - before;
  evidence.push(`${counterName}: ${before} → ${after} (+${delta})`);
  if (delta < answered) {
    return failResult(ctx, {
      check: name,
      seen: `${answered} calls succeeded but ${counterName} grew by ${delta}`,
      hint: 'mtls-not-mutual',
      vars: { delta, succeeded: answered },
      evidence,
      durationMs,
    });
  }
  if (e.strict) {
    const plain = e.plaintextJob;
    if (!plain || 'error' in plain || plain.calls.length === 0) {
      const detail = !plain ? 'not run' : 'error' in plain ? plain.error : (plain.reason ?? 'no calls made');
      return failResult(ctx, {
        check: name,
        seen: `STRICT could not be proven: the plaintext Job failed to run (${detail})`,
        hint: 'mtls-job-failed',
        vars: { ...base, detail },
        evidence,
        durationMs,
      });
    }
    const accepted = answeredPlaintextCalls(plain);
    const earlier = e.earlierPlaintextJobs ?? [];
    for (const [index, job] of earlier.entries())
      evidence.push(`plaintext Job attempt ${index + 1} (not injected) → ${e.target.url}: ${jobCodes(job)}`);
    const attemptLabel = earlier.length > 0 ? ` attempt ${earlier.length + 1}` : '';
    evidence.push(`plaintext Job${attemptLabel} (not injected) → ${e.target.url}: ${jobCodes(plain)}`);
    if (accepted > 0) {
      const persisted =
        earlier.length > 0
          ? ` (on each of ${earlier.length + 1} attempts within ${Math.round(options.policyPropagationMs / 1000)} s: ` +
            'not a policy still on its way)'
          : '';
      return failResult(ctx, {
        check: name,
        seen:
          `plaintext accepted: ${accepted} of ${plain.calls.length} plaintext calls answered ` +
          `under STRICT${persisted}`,
        hint: 'plaintext-accepted',
        vars: { accepted, total: plain.calls.length },
        evidence,
        durationMs,
      });
    }
  }
  return passResult({
    check: name,
    seen:
      `${answered} mesh calls arrived over mutual TLS (+${delta} ${metric})` +
      (e.strict ? '; plaintext refused (STRICT)' : ''),
    evidence,
    durationMs,
  });
}

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

interface Strictness {
  strict: boolean;
  note: string;
}

async function isStrict(ctx: VerifyContext): Promise<Strictness> {
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
 * STRICT calls the VM's IP from a pod without sidecar. `shared`: the Job may be one for the group's VMs
 * reaching the check together (issue 20, ctx.verificationJobs); its `name` then names the VM's ServiceEntry.
 */
async function runJob(
  ctx: VerifyContext,
  options: VerifyOptions,
  url: string,
  injectSidecar: boolean,
  shared: boolean,
  target?: MtlsTarget,
): Promise<VerificationJobResult | { error: string }> {
  const name = verificationJobName(ctx.vm.name, (ctx.randomSuffix ?? randomSuffix)());
  const revision = ctx.revision && ctx.revision !== 'default' ? ctx.revision : undefined;
  const queue = shared ? ctx.verificationJobs : undefined;
  const run = (spec: VerificationJobSpec) =>
    queue ? queue.submit(verificationGroupKey(ctx.group), ctx.vm.name, spec) : ctx.meshProbe.runVerificationJob(spec);
  try {
    return await run({
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

/** Issue 20: this VM will not reach its Jobs: the group's shared Job does not wait for it. */
function withdrawFromGroupJob(ctx: VerifyContext): void {
  ctx.verificationJobs?.withdraw(verificationGroupKey(ctx.group), ctx.vm.name);
}

/** What the Jobs between the round trips saw. */
interface MtlsJobs {
  started: number;
  jobsDone: number;
  strictness: Strictness;
  target?: MtlsTarget;
  targetError: string;
  mtlsJob?: VerificationJobResult | { error: string };
  plaintextJob?: VerificationJobResult | { error: string };
  earlierPlaintextJobs: VerificationJobResult[];
}

/** The mTLS Job (and under STRICT the plaintext Job, in parallel), between round trips 1 and 2. */
async function runJobs(input: CheckInput): Promise<MtlsJobs> {
  const { ctx, options } = input;
  const now = ctx.now ?? Date.now;
  const started = now();
  let target: MtlsTarget | undefined;
  let targetError = '';
  try {
    target = defaultMtlsTarget(ctx);
  } catch (err) {
    targetError = (err as Error).message;
    // No Job for this VM: its group does not wait for it.
    withdrawFromGroupJob(ctx);
  }
  const strictness = await (input.started.get('mesh-to-vm-mtls') as Promise<Strictness>);
  const [mtlsJob, firstPlaintextJob] = target
    ? await Promise.all([
        runJob(ctx, options, target.url, true, true, target),
        strictness.strict ? runJob(ctx, options, target.url, false, true) : Promise.resolve(undefined),
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
    // A repetition is this VM's own (its group's Job has run): no waiting for the group.
    plaintextJob = await runJob(ctx, options, target.url, false, false);
  }
  return {
    started,
    jobsDone: now(),
    strictness,
    targetError,
    earlierPlaintextJobs,
    ...(target ? { target } : {}),
    ...(mtlsJob ? { mtlsJob } : {}),
    ...(plaintextJob ? { plaintextJob } : {}),
  };
}

export const meshToVmMtls: CheckDefinition = {
  name: 'mesh-to-vm-mtls',
  short: 'mesh→vm mTLS',
  passesWhen:
    "an in-mesh client calls the VM and the VM's own sidecar counts the calls as **mutual TLS**; " +
    'under STRICT a plaintext call is refused ' +
    '(repeated for up to 10 s first, while a just-applied policy reaches the sidecar)',
  dependsOn: ['sidecar-ready'],
  hints: {
    'mtls-job-failed': {
      cause: 'the in-mesh verification Job did not run ({detail})',
      fix:
        'check that namespace {namespace} allows sidecar injection, that image {image} can be pulled ' +
        '(set `verify-client-image` for air-gapped clusters), and the Job RBAC in the README',
    },
    'mtls-calls-failed': {
      cause:
        'the mesh client could not call {target} ({detail}): application down, port not in the WorkloadGroup, ' +
        'or the cluster cannot route to the VM',
      fix:
        "check the application on the VM, the group's ports, and that the mesh reaches {address} " +
        '(network / east-west gateway)',
    },
    'mtls-service-unseen': {
      cause:
        "the verification pod's sidecar never received the VM's ServiceEntry ({detail}): istiod did not push it " +
        '(overloaded, or a Sidecar resource in {namespace} limits egress hosts)',
      fix:
        'check istiod (`istioctl proxy-status`), that no Sidecar resource in {namespace} hides ServiceEntries ' +
        'exported to the namespace, and that networking.istio.io/v1 ServiceEntry exists (Istio ≥ 1.22)',
    },
    'mtls-not-mutual': {
      cause:
        'the calls succeeded but the VM sidecar counted {delta} mutual-TLS request(s) for {succeeded} call(s): ' +
        'traffic bypassed the sidecar or arrived in plaintext (PERMISSIVE)',
      fix:
        'check inbound capture on the VM (ISTIO_INBOUND_PORTS / iptables) and that no DestinationRule disables ' +
        "ISTIO_MUTUAL for the VM's service; set `peer-authentication: strict`",
    },
    'plaintext-accepted': {
      cause:
        'plaintext accepted: PeerAuthentication not STRICT for this workload ' +
        '({accepted} of {total} plaintext calls answered)',
      fix:
        "apply a STRICT PeerAuthentication selecting the group's labels (`peer-authentication: strict`) " +
        'and check no port-level override sets PERMISSIVE/DISABLE',
    },
    'metrics-unavailable': {
      cause: "the VM sidecar's /stats/prometheus (15090) could not be read ({detail})",
      fix: 'check Envoy on the VM (`curl localhost:15090/stats/prometheus`)',
    },
  },
  phase: 'follow-up',
  // The mesh's mTLS mode (PeerAuthentication reads) is asked at once, alongside round trip 1.
  start: ({ ctx }) => Promise.resolve(isStrict(ctx)),
  prepare: runJobs,
  notRun: ({ ctx }) => withdrawFromGroupJob(ctx),
  collect: {
    // The "after" counters, when there was a target to call.
    followUp: ({ prepared }) =>
      (prepared.get('mesh-to-vm-mtls') as MtlsJobs).target ? followUpParts.mtlsCounters() : undefined,
  },
  evaluate: ({ ctx, options, probe, followUp, prepared }) => {
    const jobs = prepared.get('mesh-to-vm-mtls') as MtlsJobs;
    const { target, mtlsJob } = jobs;
    if (!target || !mtlsJob) {
      return failResult(ctx, {
        check: 'mesh-to-vm-mtls',
        seen: `no target for the mesh client: ${jobs.targetError}`,
        hint: 'mtls-calls-failed',
        vars: { target: '(none)', detail: jobs.targetError, address: ctx.workloadAddress },
        evidence: [],
        durationMs: 0,
      });
    }
    const evidence: MtlsEvidence = { target, strict: jobs.strictness.strict, mtlsJob, image: ctx.verifyClientImage };
    const before = probeOutput(probe).sections.get('prometheus');
    const after = followUp?.ok ? followUp.output.sections.get('prometheus') : undefined;
    if (before) evidence.before = before;
    if (after) evidence.after = after;
    if (jobs.plaintextJob) evidence.plaintextJob = jobs.plaintextJob;
    if (jobs.earlierPlaintextJobs.length > 0) evidence.earlierPlaintextJobs = jobs.earlierPlaintextJobs;
    const result = evaluateMeshToVmMtls(
      ctx,
      evidence,
      options,
      jobs.jobsDone - jobs.started + (followUp?.durationMs ?? 0),
    );
    result.evidence.push(jobs.strictness.note);
    return result;
  },
};
