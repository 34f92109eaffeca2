// Reads for verification and offboarding: the WorkloadEntries of a group (auto-registered or
// static), the one for a VM address, deletion, and the PeerAuthentication mode that applies to a
// group's workloads. Facts from istio/istio pilot/pkg/autoregistration/controller.go:
// auto-registered entries are named `<group>-<first proxy IP with ':' → '-'>[-<network>]`, cut
// from the front to 253 characters, and carry the annotation istio.io/autoRegistrationGroup.
import type { IWorkloadEntry } from '@kubernetes-models/istio/networking.istio.io/v1/WorkloadEntry';
import type { ClusterContext } from './context.js';

export const WORKLOAD_ENTRY_API = { group: 'networking.istio.io', version: 'v1', plural: 'workloadentries' } as const;
export const AUTO_REGISTRATION_GROUP_ANNOTATION = 'istio.io/autoRegistrationGroup';

export interface WorkloadEntryInfo {
  name: string;
  namespace: string;
  address: string;
  network?: string;
  serviceAccount?: string;
  labels: Record<string, string>;
  autoRegistered: boolean;
  /** Group it belongs to: the auto-registration annotation or the owning WorkloadGroup. */
  group?: string;
  /** status.conditions[type=Healthy].status, when health checks write it. */
  healthy?: 'True' | 'False' | 'Unknown';
  healthMessage?: string;
  connectedAt?: string;
  disconnectedAt?: string;
}

/** Name istiod gives an auto-registered WorkloadEntry. Pure. */
export function autoRegisteredWorkloadEntryName(groupName: string, address: string, network?: string): string {
  const parts = [groupName, address.replaceAll(':', '-')];
  if (network) parts.push(network);
  const name = parts.join('-');
  return name.length > 253 ? name.slice(name.length - 253) : name;
}

type RawEntry = IWorkloadEntry & {
  metadata?: {
    name?: string;
    namespace?: string;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{ kind?: string; name?: string }>;
  };
};

/** Pure: the fields checks need from a raw WorkloadEntry. */
export function toWorkloadEntryInfo(raw: RawEntry): WorkloadEntryInfo {
  const ann = raw.metadata?.annotations ?? {};
  const owner = raw.metadata?.ownerReferences?.find((o) => o.kind === 'WorkloadGroup')?.name;
  const autoGroup = ann[AUTO_REGISTRATION_GROUP_ANNOTATION];
  const healthy = raw.status?.conditions?.find((c) => c.type === 'Healthy');
  const info: WorkloadEntryInfo = {
    name: raw.metadata?.name ?? '',
    namespace: raw.metadata?.namespace ?? '',
    address: raw.spec?.address ?? '',
    labels: { ...(raw.spec?.labels ?? {}) },
    autoRegistered: autoGroup !== undefined,
  };
  const group = autoGroup ?? owner;
  if (group) info.group = group;
  if (raw.spec?.network) info.network = raw.spec.network;
  if (raw.spec?.serviceAccount) info.serviceAccount = raw.spec.serviceAccount;
  if (healthy?.status === 'True' || healthy?.status === 'False' || healthy?.status === 'Unknown')
    info.healthy = healthy.status;
  if (healthy?.message) info.healthMessage = healthy.message;
  if (ann['istio.io/connectedAt']) info.connectedAt = ann['istio.io/connectedAt'];
  if (ann['istio.io/disconnectedAt']) info.disconnectedAt = ann['istio.io/disconnectedAt'];
  return info;
}

/** A group as the reads need it: static entries are named after the VMs (src/render buildWorkloadEntry). */
export type GroupRef = string | { name: string; network?: string; vmNames?: string[] };

/**
 * Does this entry belong to the group? Its auto-registration annotation or owning WorkloadGroup,
 * else (static entries) a VM name of the group or the `<group>-` prefix. Pure.
 */
export function belongsToGroup(info: WorkloadEntryInfo, group: GroupRef): boolean {
  const groupName = typeof group === 'string' ? group : group.name;
  if (info.group !== undefined) return info.group === groupName;
  if (typeof group !== 'string' && group.vmNames?.includes(info.name)) return true;
  return info.name.startsWith(`${groupName}-`);
}

