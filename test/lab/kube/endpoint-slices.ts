// The EndpointSlice controller of kube-controller-manager, as the lab needs it: for every Service with a
// selector, one EndpointSlice (label kubernetes.io/service-name, owned by the Service) listing the Pods of
// its namespace that match the selector and have an IP, with their readiness, a targetRef to the Pod and
// the Service's ports resolved to the Pods' ports (a named targetPort through the containers' ports).
// istiod builds a Service's endpoints from these slices (pilot/pkg/serviceregistry/kube/controller/
// endpointslice.go) and waits for the Pod a targetRef names before it uses the endpoint.
import type { KubeObject, ObjectStore, StoreEvent } from './store.js';

export const ENDPOINT_SLICES = 'endpointslices.discovery.k8s.io';
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
const MANAGED_BY = 'endpointslice-controller.k8s.io';
const MANAGER = 'endpointslice-controller';

interface ServicePort {
  name?: string;
  port: number;
  protocol?: string;
  appProtocol?: string;
  targetPort?: number | string;
}

interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

function selectorOf(service: KubeObject): Record<string, string> | undefined {
  const selector = service.spec?.selector as Record<string, string> | undefined;
  return selector && Object.keys(selector).length > 0 ? selector : undefined;
}

function matches(labels: Record<string, string> | undefined, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function podReady(pod: KubeObject): boolean {
  const conditions = (pod.status?.conditions ?? []) as Array<{ type: string; status: string }>;
  const ready = conditions.find((c) => c.type === 'Ready');
  return ready ? ready.status === 'True' : pod.status?.phase === 'Running';
}

function podIP(pod: KubeObject): string | undefined {
  const ip = pod.status?.podIP as string | undefined;
  const phase = pod.status?.phase as string | undefined;
  return ip && phase !== 'Succeeded' && phase !== 'Failed' && !pod.metadata.deletionTimestamp ? ip : undefined;
}

/** The Pod port a Service port sends to: a number as is, a name through the Pod's container ports. */
function targetPortOf(port: ServicePort, pod: KubeObject | undefined): number | undefined {
  const target = port.targetPort ?? port.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  const containers = (pod?.spec?.containers ?? []) as Array<{ ports?: ContainerPort[] }>;
  for (const c of containers)
    for (const p of c.ports ?? [])
      if (p.name === target && (p.protocol ?? 'TCP') === (port.protocol ?? 'TCP')) return p.containerPort;
  return undefined;
}

/** What the slice of `service` must hold now, from the Pods in the store. */
export function desiredSlice(service: KubeObject, pods: KubeObject[]): Pick<KubeObject, 'endpoints' | 'ports'> {
  const selector = selectorOf(service);
  const selected = selector ? pods.filter((p) => matches(p.metadata.labels, selector) && podIP(p) !== undefined) : [];
  const servicePorts = (service.spec?.ports ?? []) as ServicePort[];
  const ports = servicePorts.flatMap((p) => {
    const port = targetPortOf(p, selected[0]);
    if (port === undefined) return [];
    return [
      {
        ...(p.name ? { name: p.name } : { name: '' }),
        port,
        protocol: p.protocol ?? 'TCP',
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      },
    ];
  });
  const endpoints = selected.map((pod) => {
    const ready = podReady(pod);
    return {
      addresses: [podIP(pod) as string],
      conditions: { ready, serving: ready, terminating: false },
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName as string } : {}),
      targetRef: {
        kind: 'Pod',
        namespace: pod.metadata.namespace as string,
        name: pod.metadata.name,
        uid: pod.metadata.uid as string,
      },
    };
  });
  return { endpoints, ports };
}

function sliceOf(store: ObjectStore, namespace: string, service: string): KubeObject | undefined {
  return store.list(ENDPOINT_SLICES, { namespace, labelSelector: `${SERVICE_NAME_LABEL}=${service}` })[0];
}

/** Brings the slice of one Service in line with its Pods (creates, updates or leaves it). */
function syncService(store: ObjectStore, service: KubeObject): void {
  const namespace = service.metadata.namespace as string;
  const existing = sliceOf(store, namespace, service.metadata.name);
  if (!selectorOf(service)) return;
  const want = desiredSlice(service, store.list('pods', { namespace }));
  if (existing) {
    if (
      JSON.stringify(existing.endpoints ?? []) === JSON.stringify(want.endpoints) &&
      JSON.stringify(existing.ports ?? []) === JSON.stringify(want.ports)
    )
      return;
    store.update(ENDPOINT_SLICES, { ...existing, ...want }, { manager: MANAGER });
    return;
  }
  store.create(
    ENDPOINT_SLICES,
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: '',
        generateName: `${service.metadata.name}-`,
        namespace,
        labels: { [SERVICE_NAME_LABEL]: service.metadata.name, [MANAGED_BY_LABEL]: MANAGED_BY },
        ownerReferences: [
          {
            apiVersion: 'v1',
            kind: 'Service',
            name: service.metadata.name,
            uid: service.metadata.uid as string,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      addressType: 'IPv4',
      ...want,
    },
    { manager: MANAGER },
  );
}

/**
 * Keeps EndpointSlices in step with Services and Pods. Like the real controller it acts after the write
 * that triggered it (never inside it, so watchers see events in resourceVersion order): every write of a
 * Service or a Pod queues its namespace, and the queue is synced on the next turn of the event loop.
 * Returns the function that stops it.
 */
export function startEndpointSliceController(store: ObjectStore, onError: (err: unknown) => void): () => void {
  const pending = new Set<string>();
  let scheduled: NodeJS.Immediate | undefined;
  const flush = () => {
    scheduled = undefined;
    const namespaces = [...pending];
    pending.clear();
    for (const namespace of namespaces)
      for (const service of store.list('services', { namespace })) {
        try {
          syncService(store, service);
        } catch (err) {
          onError(err);
        }
      }
  };
  const queue = (namespace: string) => {
    pending.add(namespace);
    scheduled ??= setImmediate(flush);
  };
  for (const s of store.list('services')) queue(s.metadata.namespace as string);
  const unwatch = store.watch('*', (e: StoreEvent) => {
    if (e.kindKey !== 'services' && e.kindKey !== 'pods') return;
    if (e.kindKey === 'services' && e.type === 'DELETED') return; // its slice goes with it (ownerReference)
    queue(e.object.metadata.namespace as string);
  });
  return () => {
    unwatch();
    if (scheduled) clearImmediate(scheduled);
    scheduled = undefined;
    pending.clear();
  };
}
