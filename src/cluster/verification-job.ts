// The Kubernetes half of ADR 0002 and ADR 0005 (mesh→VM mTLS check): a short-lived Job in the VM group's
// namespace whose one container (`ivo-client`) calls one or more VMs of the group (issue 20: one Job per
// group) and prints `ivo-call <k> <n> <code>` per call to VM k and `ivo-done`. The mTLS attempt calls each
// VM through a short-lived ServiceEntry of its own (ADR 0005): a mesh client's sidecar uses mutual TLS only
// for a mesh service, never for a raw IP. We create the Job and the entries (owned by the Job), wait
// (bounded), read the pod's log, and always delete them (the entries by garbage collection when we delete
// their Job).
import { randomBytes } from 'node:crypto';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { sleep, type ClusterContext } from './context.js';
import { KubeRequestError } from './errors.js';
import { MANAGED_BY_LABELS } from './mesh-objects.js';

export const VERIFY_CONTAINER_NAME = 'ivo-client';
export { DEFAULT_VERIFY_CLIENT_IMAGE } from '../settings.js';

/**
 * The fixed script of ADR 0002/0005, for IVO_VMS VMs (issue 20: one Job per group); it reads only env vars.
 * VM k (1..IVO_VMS) has IVO_TARGET_URL_k, and for the mTLS attempt IVO_RESOLVE_k (curl's
 * `--resolve host:port:address`: the ServiceEntry host is in no DNS) and IVO_WAIT_FOR_k. First, while a VM's
 * IVO_WAIT_FOR_k line is not in the pod's own sidecar (`localhost:15000/clusters`, Envoy's admin) — the client
 * does not see the VM's endpoint yet — it looks again, at most IVO_WAIT_ATTEMPTS times, 1 s apart, printing
 * `ivo-wait <k> <n> seen|unseen`. Then it calls each VM IVO_REQUESTS times: `ivo-call <k> <n> <code>`.
 * `eval` only ever expands a variable named by the loop's own counter (never a value).
 */
export const VERIFY_CLIENT_SCRIPT =
  'n="${IVO_VMS:-1}"; a="${IVO_WAIT_ATTEMPTS:-1}"; seen=" "; w=0; left=1; ' +
  'while [ "$left" = 1 ] && [ "$w" -lt "$a" ]; do w=$((w+1)); left=0; k=0; ' +
  'while [ "$k" -lt "$n" ]; do k=$((k+1)); eval "f=\\${IVO_WAIT_FOR_$k:-}"; ' +
  'case "$seen" in *" $k "*) continue ;; esac; [ -n "$f" ] || continue; ' +
  'if curl -s --max-time 2 http://localhost:15000/clusters | grep -qF "$f"; then ' +
  'echo "ivo-wait $k $w seen"; seen="$seen$k "; else echo "ivo-wait $k $w unseen"; left=1; fi; done; ' +
  '[ "$left" = 1 ] && [ "$w" -lt "$a" ] && sleep 1; done; ' +
  'k=0; while [ "$k" -lt "$n" ]; do k=$((k+1)); eval "u=\\${IVO_TARGET_URL_$k}; r=\\${IVO_RESOLVE_$k:-}"; ' +
  'set --; if [ -n "$r" ]; then set -- --resolve "$r"; fi; ' +
  'i=0; while [ "$i" -lt "$IVO_REQUESTS" ]; do i=$((i+1)); ' +
  `c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$u" || true); ` +
  'echo "ivo-call $k $i ${c:-000}"; done; done; echo ivo-done';

/**
 * The client container runs restricted (Pod Security "restricted" for this container): non-root (uid 100 is
 * curlimages/curl's `curl_user`; a numeric uid lets the kubelet verify runAsNonRoot), no capabilities, no
 * privilege escalation, read-only root filesystem (the script writes nothing), seccomp RuntimeDefault.
 * Set on the container, not the pod: the injected istio-init container needs its own (root, NET_ADMIN).
 */
export const VERIFY_CONTAINER_SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: 100,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** ServiceEntry API (networking.istio.io/v1 exists from Istio 1.22). */
export const SERVICE_ENTRY_API = { group: 'networking.istio.io', version: 'v1', plural: 'serviceentries' } as const;

/** Label on the ServiceEntry: which VM it was made to verify (the Job carries the managed-by label too). */
export const VERIFIES_VM_LABEL = 'istio-vm-onboard/verifies-vm';

/**
 * ADR 0005: the mesh service the mTLS attempt calls — one VM as the only endpoint of a MESH_INTERNAL
 * ServiceEntry, with the group's service account (so its endpoint is mTLS-capable: tlsMode istio).
 */
