// In-memory object store of the Kubernetes API double: resourceVersions, generations, uids,
// managedFields (server-side apply), watch events with history, namespace and owner cascades.
import { randomUUID, randomBytes } from 'node:crypto';
import { errors, KubeApiError } from './status.js';
import { BUILTIN_TYPES, kindKeyOf, resourceTypeFromCrd, type ResourceType } from './resources.js';
import {
  clone,
  deepEqual,
  deleteAt,
  displayPath,
  fromFieldsV1,
  getAt,
  isObject,
  jsonMergePatch,
  keyPath,
  leafPaths,
  setAt,
  strategicMergePatch,
  toFieldsV1,
  type Json,
  type JsonObject,
} from './merge.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
    blockOwnerDeletion?: boolean;
  }>;
  managedFields?: ManagedFieldsEntry[];
  finalizers?: string[];
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: JsonObject;
  subresource?: string;
}

/** An API object as the API server stores it (JSON). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [field: string]: any;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface StoreEvent {
  type: WatchEventType;
  kindKey: string;
  object: KubeObject;
  resourceVersion: string;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface WriteOptions {
  /** Field manager recorded in managedFields (Update operations). */
  manager?: string;
  dryRun?: boolean;
}

export type PatchType = 'merge' | 'strategic' | 'json';

const HISTORY_LIMIT = 5000;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function rfc3339(d = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function nsName(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/** Parses `a=b,c!=d,e,!f,g in (x,y),h notin (z)` and matches labels against it. */
export function matchesLabelSelector(
  labels: Record<string, string> | undefined,
  selector: string | undefined,
): boolean {
  if (!selector) return true;
  const l = labels ?? {};
  const terms: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) terms.push(cur.trim());
  return terms.every((t) => {
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$/))) {
      const values = (m[3] ?? '').split(',').map((s) => s.trim());
      const has = (m[1] as string) in l && values.includes(l[m[1] as string] as string);
      return m[2] === 'in' ? has : !has;
    }
    if ((m = t.match(/^([^!=\s]+)\s*!=\s*(.*)$/))) return l[m[1] as string] !== m[2];
    if ((m = t.match(/^([^!=\s]+)\s*==?\s*(.*)$/))) return l[m[1] as string] === m[2];
    if ((m = t.match(/^!\s*(\S+)$/))) return !((m[1] as string) in l);
    return t in l;
  });
}

/** fieldSelector: metadata.name, metadata.namespace, and any simple dotted path (status.phase…). */
export function matchesFieldSelector(obj: KubeObject, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const m = term.match(/^([^!=]+)(==|=|!=)(.*)$/);
    if (!m) return false;
    const value = getAt(obj as unknown as JsonObject, (m[1] as string).trim().split('.'));
    const str = value === undefined || value === null ? '' : String(value);
    return m[2] === '!=' ? str !== m[3] : str === m[3];
  });
}

export class ObjectStore {
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly watchers = new Set<{ kindKey: string | '*'; cb: (e: StoreEvent) => void }>();
  private readonly history: StoreEvent[] = [];
  private rv = 1000;

  /** Current resourceVersion (of the last write). */
  get resourceVersion(): string {
    return String(this.rv);
  }

  // ---------- types ----------

  /** All resource types served now: built-ins plus those of established CRDs. */
  types(): ResourceType[] {
    const crds = [...(this.objects.get('customresourcedefinitions.apiextensions.k8s.io')?.values() ?? [])];
    const custom = crds.map((c) => resourceTypeFromCrd(c)).filter((t): t is ResourceType => t !== undefined);
    return [...BUILTIN_TYPES, ...custom];
  }

  typeOf(kindKey: string): ResourceType {
    const t = this.types().find((x) => kindKeyOf(x) === kindKey);
    if (!t) throw errors.pathNotFound();
    return t;
  }

  /** Finds a type by group + version + plural resource (REST path parts). */
  findType(group: string, version: string, resource: string): ResourceType | undefined {
    return this.types().find((t) => t.group === group && t.resource === resource && t.versions.includes(version));
  }

  // ---------- reads ----------

  get(kindKey: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.bucket(kindKey).get(nsName(this.scopeNs(kindKey, namespace), name));
    return o ? clone(o) : undefined;
  }

