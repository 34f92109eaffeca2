// Helpers for Job-like controllers (the verification-Job runner of ADR 0002 lives in test/lab/mesh/):
// build the Pod a Job controller would create, and the Job/Pod status a finished run has.
import { randomBytes } from 'node:crypto';
import type { KubeObject } from './store.js';

export const JOBS = 'jobs.batch';
export const PODS = 'pods';

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The Pod the Job controller creates for `job`: template + job labels + controller ownerReference. */
export function podFromJob(job: KubeObject): KubeObject {
  const template = (job.spec?.template ?? {}) as {
    metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
    spec?: Record<string, unknown>;
  };
  const uid = job.metadata.uid ?? '';
  const suffix = randomBytes(4)
    .toString('hex')
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 5);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${job.metadata.name}-${suffix}`,
      namespace: job.metadata.namespace as string,
      labels: {
        ...(template.metadata?.labels ?? {}),
        'batch.kubernetes.io/controller-uid': uid,
        'batch.kubernetes.io/job-name': job.metadata.name,
        'controller-uid': uid,
        'job-name': job.metadata.name,
      },
      ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
      ownerReferences: [
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          name: job.metadata.name,
          uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: { restartPolicy: 'Never', serviceAccountName: 'default', ...(template.spec ?? {}) },
  };
}

/** Pod status for a phase (Running, Succeeded, Failed) with per-container states. */
export function podStatus(
  pod: KubeObject,
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed',
  exitCode = phase === 'Failed' ? 1 : 0,
): Record<string, unknown> {
  const t = now();
  const containers = ((pod.spec?.containers ?? []) as Array<{ name: string; image?: string }>).map((c) => ({
    name: c.name,
    image: c.image ?? '',
    imageID: '',
    ready: phase === 'Running',
    restartCount: 0,
    started: phase === 'Running',
    state:
      phase === 'Running'
        ? { running: { startedAt: t } }
        : phase === 'Pending'
          ? { waiting: { reason: 'ContainerCreating' } }
          : {
              terminated: {
                exitCode,
                reason: phase === 'Succeeded' ? 'Completed' : 'Error',
                startedAt: t,
                finishedAt: t,
              },
            },
  }));
  return {
    phase,
    startTime: t,
    podIP: '10.244.0.50',
    hostIP: '172.18.0.2',
    containerStatuses: containers,
    qosClass: 'BestEffort',
  };
}

/** Job status after its one pod finished. */
export function jobFinishedStatus(succeeded: boolean, message = ''): Record<string, unknown> {
  const t = now();
  const conditions = succeeded
    ? [
        { type: 'SuccessCriteriaMet', status: 'True', lastProbeTime: t, lastTransitionTime: t },
        { type: 'Complete', status: 'True', lastProbeTime: t, lastTransitionTime: t },
      ]
    : [
        {
          type: 'FailureTarget',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: message || 'Job has reached the specified backoff limit',
          lastProbeTime: t,
          lastTransitionTime: t,
        },
        {
          type: 'Failed',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: message || 'Job has reached the specified backoff limit',
          lastProbeTime: t,
          lastTransitionTime: t,
        },
      ];
  return {
    startTime: t,
    ...(succeeded ? { completionTime: t, succeeded: 1 } : { failed: 1 }),
    active: 0,
    ready: 0,
    terminating: 0,
    uncountedTerminatedPods: {},
    conditions,
  };
}

/** Job status while its pod runs. */
export function jobActiveStatus(): Record<string, unknown> {
  return { startTime: now(), active: 1, ready: 0, terminating: 0, uncountedTerminatedPods: {} };
}
