// Server-side apply of the mesh objects of a group, idempotent: each object is read first and only
// applied when a field we manage differs (or we still own a field we no longer want); in a namespace the
// run has just created there is nothing to read (issue 20). A rerun with
// no change makes no write and reports `unchanged`. One field manager; `force: true` takes over
// only the fields in our (minimal) manifests — the fields we own by definition.
import type { ConfigurationOptions } from '@kubernetes/client-node';
import type { GroupSpec, VmSpec } from '../inventory/types.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../render/workload-objects.js';
import type { ClusterContext } from './context.js';
import { KubeRequestError } from './errors.js';
import { groupNamespaceState, rememberNamespaceCreated } from './group-namespaces.js';
import {
  driftOf,
  namespaceManifest,
  peerAuthenticationManifest,
  serviceAccountManifest,
  serviceManifest,
  type Manifest,
} from './mesh-objects.js';
import type { PeerAuthenticationSetting } from './permissions.js';
import { APPLY_PATCH_HEADERS } from './transport.js';
import { recentWorkloadEntriesKey } from './workload-entries.js';

/** `would-*` only with dryRun (plan mode): nothing was written. */
export type ApplyAction = 'created' | 'configured' | 'unchanged' | 'would-create' | 'would-configure';

export interface AppliedObject {
  kind: string;
  /** '' for cluster-scoped objects. */
  namespace: string;
  name: string;
  action: ApplyAction;
  /** For `configured`: which managed fields had drifted. */
  drift?: string[];
}

/** Builders from src/render (injected so this module stays testable and render stays pure). */
export interface RenderedObjects {
  buildWorkloadGroup(group: GroupSpec): object;
  buildWorkloadEntry(group: GroupSpec, vm: VmSpec, address: string): object;
}

export interface ApplyGroupOptions {
  peerAuthentication: PeerAuthenticationSetting;
  /** Plan mode: read and compare only; report `would-create` / `would-configure`. */
  dryRun?: boolean;
  /** Static WorkloadEntries to apply with the group (registration: static), when addresses are known. */
  workloadEntries?: Array<{ vm: VmSpec; address: string }>;
}

interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

function crdRef(apiVersion: string, plural: string): ResourceRef {
  const [group = '', version = ''] = apiVersion.split('/');
  return { group, version, plural };
}

const PLURALS: Record<string, string> = {
  WorkloadGroup: 'workloadgroups',
  WorkloadEntry: 'workloadentries',
  PeerAuthentication: 'peerauthentications',
};

function asManifest(obj: object, what: string): Manifest {
  const m = obj as Partial<Manifest>;
  if (!m.apiVersion || !m.kind || !m.metadata?.name)
    throw new Error(`${what}: rendered object lacks apiVersion, kind or metadata.name`);
  return m as Manifest;
}

async function readLive(ctx: ClusterContext, m: Manifest): Promise<unknown> {
  const ns = m.metadata.namespace ?? '';
  const name = m.metadata.name;
  switch (m.kind) {
    case 'Namespace':
      return ctx.transport.callOptional((o) => ctx.core.readNamespace({ name }, o));
    case 'ServiceAccount':
      return ctx.transport.callOptional((o) => ctx.core.readNamespacedServiceAccount({ namespace: ns, name }, o));
    case 'Service':
      return ctx.transport.callOptional((o) => ctx.core.readNamespacedService({ namespace: ns, name }, o));
    default: {
      const ref = crdRef(m.apiVersion, PLURALS[m.kind] ?? `${m.kind.toLowerCase()}s`);
      return ctx.transport.callOptional((o) =>
        ctx.custom.getNamespacedCustomObject({ ...ref, namespace: ns, name }, o),
      );
    }
  }
}

async function serverSideApply(ctx: ClusterContext, m: Manifest): Promise<unknown> {
  const ns = m.metadata.namespace ?? '';
  const name = m.metadata.name;
  const common = { name, body: m, fieldManager: ctx.fieldManager, force: true };
  const call = <T>(fn: (o: ConfigurationOptions) => Promise<T>): Promise<T> =>
    ctx.transport.call(fn, { ...APPLY_PATCH_HEADERS });
  switch (m.kind) {
    case 'Namespace':
      return call((o) => ctx.core.patchNamespace(common, o));
    case 'ServiceAccount':
      return call((o) => ctx.core.patchNamespacedServiceAccount({ ...common, namespace: ns }, o));
    case 'Service':
      return call((o) => ctx.core.patchNamespacedService({ ...common, namespace: ns }, o));
    default: {
      const ref = crdRef(m.apiVersion, PLURALS[m.kind] ?? `${m.kind.toLowerCase()}s`);
      return call((o) => ctx.custom.patchNamespacedCustomObject({ ...ref, ...common, namespace: ns }, o));
    }
  }
}

