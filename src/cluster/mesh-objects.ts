// Pure: the Kubernetes objects the action manages for a group (besides render's WorkloadGroup and
// WorkloadEntry), and the semantic comparison that decides whether server-side apply is needed.
import type { IPeerAuthentication } from '@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication';
import type { GroupSpec } from '../inventory/types.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../render/workload-objects.js';
import type { PeerAuthenticationSetting } from './permissions.js';

export const FIELD_MANAGER = 'istio-vm-onboard';
/** The label on every object we create (render's MANAGED_BY_LABEL = MANAGED_BY_VALUE), as a labels map. */
export const MANAGED_BY_LABELS = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } as const;

/** A manifest as sent to server-side apply. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export function namespaceManifest(name: string): Manifest {
  // Only the name: an existing namespace (labels, istio-injection …) is left as it is.
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

export function serviceAccountManifest(group: GroupSpec): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: group.serviceAccount, namespace: group.namespace, labels: { ...MANAGED_BY_LABELS } },
  };
}

/** The group's Service: selector = the group's labels, one TCP port per named port. */
export function serviceManifest(group: GroupSpec): Manifest | undefined {
  if (!group.service) return undefined;
  const ports = Object.entries(group.service.ports)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, port]) => ({ name, port, targetPort: port, protocol: 'TCP' }));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: group.service.name,
      namespace: group.namespace,
      labels: { ...group.labels, ...MANAGED_BY_LABELS },
    },
    spec: { selector: { ...group.labels }, ports },
  };
}

export function peerAuthenticationName(group: Pick<GroupSpec, 'name'>): string {
  return `${group.name}-vm-mtls`;
}

/** `<group>-vm-mtls` scoped by selector to the group's workloads; undefined for `unchanged`. */
export function peerAuthenticationManifest(group: GroupSpec, setting: PeerAuthenticationSetting): Manifest | undefined {
  if (setting === 'unchanged') return undefined;
  const mode: NonNullable<NonNullable<IPeerAuthentication['spec']>['mtls']>['mode'] =
    setting === 'strict' ? 'STRICT' : 'PERMISSIVE';
  const spec: NonNullable<IPeerAuthentication['spec']> = {
    selector: { matchLabels: { ...group.labels } },
    mtls: { mode },
  };
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name: peerAuthenticationName(group), namespace: group.namespace, labels: { ...MANAGED_BY_LABELS } },
    spec,
  };
}

type Json = unknown;

function isPlainObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Fields of `desired` whose value differs in `live` (desired must be a subset of live; maps may
 * have extra keys set by others or by defaulting, lists must match element by element).
 */
export function subsetDifferences(desired: Json, live: Json, path = ''): string[] {
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return [path || '.'];
    return desired.flatMap((d, i) => subsetDifferences(d, live[i], `${path}[${i}]`));
  }
  if (isPlainObject(desired)) {
    if (!isPlainObject(live)) return [path || '.'];
    return Object.entries(desired).flatMap(([k, v]) => subsetDifferences(v, live[k], `${path}.${k}`));
  }
  return desired === live ? [] : [path || '.'];
}

/** Every node path of a manifest, descending through maps; lists are leaves. */
export function manifestPaths(obj: Json, prefix = ''): Set<string> {
  const out = new Set<string>();
  if (!isPlainObject(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    const p = prefix ? `${prefix}.${k}` : k;
    out.add(p);
    if (isPlainObject(v)) for (const q of manifestPaths(v, p)) out.add(q);
  }
  return out;
}

/** Node paths of a FieldsV1 set (`{"f:spec":{"f:ports":{"k:{…}":{}}}}`), stopping at list entries. */
export function fieldsV1Paths(fields: Json, prefix = ''): Set<string> {
  const out = new Set<string>();
  if (!isPlainObject(fields)) return out;
  for (const [k, v] of Object.entries(fields)) {
    if (!k.startsWith('f:')) continue; // '.', 'k:{…}', 'v:…', 'i:…' belong to the parent list
    const p = prefix ? `${prefix}.${k.slice(2)}` : k.slice(2);
    out.add(p);
    for (const q of fieldsV1Paths(v, p)) out.add(q);
  }
  return out;
}

interface LiveMeta {
  metadata?: { managedFields?: Array<{ manager?: string; operation?: string; fieldsV1?: Json }> };
}

/**
 * Why `live` must be re-applied to match `desired` (empty: nothing to do). Two kinds of drift:
 * a desired field differs in live, or our field manager still owns a field we no longer want
 * (server-side apply removes it when we apply again).
 */
export function driftOf(desired: Manifest, live: Json, fieldManager: string = FIELD_MANAGER): string[] {
  const { apiVersion: _v, kind: _k, ...rest } = desired;
  const { name: _n, namespace: _ns, ...meta } = desired.metadata;
  const reasons = subsetDifferences({ ...rest, metadata: meta }, live).map((p) => `${p} differs`);
  const entry = (live as LiveMeta)?.metadata?.managedFields?.find(
    (m) => m.manager === fieldManager && m.operation === 'Apply',
  );
  if (entry?.fieldsV1 !== undefined) {
    const wanted = manifestPaths({ ...rest, metadata: meta });
    for (const owned of fieldsV1Paths(entry.fieldsV1)) {
      if (owned === 'metadata.name' || owned === 'metadata.namespace') continue;
      if (!wanted.has(owned)) reasons.push(`.${owned} no longer wanted`);
    }
  }
  return reasons;
}
