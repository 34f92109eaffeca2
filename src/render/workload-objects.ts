// The Kubernetes objects for a group: its WorkloadGroup (template for auto-registered VMs) and,
// for static registration, one WorkloadEntry per VM. Plain objects, ready for server-side apply.

import type { GroupSpec, VmSpec } from '../inventory/types.js';

export const ISTIO_NETWORKING_API_VERSION = 'networking.istio.io/v1';
/** Label on every object we create, so offboarding and drift checks can find them. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'istio-vm-onboard';
export const HEALTH_CHECKS_ANNOTATION = 'proxy.istio.io/health-checks-enabled';

export interface WorkloadGroupObject {
  apiVersion: typeof ISTIO_NETWORKING_API_VERSION;
  kind: 'WorkloadGroup';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: {
    metadata: { labels: Record<string, string>; annotations: Record<string, string> };
    template: { serviceAccount: string; network?: string; ports?: Record<string, number> };
    probe?: GroupSpec['probe'];
  };
}

export interface WorkloadEntryObject {
  apiVersion: typeof ISTIO_NETWORKING_API_VERSION;
  kind: 'WorkloadEntry';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: {
    address: string;
    labels: Record<string, string>;
    serviceAccount: string;
    network?: string;
    ports?: Record<string, number>;
  };
}

function withTemplateExtras<T extends { network?: string; ports?: Record<string, number> }>(
  target: T,
  group: GroupSpec,
): T {
  if (group.network !== '') target.network = group.network;
  if (Object.keys(group.ports).length > 0) target.ports = { ...group.ports };
  return target;
}

/** networking.istio.io/v1 WorkloadGroup for the group (what `istioctl x workload group create` makes). */
export function buildWorkloadGroup(group: GroupSpec): WorkloadGroupObject {
  const object: WorkloadGroupObject = {
    apiVersion: ISTIO_NETWORKING_API_VERSION,
    kind: 'WorkloadGroup',
    metadata: { name: group.name, namespace: group.namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    spec: {
      metadata: { labels: { ...group.labels }, annotations: { ...group.annotations } },
      template: withTemplateExtras<WorkloadGroupObject['spec']['template']>(
        { serviceAccount: group.serviceAccount },
        group,
      ),
    },
  };
  if (group.probe !== undefined) object.spec.probe = structuredClone(group.probe);
  return object;
}

/**
 * networking.istio.io/v1 WorkloadEntry for one VM (static registration). `address` is the VM's
 * workload address (inventory internalIP, or the address learned from the VM). Labels are the
 * group's labels with the VM's own labels on top.
 */
export function buildWorkloadEntry(group: GroupSpec, vm: VmSpec, address: string): WorkloadEntryObject {
  const labels = { ...group.labels, ...vm.labels };
  return {
    apiVersion: ISTIO_NETWORKING_API_VERSION,
    kind: 'WorkloadEntry',
    metadata: {
      name: vm.name,
      namespace: group.namespace,
      labels: { ...labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
      // istiod writes health only into a static entry annotated so, for the proxy whose
      // ISTIO_META_WORKLOAD_ENTRY names it (pilot/pkg/autoregistration/internal/health, controller.go OnConnect).
      ...(group.probe !== undefined ? { annotations: { [HEALTH_CHECKS_ANNOTATION]: 'true' } } : {}),
    },
    spec: withTemplateExtras<WorkloadEntryObject['spec']>(
      { address, labels, serviceAccount: group.serviceAccount },
      group,
    ),
  };
}