export interface VerificationService {
  /** `<job name>.<namespace>.ivo-verify.internal`: resolvable by nobody, routed by the client sidecar. */
  host: string;
  /** The VM's workload address (the endpoint). */
  address: string;
  port: number;
  protocol: 'http' | 'tcp';
  serviceAccount: string;
  labels: Record<string, string>;
  vmName: string;
  /** `ivo-wait` attempts (1 s apart) until the client's sidecar has the endpoint. */
  waitAttempts: number;
}

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
  /** ADR 0005: create this ServiceEntry first and call the VM through it (the mTLS attempt). */
  service?: VerificationService;
  /** Revision of the injector (`istio.io/rev` on the pod); none: `sidecar.istio.io/inject`, the default revision. */
  revision?: string;
}

/** One `ivo-wait` line: whether the client's sidecar had the VM's endpoint yet. */
export interface VerificationWait {
  n: number;
  seen: boolean;
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
  /** ADR 0005: the attempts to see the VM's endpoint in the client's sidecar (empty without a service). */
  waits?: VerificationWait[];
  /** Issue 20: the Job's name when it called several VMs of the group (this result is one VM's part). */
  job?: string;
  /** The ServiceEntry the calls went through (ADR 0005), and the URL the Job called. */
  serviceEntry?: string;
  calledUrl?: string;
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

/** ADR 0005: the line of Envoy's `/clusters` admin output that shows the client has the VM's endpoint. */
export function envoyEndpointLine(service: Pick<VerificationService, 'host' | 'address' | 'port'>): string {
  const ip = service.address.includes(':') ? `[${service.address}]` : service.address;
  return `outbound|${service.port}||${service.host}::${ip}:${service.port}::`;
}

/** ADR 0005: `<job name>.<namespace>.ivo-verify.internal`. Pure. */
export function verificationServiceHost(jobName: string, namespace: string): string {
  return `${jobName}.${namespace}.ivo-verify.internal`;
}

/** The URL the mTLS attempt calls: the service host, the VM's port, the path of `targetUrl`. Pure. */
export function serviceUrl(service: Pick<VerificationService, 'host' | 'port'>, targetUrl: string): string {
  let path = '/';
  try {
    const u = new URL(targetUrl);
    path = u.pathname + u.search;
  } catch {
    /* keep "/" */
  }
  return `http://${service.host}:${service.port}${path}`;
}

/**
 * ADR 0005: the ServiceEntry of one verification (named like its Job). With `ownerJobUid` it is owned by
 * its Job: deleting the Job (propagation Background), or its ttlSecondsAfterFinished, garbage-collects it.
 * Pure.
 */
export function buildVerificationServiceEntry(input: {
  namespace: string;
  name: string;
  service: VerificationService;
  ownerJobUid?: string;
  /** The owning Job's name when it is not the entry's (issue 20: one Job for the group's entries). */
  ownerJobName?: string;
}): Record<string, unknown> & { metadata: { name: string; namespace: string; labels: Record<string, string> } } {
  const { service } = input;
  const tcp = service.protocol === 'tcp';
  return {
    apiVersion: `${SERVICE_ENTRY_API.group}/${SERVICE_ENTRY_API.version}`,
    kind: 'ServiceEntry',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels: { ...MANAGED_BY_LABELS, [VERIFIES_VM_LABEL]: dnsLabel(service.vmName).slice(0, 63) || 'vm' },
      ...(input.ownerJobUid
        ? {
            ownerReferences: [
              { apiVersion: 'batch/v1', kind: 'Job', name: input.ownerJobName ?? input.name, uid: input.ownerJobUid },
            ],
          }
        : {}),
    },
    spec: {
      hosts: [service.host],
      // A TCP listener is chosen by destination address: the VM's own address is the entry's VIP.
      // HTTP is routed by the Host header alone; no address, so no other traffic to the VM changes.
      ...(tcp ? { addresses: [service.address] } : {}),
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      exportTo: ['.'],
      ports: [
        {
          number: service.port,
          targetPort: service.port,
          name: `${tcp ? 'tcp' : 'http'}-verify`,
          protocol: tcp ? 'TCP' : 'HTTP',
        },
      ],
      endpoints: [{ address: service.address, serviceAccount: service.serviceAccount, labels: { ...service.labels } }],
    },
  };
}

/**
 * Issue 20: one Job for several VMs of a group. Each target is one VM's `VerificationJobInput` (its `name`
 * names its ServiceEntry); they share namespace, image, requests, injection and revision (the first's).
 */