/**
 * An object of the same kind and name exists and was not made by this action (no
 * `app.kubernetes.io/managed-by: istio-vm-onboard` label): server-side apply with force would take
 * it over — a Service, WorkloadGroup or PeerAuthentication rewritten, or someone else's
 * ServiceAccount handed to the VMs as their identity. Refused unless the group says `adopt: true`.
 */
export class UnmanagedObjectError extends Error {
  constructor(
    readonly kind: string,
    readonly namespace: string,
    readonly objectName: string,
    readonly managedBy: string | undefined,
  ) {
    super(
      `${kind} ${namespace ? `${namespace}/` : ''}${objectName} ` +
        'already exists and is not managed by istio-vm-onboard ' +
        `(label app.kubernetes.io/managed-by is ${managedBy === undefined ? 'absent' : JSON.stringify(managedBy)}); ` +
        'refusing to take it over. Rename the group (or its service / serviceAccount), delete the object, ' +
        'or set `adopt: true` on the group to let this action manage it from now on',
    );
    this.name = 'UnmanagedObjectError';
  }
}

/**
 * Whether applying over `live` would take over an object someone else made (namespaces are only used, never
 * changed).
 */
function unmanagedBy(manifest: Manifest, live: unknown): { managedBy: string | undefined } | undefined {
  if (manifest.kind === 'Namespace') return undefined;
  const labels = (live as { metadata?: { labels?: Record<string, string> } }).metadata?.labels ?? {};
  const managedBy = labels[MANAGED_BY_LABEL];
  return managedBy === MANAGED_BY_VALUE ? undefined : { managedBy };
}

/**
 * Apply one manifest if (and only if) it differs from the live object. `live` may be given when
 * already read. A live object this action does not manage is refused (UnmanagedObjectError) unless
 * `adopt` is set.
 */
export async function applyIfChanged(
  ctx: ClusterContext,
  manifest: Manifest,
  known?: { live: unknown },
  dryRun = false,
  adopt = false,
): Promise<{ applied: AppliedObject; live: unknown }> {
  const live = known ? known.live : await readLive(ctx, manifest);
  const base = { kind: manifest.kind, namespace: manifest.metadata.namespace ?? '', name: manifest.metadata.name };
  if (live !== undefined && live !== null && !adopt) {
    const foreign = unmanagedBy(manifest, live);
    if (foreign) throw new UnmanagedObjectError(base.kind, base.namespace, base.name, foreign.managedBy);
  }
  if (live === undefined || live === null) {
    if (dryRun) return { applied: { ...base, action: 'would-create' }, live: undefined };
    const created = await serverSideApply(ctx, manifest);
    return { applied: { ...base, action: 'created' }, live: created };
  }
  const drift = driftOf(manifest, live, ctx.fieldManager);
  if (drift.length === 0) return { applied: { ...base, action: 'unchanged' }, live };
  if (dryRun) return { applied: { ...base, action: 'would-configure', drift }, live };
  const updated = await serverSideApply(ctx, manifest);
  return { applied: { ...base, action: 'configured', drift }, live: updated };
}

interface WorkloadEntryListing {
  items?: Array<{ metadata?: { name?: string } }>;
}

/** The namespace's WorkloadEntries, listed once per run and kept current after our applies. */
function workloadEntriesByName(
  ctx: ClusterContext,
  namespace: string,
  apiVersion: string,
): Promise<Map<string, unknown>> {
  return ctx.cache.once(`workloadentries/${namespace}`, async () => {
    const ref = crdRef(apiVersion, 'workloadentries');
    const list = (await ctx.transport.call((o) =>
      ctx.custom.listNamespacedCustomObject({ ...ref, namespace }, o),
    )) as WorkloadEntryListing;
    const map = new Map<string, unknown>();
    for (const item of list.items ?? []) if (item.metadata?.name) map.set(item.metadata.name, item);
    return map;
  });
}

export async function applyStaticWorkloadEntry(
  ctx: ClusterContext,
  render: RenderedObjects,
  group: GroupSpec,
  vm: VmSpec,
  address: string,
  dryRun = false,
): Promise<AppliedObject> {
  const manifest = asManifest(render.buildWorkloadEntry(group, vm, address), `WorkloadEntry for ${vm.name}`);
  const namespace = manifest.metadata.namespace ?? group.namespace;
  manifest.metadata.namespace = namespace;
  const byName = await workloadEntriesByName(ctx, namespace, manifest.apiVersion);
  const { applied, live } = await applyIfChanged(
    ctx,
    manifest,
    { live: byName.get(manifest.metadata.name) },
    dryRun,
    group.adopt === true,
  );
  if (live !== undefined) byName.set(manifest.metadata.name, live);
  // The lookups of the workload-entry check share a recent listing: not one from before this write.
  ctx.cache.forgetRecent(recentWorkloadEntriesKey(namespace));
  return applied;
}

