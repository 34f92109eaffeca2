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
  /** The istiod instance (pod) connected to the workload for xDS (annotation istio.io/workloadController). */
  controller?: string;
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
  if (ann['istio.io/workloadController']) info.controller = ann['istio.io/workloadController'];
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
 * How long one listing of a namespace's WorkloadEntries answers every VM's lookup when they cannot be
 * watched: less than the workload-entry check's poll interval (500 ms), so each poll still sees a newer one.
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

/** Limits of a namespace's WorkloadEntry watch (bounded: it stops by itself). */
export const WORKLOAD_ENTRY_WATCH = {
  /** One watch asks the server for at most this long, then is opened again from where it was. */
  watchSeconds: 300,
  /** Watches opened (and lists made to restart one) per namespace and run, at most. */
  maxWatches: 20,
  /** Pause before watching again after a watch ended early. */
  pauseMs: 500,
} as const;

type RawEntryWithVersion = RawEntry & { metadata?: { resourceVersion?: string } };

/**
 * A namespace's WorkloadEntries as the API server has them, kept current by one list and one watch (with
 * bookmarks) for the whole run instead of a list every poll: while VMs register and turn Healthy the
 * lookups read memory. `live` is false when the watch cannot run (refused, or past its bounds): lookups
 * then list again. Stops when the run closes the cluster client.
 */
export class WatchedWorkloadEntries {
  private readonly items = new Map<string, RawEntry>();
  private resourceVersion = '';
  private watching = false;
  private opened = 0;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly namespace: string,
    private readonly limits: { watchSeconds: number; maxWatches: number; pauseMs: number } = WORKLOAD_ENTRY_WATCH,
  ) {}

  get live(): boolean {
    return this.watching && !this.ctx.closed.aborted;
  }

  entries(): RawEntry[] {
    return [...this.items.values()];
  }

  /** Lists the namespace and starts following it; resolves once the list is in memory. */
  async start(): Promise<void> {
    await this.list();
    this.watching = true;
    void this.follow().finally(() => {
      this.watching = false;
    });
  }

  private async list(): Promise<void> {
    const list = (await this.ctx.transport.call((o) =>
      this.ctx.custom.listNamespacedCustomObject({ ...WORKLOAD_ENTRY_API, namespace: this.namespace }, o),
    )) as { items?: RawEntryWithVersion[]; metadata?: { resourceVersion?: string } };
    this.items.clear();
    for (const item of list.items ?? []) if (item.metadata?.name) this.items.set(item.metadata.name, item);
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
  }

  private async follow(): Promise<void> {
    const path = `/apis/${WORKLOAD_ENTRY_API.group}/${WORKLOAD_ENTRY_API.version}/namespaces/${encodeURIComponent(
      this.namespace,
    )}/${WORKLOAD_ENTRY_API.plural}`;
    while (this.opened < this.limits.maxWatches && !this.ctx.closed.aborted) {
      if (this.opened > 0) await sleepUnlessClosed(this.ctx.closed, this.limits.pauseMs);
      if (this.ctx.closed.aborted) return;
      this.opened++;
      // A watch from an expired resourceVersion ends at once (410, an ERROR event): list again, then watch.
      let expired = false;
      let end;
      try {
        end = await this.ctx.transport.watch(
          path,
          {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: 'true',
            timeoutSeconds: this.limits.watchSeconds,
          },
          (type, object) => {
            const raw = object as RawEntryWithVersion;
            const version = raw?.metadata?.resourceVersion;
            if (type === 'ERROR') {
              expired = true;
              return true;
            }
            if (version) this.resourceVersion = version;
            const name = raw?.metadata?.name;
            if (!name) return false;
            if (type === 'ADDED' || type === 'MODIFIED') this.items.set(name, raw);
            else if (type === 'DELETED') this.items.delete(name);
            return false;
          },
          (this.limits.watchSeconds + 5) * 1000,
          this.ctx.closed,
        );
      } catch {
        return; // refused (403 without `watch`, 404): the lookups list instead
      }
      if (end === 'stopped' && this.ctx.closed.aborted) return;
      if (expired || end === 'closed') {
        if (this.opened >= this.limits.maxWatches) return;
        this.opened++;
        try {
          await this.list();
        } catch {
          return;
        }
      }
    }
  }
}

function sleepUnlessClosed(closed: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      closed.removeEventListener('abort', done);
      resolve();
    }
    closed.addEventListener('abort', done, { once: true });
  });
}

/** The namespace's watched WorkloadEntries, started once per run; undefined when the watch could not start. */
async function watchedWorkloadEntries(
  ctx: ClusterContext,
  namespace: string,
): Promise<WatchedWorkloadEntries | undefined> {
  const watched = await ctx.cache
    .once(`workloadentries-watch/${namespace}`, async () => {
      const entries = new WatchedWorkloadEntries(ctx, namespace);
      await entries.start();
      return entries;
    })
    .catch(() => undefined);
  return watched?.live ? watched : undefined;
}

/**
 * The WorkloadEntry for a VM address in a group: the one with the auto-registration name and that
 * address, else one of the group with that address. From the namespace's watched entries (one list and
 * one watch for the run), or when they cannot be watched from a listing that every VM of the group polling
 * at once shares (one request per round).
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
  const watched = await watchedWorkloadEntries(ctx, namespace);
  const items = watched ? watched.entries() : await recentWorkloadEntries(ctx, namespace);
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