export interface GroupVerificationJobInput {
  namespace: string;
  /** The Job's name (for one target, its own name). */
  name: string;
  targets: Omit<VerificationJobInput, 'timeoutMs'>[];
}

/** What the Job's time bounds grow by per VM beyond the first (its script calls the VMs one after another). */
export const JOB_SECONDS_PER_EXTRA_VM = 20;

/** Whether these inputs can share one Job: same namespace, image, calls, injection and revision. Pure. */
export function verificationBatchKey(
  input: Omit<VerificationJobInput, 'timeoutMs' | 'name' | 'targetUrl' | 'service'>,
): string {
  return JSON.stringify([input.namespace, input.image, input.requests, input.injectSidecar, input.revision ?? '']);
}

/** The Job of ADR 0002 (and 0005 when `service` is given) for one VM. Pure. */
export function buildVerificationJob(input: Omit<VerificationJobInput, 'timeoutMs'>): V1Job {
  return buildGroupVerificationJob({ namespace: input.namespace, name: input.name, targets: [input] });
}

/** The Job calling every target, VM k (from 1) with its own `IVO_*_k` variables. Pure. */
export function buildGroupVerificationJob(input: GroupVerificationJobInput): V1Job {
  const first = input.targets[0];
  if (!first) throw new Error('a verification Job needs at least one VM to call');
  const env = [
    { name: 'IVO_VMS', value: String(input.targets.length) },
    { name: 'IVO_REQUESTS', value: String(first.requests) },
  ];
  let waitAttempts = 0;
  for (const [index, target] of input.targets.entries()) {
    const k = index + 1;
    env.push({
      name: `IVO_TARGET_URL_${k}`,
      value: target.service ? serviceUrl(target.service, target.targetUrl) : target.targetUrl,
    });
    if (target.service) {
      const { host, address, port } = target.service;
      env.push(
        { name: `IVO_RESOLVE_${k}`, value: `${host}:${port}:${address.includes(':') ? `[${address}]` : address}` },
        { name: `IVO_WAIT_FOR_${k}`, value: envoyEndpointLine(target.service) },
      );
      waitAttempts = Math.max(waitAttempts, Math.max(1, Math.floor(target.service.waitAttempts)));
    }
  }
  if (waitAttempts > 0) env.push({ name: 'IVO_WAIT_ATTEMPTS', value: String(waitAttempts) });
  const injection: Record<string, string> = !first.injectSidecar
    ? { 'sidecar.istio.io/inject': 'false' }
    : first.revision
      ? { 'istio.io/rev': first.revision }
      : { 'sidecar.istio.io/inject': 'true' };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: input.name, namespace: input.namespace, labels: { ...MANAGED_BY_LABELS } },
    spec: {
      ttlSecondsAfterFinished: 300,
      backoffLimit: 0,
      activeDeadlineSeconds: 60 + JOB_SECONDS_PER_EXTRA_VM * (input.targets.length - 1),
      template: {
        metadata: {
          labels: { ...MANAGED_BY_LABELS, ...injection },
          // Native sidecar (init container with restartPolicy Always) so the Job can complete.
          ...(first.injectSidecar ? { annotations: { 'sidecar.istio.io/nativeSidecar': 'true' } } : {}),
        },
        spec: {
          serviceAccountName: 'default',
          restartPolicy: 'Never',
          containers: [
            {
              name: VERIFY_CONTAINER_NAME,
              image: first.image,
              command: ['sh', '-c', VERIFY_CLIENT_SCRIPT],
              env,
              securityContext: VERIFY_CONTAINER_SECURITY_CONTEXT,
            },
          ],
        },
      },
    },
  };
}

/**
 * VM k's `ivo-call <k> <n> <code>` and `ivo-wait <k> <n> seen|unseen` lines (k from 1, default the first),
 * whether `ivo-done` was printed, and the log without the other VMs' lines. Pure.
 */
export function parseVerificationLog(
  log: string,
  k = 1,
): {
  calls: VerificationCall[];
  done: boolean;
  waits: VerificationWait[];
  /** The log without the lines of the other VMs. */
  own: string;
} {
  const calls: VerificationCall[] = [];
  const waits: VerificationWait[] = [];
  const own: string[] = [];
  let done = false;
  for (const raw of log.split('\n')) {
    const line = raw.trim();
    const m = /^ivo-call (\d+) (\d+) (\d{3})$/.exec(line);
    const w = /^ivo-wait (\d+) (\d+) (seen|unseen)$/.exec(line);
    const vm = Number((m ?? w)?.[1] ?? k);
    if (vm !== k) continue;
    own.push(raw);
    if (m) calls.push({ n: Number(m[2]), code: m[3]! });
    else if (w) waits.push({ n: Number(w[2]), seen: w[3] === 'seen' });
    else if (line === 'ivo-done') done = true;
  }
  return { calls, done, waits, own: own.join('\n') };
}