export async function listWorkloadEntries(
  ctx: ClusterContext,
  namespace: string,
  group: GroupRef,
): Promise<WorkloadEntryInfo[]> {
  const list = (await ctx.transport.call((o) =>
    ctx.custom.listNamespacedCustomObject({ ...WORKLOAD_ENTRY_API, namespace }, o),
  )) as { items?: RawEntry[] };
  return (list.items ?? [])
    .map(toWorkloadEntryInfo)
    .filter((e) => belongsToGroup(e, group))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * How long one listing of a namespace's WorkloadEntries answers every VM's lookup: less than the
 * workload-entry check's poll interval (500 ms), so each poll of a VM still sees a newer listing.
 */
export const SHARED_WORKLOAD_ENTRY_LIST_MS = 400;

export function recentWorkloadEntriesKey(namespace: string): string {
  return `workloadentries-recent/${namespace}`;
}

/** The namespace's WorkloadEntries, one listing shared by the lookups within SHARED_WORKLOAD_ENTRY_LIST_MS. */
function recentWorkloadEntries(ctx: ClusterContext, namespace: string): Promise<RawEntry[]> {
  return ctx.cache.recentOrNew(recentWorkloadEntriesKey(namespace), SHARED_WORKLOAD_ENTRY_LIST_MS, async () => {
    const list = (await ctx.transport.call((o) =>
      ctx.custom.listNamespacedCustomObject({ ...WORKLOAD_ENTRY_API, namespace }, o),
    )) as { items?: RawEntry[] };
    return list.items ?? [];
  });
}

/**
 * The WorkloadEntry for a VM address in a group: the one with the auto-registration name and that
 * address, else one of the group with that address. From a listing of the namespace that every VM of
 * the group polling at once shares (one request per round instead of a GET, and a LIST while it is
 * missing, per VM).
 */
export async function findWorkloadEntryFor(
  ctx: ClusterContext,
  namespace: string,
  group: GroupRef,
  address: string,
): Promise<WorkloadEntryInfo | undefined> {
  const groupName = typeof group === 'string' ? group : group.name;
  const network = typeof group === 'string' ? undefined : group.network || undefined;
  const name = autoRegisteredWorkloadEntryName(groupName, address, network);
  const items = await recentWorkloadEntries(ctx, namespace);
  const direct = items.find((raw) => raw.metadata?.name === name && raw.spec?.address === address);
  if (direct) return toWorkloadEntryInfo(direct);
  return items
    .map(toWorkloadEntryInfo)
    .filter((e) => belongsToGroup(e, group))
    .sort((a, b) => a.name.localeCompare(b.name))
    .find((e) => e.address === address);
}

/** Deletes a WorkloadEntry; false when it was already gone. */
export async function deleteWorkloadEntry(ctx: ClusterContext, namespace: string, name: string): Promise<boolean> {
  const result = await ctx.transport.callOptional((o) =>
    ctx.custom.deleteNamespacedCustomObject({ ...WORKLOAD_ENTRY_API, namespace, name }, o),
  );
  ctx.cache.delete(`workloadentries/${namespace}`);
  ctx.cache.forgetRecent(recentWorkloadEntriesKey(namespace));
  return result !== undefined;
}

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export interface PeerAuthenticationModeInfo {
  mode: MtlsMode;
  /** `ns/name` of the policy that decided, or 'default' (Istio's PERMISSIVE when nothing applies). */
  source: string;
  scope: 'workload' | 'namespace' | 'mesh' | 'default';
}

interface RawPeerAuthentication {
  metadata?: { name?: string; namespace?: string; creationTimestamp?: string };
  spec?: { selector?: { matchLabels?: Record<string, string> }; mtls?: { mode?: string } };
}

function modeOf(pa: RawPeerAuthentication | undefined): MtlsMode | undefined {
  const m = pa?.spec?.mtls?.mode;
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined; // UNSET / absent inherit
}

function oldestFirst(a: RawPeerAuthentication, b: RawPeerAuthentication): number {
  return (
    (a.metadata?.creationTimestamp ?? '').localeCompare(b.metadata?.creationTimestamp ?? '') ||
    (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '')
  );
}

/**
 * The workload-level mTLS mode Istio applies to workloads with these labels (port-level
 * overrides not considered): the oldest matching workload policy, else the oldest namespace-wide
 * one, else the oldest mesh-wide one in the root namespace, else PERMISSIVE; UNSET inherits. Pure.
 */
export function effectivePeerAuthenticationMode(
  inNamespace: readonly RawPeerAuthentication[],
  inRoot: readonly RawPeerAuthentication[],
  labels: Record<string, string>,
): PeerAuthenticationModeInfo {
  const selects = (pa: RawPeerAuthentication): boolean => {
    const ml = pa.spec?.selector?.matchLabels;
    return !!ml && Object.keys(ml).length > 0 && Object.entries(ml).every(([k, v]) => labels[k] === v);
  };
  const wide = (pa: RawPeerAuthentication): boolean =>
    !pa.spec?.selector?.matchLabels || Object.keys(pa.spec.selector.matchLabels).length === 0;
  const id = (pa: RawPeerAuthentication): string => `${pa.metadata?.namespace ?? ''}/${pa.metadata?.name ?? ''}`;
  const levels: Array<[PeerAuthenticationModeInfo['scope'], RawPeerAuthentication | undefined]> = [
    ['workload', [...inNamespace].filter(selects).sort(oldestFirst)[0]],
    ['namespace', [...inNamespace].filter(wide).sort(oldestFirst)[0]],
    ['mesh', [...inRoot].filter(wide).sort(oldestFirst)[0]],
  ];
  for (const [scope, pa] of levels) {
    const mode = modeOf(pa);
    if (pa && mode) return { mode, source: id(pa), scope };
  }
  return { mode: 'PERMISSIVE', source: 'default', scope: 'default' };
}

const PEER_AUTH_API = { group: 'security.istio.io', version: 'v1', plural: 'peerauthentications' } as const;

export async function getPeerAuthenticationMode(
  ctx: ClusterContext,
  namespace: string,
  labels: Record<string, string>,
  rootNamespace: string,
): Promise<PeerAuthenticationModeInfo> {
  // Read once per namespace per run: every VM of a group (and every group, for the root namespace) asks.
  const list = (ns: string): Promise<RawPeerAuthentication[]> =>
    ctx.cache.once(`peerauthentications/${ns}`, async () => {
      const res = (await ctx.transport.call((o) =>
        ctx.custom.listNamespacedCustomObject({ ...PEER_AUTH_API, namespace: ns }, o),
      )) as {
        items?: RawPeerAuthentication[];
      };
      return (res.items ?? []).map((i) => ({
        ...i,
        metadata: { ...i.metadata, namespace: i.metadata?.namespace ?? ns },
      }));
    });
  const inNamespace = await list(namespace);
  const inRoot = rootNamespace === namespace ? inNamespace : await list(rootNamespace);
  return effectivePeerAuthenticationMode(inNamespace, inRoot, labels);
}
