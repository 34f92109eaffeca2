// The Kubernetes half of ADR 0002 (mesh→VM mTLS check): a short-lived Job in the VM group's
// namespace whose one container (`ivo-client`) calls the VM and prints `ivo-call <n> <code>` per call
// and `ivo-done`. We create it, wait (bounded), read the pod's log, and always delete it.
import { randomBytes } from 'node:crypto';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { sleep, type ClusterContext } from './context.js';
import { KubeRequestError } from './errors.js';
import { MANAGED_BY_LABEL } from './mesh-objects.js';

export const VERIFY_CONTAINER_NAME = 'ivo-client';
export const DEFAULT_VERIFY_CLIENT_IMAGE = 'curlimages/curl:8.11.1';

/** The fixed script of ADR 0002; it reads only IVO_TARGET_URL and IVO_REQUESTS. */
export const VERIFY_CLIENT_SCRIPT =
  'i=0; while [ "$i" -lt "$IVO_REQUESTS" ]; do i=$((i+1)); ' +
  `c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$IVO_TARGET_URL" || true); ` +
  'echo "ivo-call $i ${c:-000}"; done; echo ivo-done';

export interface VerificationJobInput {
  namespace: string;
  /** Job name, e.g. from verificationJobName(vm). */
  name: string;
  image: string;
  targetUrl: string;
  requests: number;
  /** true: the mTLS attempt (sidecar injected); false: the plaintext attempt under STRICT. */
  injectSidecar: boolean;
  /** Bound on waiting for the Job to finish. */
  timeoutMs: number;
}

export interface VerificationCall {
  n: number;
  /** HTTP status code as printed by curl; '000' when the call failed. */
  code: string;
}

export interface VerificationJobResult {
  /** The Job completed and its log ended with `ivo-done`. Says nothing about the calls' codes. */
  succeeded: boolean;
  calls: VerificationCall[];
  logs: string;
  podName?: string;
  /** Why it did not succeed. */
  reason?: string;
}

function dnsLabel(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** `ivo-verify-<vm>-<random>`, at most 63 characters (Job names become a pod label value). Pure given `random`. */
export function verificationJobName(
  vmName: string,
  random: string = randomBytes(3).toString('hex'),
  prefix = 'ivo-verify',
): string {
  const suffix = dnsLabel(random) || 'x';
  const room = 63 - prefix.length - suffix.length - 2;
  const vm = dnsLabel(vmName).slice(0, Math.max(1, room)).replace(/-+$/, '') || 'vm';
  return `${prefix}-${vm}-${suffix}`;
}

/** The Job of ADR 0002. Pure. */
export function buildVerificationJob(input: Omit<VerificationJobInput, 'timeoutMs'>): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: input.name, namespace: input.namespace, labels: { ...MANAGED_BY_LABEL } },
    spec: {
      ttlSecondsAfterFinished: 300,
      backoffLimit: 0,
      activeDeadlineSeconds: 60,
      template: {
        metadata: {
          labels: { ...MANAGED_BY_LABEL, 'sidecar.istio.io/inject': input.injectSidecar ? 'true' : 'false' },
          // Native sidecar (init container with restartPolicy Always) so the Job can complete.
          ...(input.injectSidecar ? { annotations: { 'sidecar.istio.io/nativeSidecar': 'true' } } : {}),
        },
        spec: {
          serviceAccountName: 'default',
          restartPolicy: 'Never',
          containers: [
            {
              name: VERIFY_CONTAINER_NAME,
              image: input.image,
              command: ['sh', '-c', VERIFY_CLIENT_SCRIPT],
              env: [
                { name: 'IVO_TARGET_URL', value: input.targetUrl },
                { name: 'IVO_REQUESTS', value: String(input.requests) },
              ],
            },
          ],
        },
      },
    },
  };
}

/** `ivo-call <n> <code>` lines and whether `ivo-done` was printed. Pure. */
export function parseVerificationLog(log: string): { calls: VerificationCall[]; done: boolean } {
  const calls: VerificationCall[] = [];
  let done = false;
  for (const raw of log.split('\n')) {
    const line = raw.trim();
    const m = /^ivo-call (\d+) (\d{3})$/.exec(line);
    if (m) calls.push({ n: Number(m[1]), code: m[2]! });
    else if (line === 'ivo-done') done = true;
  }
  return { calls, done };
}

export type JobPhase = { state: 'running' } | { state: 'complete' } | { state: 'failed'; reason: string };