export type JobPhase = { state: 'running' } | { state: 'complete' } | { state: 'failed'; reason: string };

/**
 * Finished or not, from the status of the Job's pod (backoffLimit 0: one pod, whose end is the Job's end).
 * Succeeded: complete; Failed: failed, with the pod's reason and each container that did not exit 0. Pure.
 */
export function podPhase(pod: V1Pod | undefined): JobPhase {
  const status = pod?.status;
  if (status?.phase === 'Succeeded') return { state: 'complete' };
  if (status?.phase !== 'Failed') return { state: 'running' };
  const exits = (status.containerStatuses ?? []).flatMap((c) => {
    const t = c.state?.terminated;
    return t && t.exitCode !== 0 ? [`container ${c.name} exited ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}`] : [];
  });
  const why = [status.reason, status.message].filter(Boolean).join(': ');
  return {
    state: 'failed',
    reason: `its pod ${pod?.metadata?.name ?? ''} failed: ${[why, ...exits].filter(Boolean).join('; ') || 'Failed'}`,
  };
}

function newer(a: V1Pod | undefined, b: V1Pod): boolean {
  return !a || String(b.metadata?.creationTimestamp ?? '') >= String(a.metadata?.creationTimestamp ?? '');
}

/** Watches of the Job's pods at most: the server or the connection may end a watch before the pod ends. */
const MAX_POD_WATCHES = 10;

/**
 * Issue 20: until the Job's pod (label job-name, set by the Job controller) finishes, disappears or
 * `deadline`: one watch of the namespace's pods with that label — a request for the Job's whole life that
 * also names the pod whose log is read (no watch of the Job, no list of pods). Watched again (at most
 * MAX_POD_WATCHES times, `pauseMs` apart) when the watch ends early. A watch without resourceVersion starts
 * with the pods as they are. With backoffLimit 0 the Job has one pod; the newest is followed.
 */
async function waitForJobPod(
  ctx: ClusterContext,
  namespace: string,
  name: string,
  deadline: number,
  pauseMs: number,
): Promise<{ phase: JobPhase; pod?: V1Pod }> {
  let phase: JobPhase = { state: 'running' };
  let pod: V1Pod | undefined;
  for (let watches = 0; phase.state === 'running' && watches < MAX_POD_WATCHES; watches++) {
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) break;
    if (watches > 0) await sleep(Math.min(pauseMs, remainingMs));
    const end = await ctx.transport.watch(
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
      { labelSelector: `job-name=${name}`, timeoutSeconds: Math.max(1, Math.ceil(remainingMs / 1000)) },
      (type, object) => {
        const seen = object as V1Pod;
        if (type === 'DELETED') {
          if (pod && seen.metadata?.uid !== pod.metadata?.uid) return false;
          pod = seen;
          phase = podPhase(seen);
          if (phase.state !== 'running') return true;
          phase = {
            state: 'failed',
            reason:
              `its pod ${seen.metadata?.name ?? ''} was deleted before it finished ` +
              "(the Job's activeDeadlineSeconds, or the Job or pod deleted by someone else)",
          };
          return true;
        }
        if (type !== 'ADDED' && type !== 'MODIFIED') return false;
        if (!newer(pod, seen) && seen.metadata?.uid !== pod?.metadata?.uid) return false;
        pod = seen;
        phase = podPhase(seen);
        return phase.state !== 'running';
      },
      Math.max(0, deadline - Date.now()),
    );
    if (end === 'timeout') break;
  }
  return pod ? { phase, pod } : { phase };
}

/** One VM's Job (ADR 0002/0005): a group Job of one, named and owning its ServiceEntry under `input.name`. */
export async function runVerificationJob(
  ctx: ClusterContext,
  input: VerificationJobInput,
  timing: { pollMs?: number } = {},
): Promise<VerificationJobResult> {
  const [result] = await runGroupVerificationJob(
    ctx,
    { namespace: input.namespace, name: input.name, targets: [input] },
    input.timeoutMs,
    timing,
  );
  return result!;
}

/**
 * Issue 20: one Job calling every target (VMs of one group), each mTLS target through a ServiceEntry of its
 * own (named by its input's `name`) owned by that Job; one result per target, in order. `timeoutMs` bounds the
 * wait for one VM; it grows by JOB_SECONDS_PER_EXTRA_VM per further VM, as the Job's own deadline does.
 */