  /** Like get, but throws the API's 404 Status error. */
  mustGet(kindKey: string, namespace: string | undefined, name: string): KubeObject {
    const o = this.get(kindKey, namespace, name);
    if (!o) {
      const t = this.typeOf(kindKey);
      throw errors.notFound(t.group, t.resource, name);
    }
    return o;
  }

  list(kindKey: string, opts: ListOptions = {}): KubeObject[] {
    const items = [...this.bucket(kindKey).values()]
      .filter((o) => opts.namespace === undefined || o.metadata.namespace === opts.namespace)
      .filter((o) => matchesLabelSelector(o.metadata.labels, opts.labelSelector))
      .filter((o) => matchesFieldSelector(o, opts.fieldSelector))
      .map((o) => clone(o));
    items.sort((a, b) =>
      nsName(a.metadata.namespace, a.metadata.name).localeCompare(nsName(b.metadata.namespace, b.metadata.name)),
    );
    return items;
  }

  // ---------- writes ----------

  create(
    kindKey: string,
    input: KubeObject,
    opts: WriteOptions & { initialManagedFields?: ManagedFieldsEntry[] } = {},
  ): KubeObject {
    const t = this.typeOf(kindKey);
    const obj = clone(input);
    obj.metadata = obj.metadata ?? ({} as ObjectMeta);
    if (!obj.metadata.name && obj.metadata.generateName) {
      obj.metadata.name = obj.metadata.generateName + randomBytes(3).toString('hex').slice(0, 5);
    }
    this.normalizeScope(t, obj);
    this.validate(t, obj);
    if (t.namespaced) this.requireNamespace(obj.metadata.namespace as string);
    const key = nsName(obj.metadata.namespace, obj.metadata.name);
    if (this.bucket(kindKey).has(key)) throw errors.alreadyExists(t.group, t.resource, obj.metadata.name);
    if (kindKey === 'namespaces') {
      obj.spec = obj.spec ?? { finalizers: ['kubernetes'] };
      obj.status = { phase: 'Active' };
      obj.metadata.labels = { ...(obj.metadata.labels ?? {}), 'kubernetes.io/metadata.name': obj.metadata.name };
    }
    if (kindKey === 'services') this.defaultService(obj);
    obj.apiVersion = t.group ? `${t.group}/${t.versions[0]}` : (t.versions[0] as string);
    obj.kind = t.kind;
    const meta = obj.metadata;
    delete meta.resourceVersion;
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339();
    if (
      t.custom ||
      ['deployments.apps', 'jobs.batch', 'customresourcedefinitions.apiextensions.k8s.io'].includes(kindKey)
    )
      meta.generation = 1;
    meta.managedFields = opts.initialManagedFields ?? [];
    if (opts.manager) this.recordUpdate(t, obj, undefined, opts.manager);
    if (!meta.managedFields.length) delete meta.managedFields;
    if (opts.dryRun) return obj;
    return this.write(kindKey, key, obj);
  }

