// The Pod a cluster would run for an istiod Deployment, and its status as the kubelet reports it: the lab runs
// istiod as a process, and this object gives its Service an endpoint (EndpointSlice controller).
import { createHash } from 'node:crypto';
import type { KubeObject } from '../kube/index.js';

/** The Pod of the istiod Deployment (its template's labels and spec); its address comes with its status. */
export function istiodPodObject(deployment: KubeObject): KubeObject {
  const template = (deployment.spec?.template ?? {}) as {
    metadata?: { labels?: Record<string, string> };
    spec?: object;
  };
  const hash = createHash('sha256').update(JSON.stringify(template)).digest('hex');
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${deployment.metadata.name}-${hash.slice(0, 10)}-${hash.slice(10, 15)}`,
      namespace: deployment.metadata.namespace,
      labels: { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash.slice(0, 10) },
    },
    spec: { ...(template.spec ?? {}), nodeName: 'lab-node' },
  };
}

/** A running Pod's status at `address`, Ready or not (what the kubelet reports from the readiness probe). */
export function podRunningStatus(address: string, ready: boolean): object {
  const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const condition = (type: string, status: boolean) => ({
    type,
    status: status ? 'True' : 'False',
    lastTransitionTime: at,
  });
  return {
    phase: 'Running',
    podIP: address,
    podIPs: [{ ip: address }],
    hostIP: address,
    conditions: [condition('Initialized', true), condition('ContainersReady', ready), condition('Ready', ready)],
  };
}