export async function runGroupVerificationJob(
  ctx: ClusterContext,
  input: GroupVerificationJobInput,
  timeoutMs: number,
  timing: { pollMs?: number } = {},
): Promise<VerificationJobResult[]> {
  const { namespace, name, targets } = input;
  const pollMs = timing.pollMs ?? 500;
  const totalTimeoutMs = timeoutMs + JOB_SECONDS_PER_EXTRA_VM * 1000 * (targets.length - 1);
  const deadline = Date.now() + totalTimeoutMs;
  let created = false;
  /** The entries created (their names): owned by the Job, they go with it. */
  const entries: string[] = [];
  /** The Job's uid, when its create answered: the ServiceEntries are then owned by the Job (no DELETE of their own). */
  let jobUid: string | undefined;
  try {
    // The Job first, then its ServiceEntries (owned by the Job): the Job's script waits (IVO_WAIT_FOR_k, bounded)
    // until its sidecar has each entry's endpoint, so the entries may come a moment after the Job.
    try {
      const job = await ctx.transport.call((o) =>
        ctx.batch.createNamespacedJob({ namespace, body: buildGroupVerificationJob(input) }, o),
      );
      jobUid = job.metadata?.uid || undefined;
    } catch (err) {
      // A retried create whose first attempt went through: the Job (unique name) exists.
      if (!(err instanceof KubeRequestError && err.kind === 'conflict' && err.attempts > 1)) throw err;
    }
    created = true;
    for (const target of targets) {
      if (!target.service) continue;
      const body = buildVerificationServiceEntry({
        namespace,
        name: target.name,
        service: target.service,
        ...(jobUid ? { ownerJobUid: jobUid, ownerJobName: name } : {}),
      });
      try {
        await ctx.transport.call((o) =>
          ctx.custom.createNamespacedCustomObject({ ...SERVICE_ENTRY_API, namespace, body }, o),
        );
      } catch (err) {
        if (!(err instanceof KubeRequestError && err.kind === 'conflict' && err.attempts > 1)) throw err;
      }
      entries.push(target.name);
    }

    const { phase, pod } = await waitForJobPod(ctx, namespace, name, deadline, pollMs);
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
    const shared = targets.length > 1 ? ` (one Job for ${targets.length} VMs of the group)` : '';
    let reason: string | undefined;
    if (phase.state === 'running') {
      reason =
        `the verification Job ${namespace}/${name}${shared} did not finish ` +
        `within ${Math.round(totalTimeoutMs / 1000)} s` +
        (pod?.status?.phase
          ? ` (pod ${podName} is ${pod.status.phase})`
          : podName
            ? ''
            : ' (no pod was created: image pull, quota or admission?)') +
        (logError ? `; log: ${logError}` : '');
    } else if (phase.state === 'failed') {
      reason = `the verification Job ${namespace}/${name}${shared} failed: ${phase.reason}`;
    }
    return targets.map((target, index) => {
      const { calls, done, waits, own } = parseVerificationLog(logs, index + 1);
      const result: VerificationJobResult = { succeeded: false, calls, logs: own };
      if (targets.length > 1) result.job = name;
      if (target.service) {
        result.waits = waits;
        result.serviceEntry = target.name;
        result.calledUrl = serviceUrl(target.service, target.targetUrl);
      }
      if (podName) result.podName = podName;
      if (reason) result.reason = reason;
      else if (!done) {
        result.reason = logError
          ? `the verification Job ${namespace}/${name}${shared} completed but its log could not be read: ${logError}`
          : `the verification Job ${namespace}/${name}${shared} completed but its log has no "ivo-done" line`;
      } else result.succeeded = true;
      return result;
    });
  } finally {
    let jobDeleted = false;
    if (created) {
      try {
        await ctx.transport.callOptional((o) =>
          ctx.batch.deleteNamespacedJob({ namespace, name, propagationPolicy: 'Background' }, o),
        );
        jobDeleted = true;
      } catch {
        // ttlSecondsAfterFinished (300 s) removes it anyway; the result above is what matters.
      }
    }
    // Entries the Job owns go with the Job (garbage collection); otherwise, or when the Job could not be
    // deleted, delete them ourselves.
    if (!(jobUid && jobDeleted)) {
      for (const entry of entries) {
        try {
          await ctx.transport.callOptional((o) =>
            ctx.custom.deleteNamespacedCustomObject({ ...SERVICE_ENTRY_API, namespace, name: entry }, o),
          );
        } catch {
          // Left behind: labelled managed-by istio-vm-onboard and verifies-vm (ADR 0005 says how to find it).
        }
      }
    }
  }
}
