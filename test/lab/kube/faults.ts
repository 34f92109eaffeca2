// Fault switches of the Kubernetes API double (registered by the control plane into the lab's registry).
import type { FaultDefinition } from '../fault-types.js';

/** What the faults need from the double (kept narrow so the faults are easy to test). */
export interface KubeFaultControls {
  forbidUser(user: string, forbidden: boolean): void;
  actionUser: string;
  failNextRequests(count: number): void;
  healServerErrors(): void;
  setLatency(ms: number): void;
  setAutoregistration(enabled: boolean): void;
  setWorkloadCrdsInstalled(installed: boolean): void;
  setEastWestMode(mode: 'ip' | 'hostname'): void;
}

export interface KubeFaultOptions {
  /** kube-500: how many requests fail (default: every request until healed). */
  serverErrorCount?: number;
  /** kube-slow: added latency per request (default 2000 ms). */
  latencyMs?: number;
}

export const KUBE_FAULT_NAMES = [
  'kube-403',
  'kube-500',
  'kube-slow',
  'autoregistration-off',
  'crd-missing',
  'eastwest-hostname',
] as const;

export function kubeFaults(c: KubeFaultControls, o: KubeFaultOptions = {}): FaultDefinition[] {
  const lab = (name: string, description: string, apply: () => void, heal: () => void): FaultDefinition => ({
    name,
    scope: 'lab',
    description,
    apply: async () => apply(),
    heal: async () => heal(),
  });
  return [
    lab(
      'kube-403',
      `every resource request of the action's user (${c.actionUser}) is forbidden by RBAC (403); SelfSubjectAccessReview answers allowed=false`,
      () => c.forbidUser(c.actionUser, true),
      () => c.forbidUser(c.actionUser, false),
    ),
    lab(
      'kube-500',
      o.serverErrorCount === undefined
        ? 'every API request fails with 500 InternalError until healed'
        : `the next ${o.serverErrorCount} API requests fail with 500 InternalError`,
      () => c.failNextRequests(o.serverErrorCount ?? Number.POSITIVE_INFINITY),
      () => c.healServerErrors(),
    ),
    lab(
      'kube-slow',
      `every API request takes ${o.latencyMs ?? 2000} ms longer`,
      () => c.setLatency(o.latencyMs ?? 2000),
      () => c.setLatency(0),
    ),
    lab(
      'autoregistration-off',
      'istiod Deployment env PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false (the real control plane restarts istiod with it: istio/control-plane.ts)',
      () => c.setAutoregistration(false),
      () => c.setAutoregistration(true),
    ),
    lab(
      'crd-missing',
      'the WorkloadGroup/WorkloadEntry CRDs are deleted (their objects with them); networking.istio.io leaves discovery',
      () => c.setWorkloadCrdsInstalled(false),
      () => c.setWorkloadCrdsInstalled(true),
    ),
    lab(
      'eastwest-hostname',
      'istio-eastwestgateway LB status switches from ingress ip to hostname (AWS ELB style)',
      () => c.setEastWestMode('hostname'),
      () => c.setEastWestMode('ip'),
    ),
  ];
}
