// How an in-mesh client's sidecar routes one outbound call, as Istio configures Envoy — the lab's rules
// for the verification Job's pod (mesh/job-runner.ts). What they follow, in Istio's source
// (istio.io/istio, pilot/pkg/...):
//  - HTTP ports: one wildcard listener per port (`0.0.0.0_<port>`) routed by the Host header; the route's
//    virtual hosts list service hostnames (and their alternative forms) and service VIPs only
//    (networking/core/httproute.go: generateVirtualHostDomains). Anything else matches the catch-all
//    `*` virtual host → PassthroughCluster (httproute.go: buildCatchAllVirtualHost), which has no TLS.
//  - TCP ports: a listener per service VIP and port; a destination that is no service VIP falls through
//    to PassthroughCluster (networking/core/listener_builder.go).
//  - A service's cluster `outbound|<port>||<host>` uses Istio mutual TLS ("auto mTLS") when its endpoints
//    are mTLS-capable (tlsMode istio) and the service is not MESH_EXTERNAL (networking/core/cluster_tls.go),
//    with SNI `outbound_.<port>_._.<host>` (model/service.go: BuildDNSSrvSubsetKey).
//  - A WorkloadEntry (or a ServiceEntry's inline endpoint) is tlsMode istio when its label
//    security.istio.io/tlsMode says so, else when it has a service account
//    (serviceregistry/serviceentry/conversion.go: getTLSModeFromWorkloadEntry).
//  - A new ServiceEntry reaches a sidecar only after istiod's debounce and push: the lab makes an object
//    visible `propagationMs` after it first saw it.
// Not modelled: DestinationRules, Sidecar resources, headless Services, DNS capture on the client pod,
// PeerAuthentication DISABLE on the destination (which also turns auto mTLS off).
import type { KubeObject, ObjectStore } from '../kube/index.js';
import type { MeshService } from '../istiod/server.js';

export const SERVICE_ENTRIES = 'serviceentries.networking.istio.io';
const WORKLOAD_ENTRIES = 'workloadentries.networking.istio.io';
const SERVICES = 'services';
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

export interface MeshEndpoint {
  address: string;
  port: number;
  tlsMode: 'istio' | 'disabled';
}

/** One (host, port) of a mesh service as a client sidecar sees it. */
export interface MeshServicePort {
  host: string;
  port: number;
  protocol: 'HTTP' | 'TCP';
  vips: string[];
  meshExternal: boolean;
  endpoints: MeshEndpoint[];
}

/** The route one call took: a service cluster (with or without mTLS) or PassthroughCluster. */
export interface RouteDecision {
  cluster: string;
  /** Where the connection goes. */
  address: string;
  port: number;
  /** Istio SNI when the cluster uses mutual TLS. */
  sni?: string;
  /** true: the listener for this port is HTTP (Envoy answers 503 when the upstream fails). */
  http: boolean;
  /** false: no healthy endpoint (Envoy: 503 "no healthy upstream"). */
  hasEndpoint: boolean;
}

function isHttpProtocol(p: string | undefined, name: string | undefined): boolean {
  const proto = (p ?? '').toUpperCase();
  if (proto) return ['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB'].includes(proto);
  return /^(http|http2|grpc|grpc-web)(-|$)/.test(name ?? '');
}