  /** PUT: replaces the object; stale metadata.resourceVersion is a 409 Conflict. */
  update(kindKey: string, input: KubeObject, opts: WriteOptions & { subresource?: 'status' } = {}): KubeObject {
    const t = this.typeOf(kindKey);
    const obj = clone(input);
    this.normalizeScope(t, obj);
    const current = this.mustGet(kindKey, obj.metadata.namespace, obj.metadata.name);
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== current.metadata.resourceVersion) {
      throw errors.staleResourceVersion(t.group, t.resource, obj.metadata.name);
    }
    let next: KubeObject;
    if (opts.subresource === 'status') {
      next = clone(current);
      next.status = obj.status;
    } else {
      next = obj;
      if (t.subresources.includes('status')) next.status = current.status;
      else if (kindKey === 'namespaces') next.status = current.status;
    }
    return this.commitUpdate(t, kindKey, current, next, opts);
  }

  /** PATCH with a merge, strategic merge or JSON patch body. */
  patch(
    kindKey: string,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patchBody: Json,
    opts: WriteOptions & { subresource?: 'status' } = {},
  ): KubeObject {
    const t = this.typeOf(kindKey);
    const current = this.mustGet(kindKey, namespace, name);
    let patched: Json;
    if (type === 'json') patched = applyJsonPatch(current as unknown as JsonObject, patchBody, t);
    else if (type === 'strategic') {
      if (t.custom) throw errors.unsupportedMediaType('application/strategic-merge-patch+json');
      patched = strategicMergePatch(current as unknown as JsonObject, patchBody);
    } else patched = jsonMergePatch(current as unknown as JsonObject, patchBody);
    const next = patched as unknown as KubeObject;
    const rvInPatch =
      isObject(patchBody) && isObject(patchBody.metadata) ? patchBody.metadata.resourceVersion : undefined;
    if (typeof rvInPatch === 'string' && rvInPatch !== current.metadata.resourceVersion) {
      throw errors.staleResourceVersion(t.group, t.resource, name);
    }
    if (!isObject(next) || !isObject(next.metadata)) throw errors.badRequest('patch produced an invalid object');
    // Identity fields cannot change through a patch.
    next.metadata.name = current.metadata.name;
    if (current.metadata.namespace) next.metadata.namespace = current.metadata.namespace;
    if (opts.subresource === 'status') {
      const onlyStatus = clone(current);
      onlyStatus.status = next.status;
      return this.commitUpdate(t, kindKey, current, onlyStatus, opts);
    }
    if (t.subresources.includes('status') || kindKey === 'namespaces') next.status = current.status;
    return this.commitUpdate(t, kindKey, current, next, opts);
  }

  /** Convenience for controllers: JSON-merge `status` into the object's status (status subresource). */
  patchStatus(
    kindKey: string,
    namespace: string | undefined,
    name: string,
    status: object,
    manager = 'lab-controller',
  ): KubeObject {
    return this.patch(
      kindKey,
      namespace,
      name,
      'merge',
      { status: status as Json },
      { manager, subresource: 'status' },
    );
  }

  /**
   * Server-side apply (PATCH application/apply-patch+yaml). Creates when missing; identical content
   * from the same manager makes no write (same resourceVersion); fields owned by another manager
   * with a different value conflict unless `force`.
   */
  apply(
    kindKey: string,
    namespace: string | undefined,
    name: string,
    applied: KubeObject,
    opts: { manager: string; force?: boolean; dryRun?: boolean; subresource?: 'status' },
  ): { object: KubeObject; changed: boolean } {
    const t = this.typeOf(kindKey);
    const apiVersion = applied.apiVersion;
    if (!applied.kind || !apiVersion) throw errors.badRequest('apiVersion and kind must be set in an apply patch');
    if (applied.kind !== t.kind) {
      throw errors.badRequest(`the kind of the object (${applied.kind}) does not match the resource (${t.resource})`);
    }
    if (applied.metadata?.name && applied.metadata.name !== name) {
      throw errors.badRequest(
        `the name of the object (${applied.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    const ignoreStatus =
      opts.subresource !== 'status' && (t.subresources.includes('status') || kindKey === 'namespaces');
    const appliedSet = new Set(
      [...leafPaths(applied as unknown as JsonObject, { ignoreStatus })].filter((k) =>
        opts.subresource === 'status' ? keyPath(k)[0] === 'status' : true,
      ),
    );
    const existing = this.get(kindKey, namespace, name);
    if (!existing) {
      const fresh = clone(applied);
      fresh.metadata = { ...(fresh.metadata ?? {}), name, ...(t.namespaced ? { namespace } : {}) };
      delete fresh.metadata.managedFields;
      const created = this.create(kindKey, fresh, {
        ...(opts.dryRun ? { dryRun: true } : {}),
        initialManagedFields: [this.managedEntry(opts.manager, 'Apply', apiVersion, appliedSet, opts.subresource)],
      });
      return { object: created, changed: true };
    }
    const entries = clone(existing.metadata.managedFields ?? []);
    const mine = entries.find(
      (e) =>
        e.manager === opts.manager && e.operation === 'Apply' && (e.subresource ?? '') === (opts.subresource ?? ''),
    );
    const previouslyMine = mine ? fromFieldsV1(mine.fieldsV1) : new Set<string>();
    const conflicts: Array<{ manager: string; field: string; version: string }> = [];
    const others = entries.filter((e) => e !== mine);
    for (const k of appliedSet) {
      const liveValue = getAt(existing as unknown as JsonObject, keyPath(k));
      const newValue = getAt(applied as unknown as JsonObject, keyPath(k));
      if (deepEqual(liveValue, newValue)) continue;
      for (const e of others) {
        if (fromFieldsV1(e.fieldsV1).has(k))
          conflicts.push({ manager: e.manager, field: displayPath(k), version: e.apiVersion });
      }
    }
    if (conflicts.length && !opts.force) throw errors.applyConflict(t.group, t.resource, name, conflicts);
    const next = clone(existing);
    const ownedByOthers = new Set<string>();
    for (const e of others) for (const k of fromFieldsV1(e.fieldsV1)) ownedByOthers.add(k);
    for (const k of previouslyMine) {
      if (!appliedSet.has(k) && !ownedByOthers.has(k)) deleteAt(next as unknown as JsonObject, keyPath(k));
    }
    for (const k of appliedSet)
      setAt(next as unknown as JsonObject, keyPath(k), getAt(applied as unknown as JsonObject, keyPath(k)) as Json);
    // Ownership: forced fields leave their old managers; the applier's set is replaced.
    const conflicted = new Set(conflicts.map((c) => c.field));
    const newEntries: ManagedFieldsEntry[] = [];
    for (const e of others) {
      const set = fromFieldsV1(e.fieldsV1);
      for (const k of [...set]) if (conflicted.has(displayPath(k))) set.delete(k);
      if (set.size)
        newEntries.push(set.size === fromFieldsV1(e.fieldsV1).size ? e : { ...e, fieldsV1: toFieldsV1(set) });
    }
    const unchangedOwnership =
      mine !== undefined && deepEqual(mine.fieldsV1, toFieldsV1(appliedSet)) && mine.apiVersion === apiVersion;
    const mineEntry =
      unchangedOwnership && mine
        ? mine
        : this.managedEntry(opts.manager, 'Apply', apiVersion, appliedSet, opts.subresource);
    const mineIndex = mine ? entries.indexOf(mine) : entries.length;
    newEntries.splice(Math.min(mineIndex, newEntries.length), 0, mineEntry);
    next.metadata.managedFields = newEntries;
    const contentSame = deepEqual(stripVolatile(existing), stripVolatile(next));
    if (contentSame && unchangedOwnership && newEntries.length === entries.length)
      return { object: existing, changed: false };
    if (opts.dryRun) return { object: next, changed: true };
    if (
      !deepEqual(withoutMetaAndStatus(existing), withoutMetaAndStatus(next)) &&
      next.metadata.generation !== undefined
    )
      next.metadata.generation += 1;
    this.validate(t, next);
    return { object: this.write(kindKey, nsName(next.metadata.namespace, name), next), changed: true };
  }

  /** Deletes one object; cascades to namespaced content (namespaces) and owner-referenced dependents. */
  delete(
    kindKey: string,
    namespace: string | undefined,
    name: string,
    opts: { propagationPolicy?: 'Orphan' | 'Background' | 'Foreground'; dryRun?: boolean } = {},
  ): KubeObject {
    const t = this.typeOf(kindKey);
    const current = this.mustGet(kindKey, namespace, name);
    if (opts.dryRun) return current;
    // Deleting a definition deletes every custom resource of it, and each watcher sees it go (a DELETED event
    // each), as from the API server: istiod's informers must drop them, or it later updates entries that are gone.
    const definedKind =
      kindKey === 'customresourcedefinitions.apiextensions.k8s.io' ? resourceTypeFromCrd(current) : undefined;
    if (definedKind) {
      const k = kindKeyOf(definedKind);
      for (const o of [...(this.objects.get(k)?.values() ?? [])])
        this.delete(k, o.metadata.namespace, o.metadata.name, { propagationPolicy: 'Orphan' });
    }
    const key = nsName(current.metadata.namespace, name);
    this.bucket(kindKey).delete(key);
    if (definedKind) this.objects.delete(kindKeyOf(definedKind));
    this.rv += 1;
    current.metadata.resourceVersion = String(this.rv);
    this.emit({ type: 'DELETED', kindKey, object: current, resourceVersion: current.metadata.resourceVersion });
    if (kindKey === 'namespaces') {
      for (const other of this.types().filter((x) => x.namespaced)) {
        const k = kindKeyOf(other);
        for (const o of this.list(k, { namespace: name }))
          this.delete(k, o.metadata.namespace, o.metadata.name, { propagationPolicy: 'Orphan' });
      }
    }
    // jobs.batch (and the legacy default for it) orphans unless asked otherwise; everything else cascades.
    const policy = opts.propagationPolicy ?? (kindKey === 'jobs.batch' ? 'Orphan' : 'Background');
    if (policy !== 'Orphan' && current.metadata.uid) this.collectDependents(current.metadata.uid);
    void t;
    return current;
  }

  // ---------- watch ----------

  /** Subscribes to writes of one kind (`'*'` for all). Returns the unsubscribe function. */
  watch(kindKey: string | '*', cb: (e: StoreEvent) => void): () => void {
    const w = { kindKey, cb };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** Events after `resourceVersion`, or undefined when the history no longer reaches back that far. */
  eventsSince(kindKey: string, resourceVersion: number): StoreEvent[] | undefined {
    const first = this.history[0];
    if (first && Number(first.resourceVersion) > resourceVersion + 1 && this.history.length >= HISTORY_LIMIT)
      return undefined;
    return this.history
      .filter((e) => e.kindKey === kindKey && Number(e.resourceVersion) > resourceVersion)
      .map((e) => ({ ...e, object: clone(e.object) }));
  }

  // ---------- internals ----------

  private bucket(kindKey: string): Map<string, KubeObject> {
    let b = this.objects.get(kindKey);
    if (!b) {
      b = new Map();
      this.objects.set(kindKey, b);
    }
    return b;
  }

  private scopeNs(kindKey: string, namespace: string | undefined): string | undefined {
    const t = this.types().find((x) => kindKeyOf(x) === kindKey);
    return t && !t.namespaced ? undefined : namespace;
  }

  private normalizeScope(t: ResourceType, obj: KubeObject): void {
    if (!t.namespaced) delete obj.metadata.namespace;
    else if (!obj.metadata.namespace) obj.metadata.namespace = 'default';
  }

  /**
   * What the API server's Service registry fills in on create: `type` ClusterIP, single-stack IPv4, and a
   * cluster IP from the service range (10.96.0.0/16, as kind and kubeadm default) unless the object asks
   * for one or for a headless Service (`None`). The addresses are virtual: nothing routes them; a sidecar
   * captures traffic to them and istiod's DNS name table answers with them.
   */
  private defaultService(obj: KubeObject): void {
    const spec = (obj.spec ??= {}) as JsonObject;
    spec.type ??= 'ClusterIP';
    if (spec.type === 'ExternalName') return;
    if (typeof spec.clusterIP !== 'string' || spec.clusterIP === '') {
      const used = new Set(
        [...this.bucket('services').values()].map((o) => (o.spec as JsonObject | undefined)?.clusterIP),
      );
      let ip = '';
      for (let n = 256 + 10; n < 65_534 && !ip; n++) {
        const candidate = `10.96.${n >> 8}.${n & 255}`;
        if ((n & 255) !== 0 && (n & 255) !== 255 && !used.has(candidate)) ip = candidate;
      }
      if (!ip) throw errors.badRequest('the service IP range 10.96.0.0/16 is full');
      spec.clusterIP = ip;
    }
    spec.clusterIPs ??= [spec.clusterIP as string];
    if (spec.clusterIP !== 'None') {
      spec.ipFamilies ??= ['IPv4'];
      spec.ipFamilyPolicy ??= 'SingleStack';
    }
    spec.sessionAffinity ??= 'None';
    spec.internalTrafficPolicy ??= 'Cluster';
  }

  private requireNamespace(ns: string): void {
    if (!this.bucket('namespaces').has(nsName(undefined, ns))) throw errors.notFound('', 'namespaces', ns);
    const nsObj = this.bucket('namespaces').get(nsName(undefined, ns));
    if (nsObj?.metadata.deletionTimestamp) {
      throw new KubeApiError({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `namespace ${ns} is being terminated`,
        reason: 'Forbidden',
        code: 403,
      });
    }
  }

  private validate(t: ResourceType, obj: KubeObject): void {
    const name = obj.metadata?.name ?? '';
    const causes: Array<{ field: string; message: string; reason?: string }> = [];
    if (!name)
      causes.push({
        field: 'metadata.name',
        message: 'Required value: name or generateName is required',
        reason: 'FieldValueRequired',
      });
    else if (t.resource === 'namespaces' || t.resource === 'services') {
      if (!DNS1123_LABEL.test(name) || name.length > 63) {
        causes.push({
          field: 'metadata.name',
          message: `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
        });
      }
    } else if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
      causes.push({
        field: 'metadata.name',
        message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
      });
    }
    for (const [k, v] of Object.entries(obj.metadata?.labels ?? {})) {
      if (typeof v !== 'string')
        causes.push({ field: `metadata.labels.${k}`, message: 'Invalid value: label values must be strings' });
    }
    if (t.resource === 'configmaps' && obj.data !== undefined) {
      if (!isObject(obj.data) || Object.values(obj.data).some((v) => typeof v !== 'string')) {
        causes.push({ field: 'data', message: 'Invalid value: data values must be strings' });
      }
    }
    if (t.resource === 'workloadentries' && t.group === 'networking.istio.io') {
      const spec = obj.spec as JsonObject | undefined;
      if (spec && typeof spec.address === 'string' && spec.address.length > 256)
        causes.push({ field: 'spec.address', message: 'Too long: must have at most 256 bytes' });
    }
    if (causes.length) throw errors.invalid(t.group, t.kind, name, causes);
  }

  private commitUpdate(
    t: ResourceType,
    kindKey: string,
    current: KubeObject,
    next: KubeObject,
    opts: WriteOptions & { subresource?: 'status' },
  ): KubeObject {
    for (const f of ['uid', 'creationTimestamp', 'generation', 'managedFields'] as const) {
      if (current.metadata[f] !== undefined)
        (next.metadata as unknown as Record<string, unknown>)[f] = clone(current.metadata[f]);
      else delete next.metadata[f];
    }
    next.apiVersion = current.apiVersion;
    next.kind = current.kind;
    this.validate(t, next);
    if (opts.manager) this.recordUpdate(t, next, current, opts.manager, opts.subresource);
    if (
      deepEqual(stripVolatile(current), stripVolatile(next)) &&
      deepEqual(current.metadata.managedFields, next.metadata.managedFields)
    )
      return current;
    if (opts.dryRun) return next;
    if (
      opts.subresource !== 'status' &&
      next.metadata.generation !== undefined &&
      !deepEqual(withoutMetaAndStatus(current), withoutMetaAndStatus(next))
    ) {
      next.metadata.generation += 1;
    }
    return this.write(kindKey, nsName(next.metadata.namespace, next.metadata.name), next);
  }

  /** An Update operation: the manager takes the fields whose values it changed. */
  private recordUpdate(
    t: ResourceType,
    next: KubeObject,
    before: KubeObject | undefined,
    manager: string,
    subresource?: string,
  ): void {
    const ignoreStatus = subresource !== 'status' && (t.subresources.includes('status') || t.resource === 'namespaces');
    const nextSet = leafPaths(next as unknown as JsonObject, { ignoreStatus: false });
    const changed = [...leafPaths(next as unknown as JsonObject, { ignoreStatus })].filter(
      (k) =>
        !before ||
        !deepEqual(
          getAt(before as unknown as JsonObject, keyPath(k)),
          getAt(next as unknown as JsonObject, keyPath(k)),
        ),
    );
    const entries = clone(before?.metadata.managedFields ?? []);
    const result: ManagedFieldsEntry[] = [];
    let mineSet = new Set<string>();
    for (const e of entries) {
      const set = fromFieldsV1(e.fieldsV1);
      for (const k of [...set])
        if (!nextSet.has(k) || (changed.includes(k) && !(e.manager === manager && e.operation === 'Update')))
          set.delete(k);
      if (e.manager === manager && e.operation === 'Update' && (e.subresource ?? '') === (subresource ?? '')) {
        mineSet = set;
        continue;
      }
      if (set.size) result.push(set.size === fromFieldsV1(e.fieldsV1).size ? e : { ...e, fieldsV1: toFieldsV1(set) });
    }
    for (const k of changed) mineSet.add(k);
    if (mineSet.size) {
      const old = entries.find(
        (e) => e.manager === manager && e.operation === 'Update' && (e.subresource ?? '') === (subresource ?? ''),
      );
      const same = old && deepEqual(old.fieldsV1, toFieldsV1(mineSet)) && changed.length === 0;
      result.push(same && old ? old : this.managedEntry(manager, 'Update', next.apiVersion, mineSet, subresource));
    }
    next.metadata.managedFields = result;
    if (!result.length) delete next.metadata.managedFields;
  }

  private managedEntry(
    manager: string,
    operation: 'Apply' | 'Update',
    apiVersion: string,
    set: Set<string>,
    subresource?: string,
  ): ManagedFieldsEntry {
    return {
      manager,
      operation,
      apiVersion,
      time: rfc3339(),
      fieldsType: 'FieldsV1',
      fieldsV1: toFieldsV1(set),
      ...(subresource ? { subresource } : {}),
    };
  }

  private write(kindKey: string, key: string, obj: KubeObject): KubeObject {
    this.rv += 1;
    obj.metadata.resourceVersion = String(this.rv);
    const existed = this.bucket(kindKey).has(key);
    this.bucket(kindKey).set(key, clone(obj));
    const eventType: WatchEventType = existed ? 'MODIFIED' : 'ADDED';
    this.emit({ type: eventType, kindKey, object: clone(obj), resourceVersion: obj.metadata.resourceVersion });
    return clone(obj);
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > HISTORY_LIMIT) this.history.splice(0, this.history.length - HISTORY_LIMIT);
    for (const w of [...this.watchers]) {
      if (w.kindKey !== '*' && w.kindKey !== e.kindKey) continue;
      try {
        w.cb({ ...e, object: clone(e.object) });
      } catch {
        // A broken watcher must not break writes.
      }
    }
  }

  private collectDependents(ownerUid: string): void {
    for (const [k, bucket] of [...this.objects.entries()]) {
      for (const o of [...bucket.values()]) {
        if (o.metadata.ownerReferences?.some((r) => r.uid === ownerUid)) {
          if (this.bucket(k).has(nsName(o.metadata.namespace, o.metadata.name)))
            this.delete(k, o.metadata.namespace, o.metadata.name, { propagationPolicy: 'Background' });
        }
      }
    }
  }
}

