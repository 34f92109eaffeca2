// Patch semantics: JSON merge patch (RFC 7386), strategic merge patch for the built-in list fields
// our kinds use, and the field sets behind server-side apply's managedFields (FieldsV1).
//
// Simplification (documented in README): lists are atomic for field ownership (a list is one leaf,
// like `+listType=atomic`); strategic merge knows the merge keys of the lists in our kinds only.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return (
      ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]))
    );
  }
  return false;
}

/** RFC 7386 JSON merge patch. */
export function jsonMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else result[k] = jsonMergePatch(result[k], v);
  }
  return result;
}

/** Merge keys of the list fields (by field name) in the kinds the double serves. */
const MERGE_KEYS: Record<string, string[]> = {
  containers: ['name'],
  initContainers: ['name'],
  ephemeralContainers: ['name'],
  env: ['name'],
  volumes: ['name'],
  volumeMounts: ['mountPath'],
  imagePullSecrets: ['name'],
  secrets: ['name'],
  conditions: ['type'],
  ownerReferences: ['uid'],
  // containers[].ports merge on containerPort, Service ports on port.
  ports: ['containerPort', 'port'],
};

function mergeKeyFor(field: string, items: Json[]): string | undefined {
  const keys = MERGE_KEYS[field];
  if (!keys) return undefined;
  return keys.find((k) => items.some((it) => isObject(it) && k in it)) ?? keys[0];
}

/** Strategic merge patch (the subset kubectl sends for our kinds). */
export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const r = clone(patch);
    delete r.$patch;
    return r;
  }
  if (patch.$patch === 'delete') return null;
  const result: JsonObject = isObject(target) ? clone(target) : {};
  const retainKeys = Array.isArray(patch.$retainKeys) ? (patch.$retainKeys as string[]) : undefined;
  const orders: Record<string, Json[]> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      if (Array.isArray(v)) orders[k.slice('$setElementOrder/'.length)] = v;
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = result[field];
      if (Array.isArray(cur) && Array.isArray(v)) result[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    if (v === null) {
      delete result[k];
      continue;
    }
    const cur = result[k];
    if (Array.isArray(v)) {
      const key = mergeKeyFor(k, [...v, ...(Array.isArray(cur) ? cur : [])]);
      if (key && Array.isArray(cur) && v.every((x) => isObject(x))) {
        const merged = clone(cur);
        for (const item of v as JsonObject[]) {
          const idx = merged.findIndex((m) => isObject(m) && deepEqual(m[key], item[key]));
          if (item.$patch === 'delete') {
            if (idx >= 0) merged.splice(idx, 1);
          } else if (idx >= 0) merged[idx] = strategicMergePatch(merged[idx], item);
          else merged.push(strategicMergePatch(undefined, item));
        }
        result[k] = merged;
      } else {
        result[k] = clone(v).filter((x) => !(isObject(x) && x.$patch === 'delete'));
      }
    } else if (isObject(v)) {
      const merged = strategicMergePatch(cur, v);
      if (merged === null) delete result[k];
      else result[k] = merged;
    } else {
      result[k] = v;
    }
  }
  for (const [field, order] of Object.entries(orders)) {
    const cur = result[field];
    if (!Array.isArray(cur)) continue;
    const key = mergeKeyFor(field, cur);
    const pos = (x: Json): number => {
      const i = order.findIndex((o) =>
        key && isObject(o) && isObject(x) ? deepEqual(o[key], x[key]) : deepEqual(o, x),
      );
      return i < 0 ? order.length : i;
    };
    result[field] = [...cur].sort((a, b) => pos(a) - pos(b));
  }
  if (retainKeys) for (const k of Object.keys(result)) if (!retainKeys.includes(k) && !(k in patch)) delete result[k];
  return result;
}

// ---------- field sets (server-side apply) ----------

/** A field path, e.g. ['spec', 'template', 'labels', 'app']; joined with '\u0000' in sets. */
export type FieldPath = string[];
const SEP = '\u0000';

export function pathKey(p: FieldPath): string {
  return p.join(SEP);
}
export function keyPath(k: string): FieldPath {
  return k.split(SEP);
}

const IGNORED_TOP = new Set(['apiVersion', 'kind']);
const IGNORED_META = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'selfLink',
]);

/** Leaf paths of an object, minus the fields the API server owns (and `status` when it is a subresource). */
export function leafPaths(obj: JsonObject, opts: { ignoreStatus: boolean }): Set<string> {
  const out = new Set<string>();
  const walk = (v: Json, p: FieldPath): void => {
    if (isObject(v) && Object.keys(v).length > 0) {
      for (const [k, child] of Object.entries(v)) walk(child, [...p, k]);
    } else out.add(pathKey(p));
  };
  for (const [k, v] of Object.entries(obj)) {
    if (IGNORED_TOP.has(k)) continue;
    if (k === 'status' && opts.ignoreStatus) continue;
    if (k === 'metadata' && isObject(v)) {
      for (const [mk, mv] of Object.entries(v)) if (!IGNORED_META.has(mk)) walk(mv, ['metadata', mk]);
      continue;
    }
    walk(v, [k]);
  }
  return out;
}

export function getAt(obj: Json | undefined, p: FieldPath): Json | undefined {
  let cur: Json | undefined = obj;
  for (const seg of p) {
    if (!isObject(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

export function setAt(obj: JsonObject, p: FieldPath, value: Json): void {
  let cur: JsonObject = obj;
  p.forEach((seg, i) => {
    if (i === p.length - 1) cur[seg] = clone(value);
    else {
      if (!isObject(cur[seg])) cur[seg] = {};
      cur = cur[seg] as JsonObject;
    }
  });
}

export function deleteAt(obj: JsonObject, p: FieldPath): void {
  const parents: JsonObject[] = [];
  let cur: Json | undefined = obj;
  for (const seg of p.slice(0, -1)) {
    if (!isObject(cur)) return;
    parents.push(cur);
    cur = cur[seg];
  }
  if (!isObject(cur)) return;
  delete cur[p[p.length - 1] as string];
  // Prune maps that became empty because of the removal (not the top-level sections).
  for (let i = p.length - 2; i >= 1; i--) {
    const parent = parents[i];
    const seg = p[i] as string;
    const child = parent?.[seg];
    if (parent && isObject(child) && Object.keys(child).length === 0) delete parent[seg];
    else break;
  }
}

/** FieldsV1 encoding: {"f:metadata":{"f:labels":{"f:app":{}}}}. */
export function toFieldsV1(set: Set<string>): JsonObject {
  const root: JsonObject = {};
  for (const k of [...set].sort()) {
    let cur = root;
    for (const seg of keyPath(k)) {
      const f = `f:${seg}`;
      if (!isObject(cur[f])) cur[f] = {};
      cur = cur[f] as JsonObject;
    }
  }
  return root;
}

export function fromFieldsV1(f: Json | undefined): Set<string> {
  const out = new Set<string>();
  const walk = (node: Json | undefined, p: FieldPath): void => {
    const children = isObject(node) ? Object.keys(node).filter((k) => k.startsWith('f:')) : [];
    if (children.length === 0) {
      if (p.length) out.add(pathKey(p));
      return;
    }
    for (const c of children) walk((node as JsonObject)[c], [...p, c.slice(2)]);
  };
  walk(f, []);
  return out;
}

/** Display form of a path, as in SSA conflict messages: `.spec.template.labels.app`. */
export function displayPath(k: string): string {
  return '.' + keyPath(k).join('.');
}