function tlsModeOf(labels: Record<string, string> | undefined, serviceAccount: string | undefined) {
  const v = labels?.[TLS_MODE_LABEL];
  if (v !== undefined) return v === 'istio' ? 'istio' : 'disabled';
  return serviceAccount ? 'istio' : 'disabled';
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function safeList(store: ObjectStore, kind: string, namespace?: string): KubeObject[] {
  try {
    return store.list(kind, namespace === undefined ? {} : { namespace });
  } catch {
    return []; // the CRD is not installed
  }
}

interface WeSpec {
  address?: string;
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  serviceAccount?: string;
}

function workloadEntryEndpoints(
  store: ObjectStore,
  namespace: string,
  selector: Record<string, string> | undefined,
  portName: string | undefined,
  targetPort: number,
): MeshEndpoint[] {
  return safeList(store, WORKLOAD_ENTRIES, namespace)
    .filter((we) => matches(selector, (we.spec as WeSpec | undefined)?.labels ?? we.metadata.labels))
    .flatMap((we) => {
      const s = (we.spec ?? {}) as WeSpec;
      if (!s.address) return [];
      return [
        {
          address: s.address,
          port: (portName && s.ports?.[portName]) || targetPort,
          tlsMode: tlsModeOf(s.labels, s.serviceAccount),
        },
      ];
    });
}

export interface RegistryInputs {
  store: ObjectStore;
  /** Services the istiod double announces (the lab's echo service). */
  services?: MeshService[];
  /** Namespace of the calling pod (exportTo "."). */
  clientNamespace: string;
  /** Whether a store object has reached the client's sidecar yet (istiod push). */
  visible: (kind: string, obj: KubeObject) => boolean;
}

/** Every (host, port) a client sidecar in `clientNamespace` knows. */
export function meshRegistry(r: RegistryInputs): MeshServicePort[] {
  const out: MeshServicePort[] = [];
  for (const s of r.services ?? []) {
    out.push({
      host: `${s.name}.${s.namespace}.svc.cluster.local`,
      port: s.port,
      protocol: 'HTTP',
      vips: [s.vip],
      meshExternal: false,
      endpoints: s.endpoints.map((e) => ({ address: e.address, port: e.port, tlsMode: 'istio' as const })),
    });
  }
  for (const se of safeList(r.store, SERVICE_ENTRIES)) {
    if (!r.visible(SERVICE_ENTRIES, se)) continue;
    const spec = (se.spec ?? {}) as {
      hosts?: string[];
      addresses?: string[];
      ports?: Array<{ number: number; name?: string; protocol?: string; targetPort?: number }>;
      location?: string;
      resolution?: string;
      exportTo?: string[];
      endpoints?: WeSpec[];
      workloadSelector?: { labels?: Record<string, string> };
    };
    const exportTo = spec.exportTo ?? ['*'];
    const ns = se.metadata.namespace as string;
    if (
      !exportTo.includes('*') &&
      !exportTo.includes(r.clientNamespace) &&
      !(exportTo.includes('.') && ns === r.clientNamespace)
    )
      continue;
    for (const host of spec.hosts ?? []) {
      for (const p of spec.ports ?? []) {
        const target = p.targetPort ?? p.number;
        const endpoints: MeshEndpoint[] = spec.workloadSelector
          ? workloadEntryEndpoints(r.store, ns, spec.workloadSelector.labels, p.name, target)
          : (spec.endpoints ?? []).flatMap((e) =>
              e.address
                ? [
                    {
                      address: e.address,
                      port: (p.name && e.ports?.[p.name]) || target,
                      tlsMode: tlsModeOf(e.labels, e.serviceAccount),
                    },
                  ]
                : [],
            );
        out.push({
          host: host.toLowerCase(),
          port: p.number,
          protocol: isHttpProtocol(p.protocol, p.name) ? 'HTTP' : 'TCP',
          vips: (spec.addresses ?? []).map((a) => a.replace(/\/(32|128)$/, '')),
          meshExternal: spec.location === 'MESH_EXTERNAL',
          endpoints,
        });
      }
    }
  }
  for (const svc of safeList(r.store, SERVICES)) {
    const spec = (svc.spec ?? {}) as {
      clusterIP?: string;
      selector?: Record<string, string>;
      ports?: Array<{ port: number; name?: string; targetPort?: number | string; appProtocol?: string }>;
    };
    const ns = svc.metadata.namespace as string;
    for (const p of spec.ports ?? []) {
      const target = typeof p.targetPort === 'number' ? p.targetPort : p.port;
      out.push({
        host: `${svc.metadata.name}.${ns}.svc.cluster.local`,
        port: p.port,
        protocol: isHttpProtocol(p.appProtocol, p.name) ? 'HTTP' : 'TCP',
        vips: spec.clusterIP && spec.clusterIP !== 'None' ? [spec.clusterIP] : [],
        meshExternal: false,
        endpoints: workloadEntryEndpoints(r.store, ns, spec.selector, p.name, target),
      });
    }
  }
  return out;
}

/** What the pod's resolver answers without Istio DNS capture: cluster DNS knows Services, not ServiceEntries. */
export function clusterDnsLookup(registry: MeshServicePort[], host: string): string | undefined {
  const h = host.toLowerCase();
  return registry.find((s) => s.host === h && h.endsWith('.svc.cluster.local') && s.vips.length > 0)?.vips[0];
}

/** Envoy's `/clusters` lines (`outbound|<port>||<host>::<ip>:<port>::…`) for the registry. */
export function envoyClusterLines(registry: MeshServicePort[]): string[] {
  return registry.flatMap((s) =>
    s.endpoints.map((e) => {
      const ip = e.address.includes(':') ? `[${e.address}]` : e.address;
      return `outbound|${s.port}||${s.host}::${ip}:${e.port}::health_flags::healthy`;
    }),
  );
}

function hostWithoutPort(authority: string): { host: string; port?: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority) ?? /^([^:]+)(?::(\d+))?$/.exec(authority);
  if (!m) return { host: authority.toLowerCase() };
  return { host: m[1]!.toLowerCase(), ...(m[2] ? { port: Number(m[2]) } : {}) };
}

/**
 * The route an injected client's sidecar picks for a connection to `dialled`:`port` carrying `authority`
 * (the Host header; ignored on TCP listeners).
 */
export function routeOutbound(
  registry: MeshServicePort[],
  dialled: string,
  port: number,
  authority: string,
): RouteDecision {
  const onPort = registry.filter((s) => s.port === port);
  const http = onPort.some((s) => s.protocol === 'HTTP');
  let svc: MeshServicePort | undefined;
  if (http) {
    const a = hostWithoutPort(authority);
    if (a.port === undefined || a.port === port)
      svc = onPort.find((s) => s.protocol === 'HTTP' && (s.host === a.host || s.vips.includes(a.host)));
  } else {
    svc = onPort.find((s) => s.vips.includes(dialled));
  }
  if (!svc) return { cluster: 'PassthroughCluster', address: dialled, port, http, hasEndpoint: true };
  const cluster = `outbound|${svc.port}||${svc.host}`;
  const ep = svc.endpoints[0];
  if (!ep) return { cluster, address: dialled, port, http, hasEndpoint: false };
  const mtls = ep.tlsMode === 'istio' && !svc.meshExternal;
  return {
    cluster,
    address: ep.address,
    port: ep.port,
    http,
    hasEndpoint: true,
    ...(mtls ? { sni: `outbound_.${svc.port}_._.${svc.host}` } : {}),
  };
}