function stripVolatile(o: KubeObject): JsonObject {
  const c = clone(o) as unknown as JsonObject;
  const m = c.metadata as JsonObject;
  delete m.resourceVersion;
  delete m.managedFields;
  return c;
}

function withoutMetaAndStatus(o: KubeObject): JsonObject {
  const c = clone(o) as unknown as JsonObject;
  delete c.metadata;
  delete c.status;
  return c;
}

/** RFC 6902 JSON patch: add, remove, replace, move, copy, test. */
function applyJsonPatch(target: JsonObject, ops: Json, t: ResourceType): Json {
  if (!Array.isArray(ops)) throw errors.badRequest('json patch must be an array of operations');
  let doc: Json = clone(target);
  const parse = (p: string): string[] =>
    p
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const parentOf = (path: string[]): { parent: Json; key: string } => {
    let cur: Json = doc;
    for (const seg of path.slice(0, -1)) {
      cur = Array.isArray(cur) ? (cur[Number(seg)] as Json) : isObject(cur) ? (cur[seg] as Json) : null;
      if (cur === undefined || cur === null)
        throw errors.badRequest(
          `the server rejected our request due to an error in our request: path ${path.join('/')} not found`,
        );
    }
    return { parent: cur, key: path[path.length - 1] as string };
  };
  const read = (path: string[]): Json | undefined => {
    const { parent, key } = parentOf(path);
    return Array.isArray(parent) ? parent[Number(key)] : isObject(parent) ? parent[key] : undefined;
  };
  const remove = (path: string[]): void => {
    const { parent, key } = parentOf(path);
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else if (isObject(parent)) delete parent[key];
  };
  const add = (path: string[], value: Json): void => {
    if (path.length === 0) {
      doc = clone(value);
      return;
    }
    const { parent, key } = parentOf(path);
    if (Array.isArray(parent)) parent.splice(key === '-' ? parent.length : Number(key), 0, clone(value));
    else if (isObject(parent)) parent[key] = clone(value);
  };
  for (const op of ops) {
    if (!isObject(op) || typeof op.path !== 'string') throw errors.badRequest('invalid json patch operation');
    const path = parse(op.path);
    switch (op.op) {
      case 'add':
        add(path, op.value as Json);
        break;
      case 'remove':
        remove(path);
        break;
      case 'replace':
        remove(path);
        add(path, op.value as Json);
        break;
      case 'move':
      case 'copy': {
        const from = parse(String(op.from));
        const v = read(from) as Json;
        if (op.op === 'move') remove(from);
        add(path, v);
        break;
      }
      case 'test':
        if (!deepEqual(read(path), op.value))
          throw errors.invalid(t.group, t.kind, String(getAt(target, ['metadata', 'name'])), [
            { field: op.path, message: 'test operation failed' },
          ]);
        break;
      default:
        throw errors.badRequest(`unknown json patch operation ${String(op.op)}`);
    }
  }
  return doc;
}