/** Finished or not, from Job status (conditions first, counters as fallback). Pure. */
export function jobPhase(job: V1Job | undefined): JobPhase {
  const status = job?.status;
  const cond = (type: string) => status?.conditions?.find((c) => c.type === type && c.status === 'True');
  const failed = cond('Failed');
  if (failed)
    return { state: 'failed', reason: [failed.reason, failed.message].filter(Boolean).join(': ') || 'Failed' };
  if (cond('Complete') || (status?.succeeded ?? 0) >= 1) return { state: 'complete' };
  if ((status?.failed ?? 0) >= 1) return { state: 'failed', reason: 'pod failed' };
  return { state: 'running' };
}

function newestPod(pods: V1Pod[]): V1Pod | undefined {
  return [...pods].sort((a, b) =>
    String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')),
  )[0];
}

export async function runVerificationJob(
  ctx: ClusterContext,
  input: VerificationJobInput,
  timing: { pollMs?: number } = {},
): Promise<VerificationJobResult> {
  const { namespace, name } = input;
  const pollMs = timing.pollMs ?? 500;
  const deadline = Date.now() + input.timeoutMs;
  let created = false;
  try {
    try {
      await ctx.transport.call((o) =>
        ctx.batch.createNamespacedJob({ namespace, body: buildVerificationJob(input) }, o),
      );
    } catch (err) {
      // A retried create whose first attempt went through: the Job (unique name) exists.
      if (!(err instanceof KubeRequestError && err.kind === 'conflict' && err.attempts > 1)) throw err;
    }
    created = true;

    let phase: JobPhase = { state: 'running' };
    // A Job's pod usually ends within a second or two: look soon, then less often (up to pollMs).
    let interval = Math.min(100, pollMs);
    const maxPolls = Math.ceil(input.timeoutMs / 100) + 1;
    for (let polls = 0; phase.state === 'running' && Date.now() < deadline && polls < maxPolls; polls++) {
      await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
      interval = Math.min(pollMs, Math.round(interval * 1.5));
      const job = await ctx.transport.callOptional((o) => ctx.batch.readNamespacedJob({ namespace, name }, o));
      if (!job) {
        phase = { state: 'failed', reason: 'the Job disappeared before it finished' };
        break;
      }
      phase = jobPhase(job);
    }

    const pods = await ctx.transport.call((o) =>
      ctx.core.listNamespacedPod({ namespace, labelSelector: `job-name=${name}` }, o),
    );
    const pod = newestPod(pods.items ?? []);
    const podName = pod?.metadata?.name;
    let logs = '';
    let logError: string | undefined;
    if (podName) {
      try {
        logs =
          (await ctx.transport.callOptional((o) =>
            ctx.core.readNamespacedPodLog({ namespace, name: podName, container: VERIFY_CONTAINER_NAME }, o),
          )) ?? '';
      } catch (err) {
        // 400 while the container has not started, 403 without pods/log: report, do not hide the Job's state.
        if (!(err instanceof KubeRequestError)) throw err;
        logError = err.serverMessage ?? err.message;
      }
    }
    const { calls, done } = parseVerificationLog(logs);
    const result: VerificationJobResult = { succeeded: false, calls, logs };
    if (podName) result.podName = podName;
    if (phase.state === 'running') {
      result.reason =
        `the verification Job ${namespace}/${name} did not finish within ${Math.round(input.timeoutMs / 1000)} s` +
        (pod?.status?.phase
          ? ` (pod ${podName} is ${pod.status.phase})`
          : podName
            ? ''
            : ' (no pod was created: image pull, quota or admission?)') +
        (logError ? `; log: ${logError}` : '');
    } else if (phase.state === 'failed') {
      result.reason = `the verification Job ${namespace}/${name} failed: ${phase.reason}`;
    } else if (!done) {
      result.reason = logError
        ? `the verification Job ${namespace}/${name} completed but its log could not be read: ${logError}`
        : `the verification Job ${namespace}/${name} completed but its log has no "ivo-done" line`;
    } else {
      result.succeeded = true;
    }
    return result;
  } finally {
    if (created) {
      try {
        await ctx.transport.callOptional((o) =>
          ctx.batch.deleteNamespacedJob({ namespace, name, propagationPolicy: 'Background' }, o),
        );
      } catch {
        // ttlSecondsAfterFinished (300 s) removes it anyway; the result above is what matters.
      }
    }
  }
}