/**
 * The group namespace: used as it is when it exists (never changed, so no write and no cluster-scoped
 * permission), created when it does not. Whether it exists is preflight's answer (group-namespaces.ts),
 * which needs only what a RoleBinding in the namespace grants. Created with a plain create (POST), not
 * server-side apply: the manifest is only its name and we never change it afterwards, and a create needs
 * only `create namespaces` where an apply of a missing object needs `patch` too (issue 20: one access review
 * fewer, one cluster-scoped permission fewer). Someone else creating it meanwhile (409 on the first attempt)
 * leaves it theirs: `unchanged`.
 */
async function ensureGroupNamespace(ctx: ClusterContext, namespace: string, dryRun: boolean): Promise<AppliedObject> {
  const base = { kind: 'Namespace', namespace: '', name: namespace };
  const state = await groupNamespaceState(ctx, namespace);
  if (state.exists) return { ...base, action: 'unchanged' };
  if (dryRun) return { ...base, action: 'would-create' };
  let action: ApplyAction = 'created';
  try {
    await ctx.transport.call((o) =>
      ctx.core.createNamespace({ body: namespaceManifest(namespace), fieldManager: ctx.fieldManager }, o),
    );
  } catch (error) {
    if (!(error instanceof KubeRequestError && error.kind === 'conflict')) throw error;
    // A retried create whose first attempt went through made it; a first attempt's 409: someone else did.
    if (error.attempts === 1) action = 'unchanged';
  }
  rememberNamespaceCreated(ctx, namespace);
  return { ...base, action };
}

/**
 * Namespace, ServiceAccount, WorkloadGroup, optional Service, optional PeerAuthentication, and the
 * static WorkloadEntries given. The namespace first; then the group's objects together; then the entries.
 */
export async function applyGroupObjects(
  ctx: ClusterContext,
  render: RenderedObjects,
  group: GroupSpec,
  options: ApplyGroupOptions,
): Promise<AppliedObject[]> {
  const out: AppliedObject[] = [];
  const dryRun = options.dryRun === true;
  if (options.peerAuthentication !== 'unchanged' && Object.keys(group.labels).length === 0) {
    // An empty selector makes a PeerAuthentication namespace-wide: `permissive` would downgrade every
    // workload of the namespace.
    throw new Error(
      `group ${group.name}: peer-authentication ${options.peerAuthentication} needs the group's labels as the ` +
        "PeerAuthentication's selector; without labels it would apply to the whole namespace " +
        `${group.namespace}. Add labels to the group`,
    );
  }
  const nsKey = `namespace-applied/${group.namespace}/${dryRun}`;
  const nsResult = await ctx.cache.once(nsKey, () => ensureGroupNamespace(ctx, group.namespace, dryRun));
  out.push(nsResult);

  const wg = asManifest(render.buildWorkloadGroup(group), `WorkloadGroup ${group.name}`);
  wg.metadata.namespace = wg.metadata.namespace ?? group.namespace;
  const manifests: Manifest[] = [serviceAccountManifest(group), wg];
  const svc = serviceManifest(group);
  if (svc) manifests.push(svc);
  const pa = peerAuthenticationManifest(group, options.peerAuthentication);
  if (pa) manifests.push(pa);
  // In plan mode a namespace that does not exist yet holds nothing: skip the reads. Issue 20: nor does one this
  // run has just created, for the first group applied into it (a later group of the namespace reads, since the
  // first one's objects are there now) — except the ServiceAccount `default`, which the namespace's
  // ServiceAccount controller makes by itself.
  const namespaceMissing = dryRun && nsResult.action === 'would-create';
  const namespaceNew =
    !dryRun && nsResult.action === 'created' && ctx.cache.claim(`namespace-first-group/${group.namespace}`);
  const holdsNothing = (m: Manifest): boolean =>
    namespaceMissing || (namespaceNew && !(m.kind === 'ServiceAccount' && m.metadata.name === 'default'));
  // Read all first: an object someone else made stops the group before any of its objects is written.
  const lives = await Promise.all(manifests.map((m) => (holdsNothing(m) ? undefined : readLive(ctx, m))));
  if (group.adopt !== true) {
    manifests.forEach((m, i) => {
      const live = lives[i];
      const foreign = live === undefined || live === null ? undefined : unmanagedBy(m, live);
      if (foreign) {
        throw new UnmanagedObjectError(m.kind, m.metadata.namespace ?? '', m.metadata.name, foreign.managedBy);
      }
    });
  }
  // They do not depend on one another: applied together, reported in this order.
  const applied = await Promise.all(
    manifests.map((m, i) => applyIfChanged(ctx, m, { live: lives[i] }, dryRun, group.adopt === true)),
  );
  out.push(...applied.map((result) => result.applied));
  // The mesh-to-vm-mtls check reads the namespace's PeerAuthentications once per run: not before this write.
  if (pa && !dryRun) ctx.cache.delete(`peerauthentications/${group.namespace}`);

  for (const { vm, address } of options.workloadEntries ?? []) {
    out.push(await applyStaticWorkloadEntry(ctx, render, group, vm, address, dryRun));
  }
  return out;
}
