// Discovery documents (/version, /api, /apis, /api/v1, /apis/G/V) and server-side Table printing.
import { createHash } from 'node:crypto';
import type { ResourceType } from './resources.js';
import type { KubeObject, ObjectStore } from './store.js';
import { getAt, type JsonObject } from './merge.js';

export const KUBE_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0',
  gitCommit: '70d3cc986aa8221cd1dfb1121852688902d3bf53',
  gitTreeState: 'clean',
  buildDate: '2024-12-11T17:59:15Z',
  goVersion: 'go1.23.3',
  compiler: 'gc',
  platform: 'linux/amd64',
};

/** Kubernetes version priority: GA > beta > alpha, higher numbers first (v1 > v1beta1 > v1alpha3). */
export function sortVersions(versions: string[]): string[] {
  const rank = (v: string): [number, number, number] => {
    const m = v.match(/^v(\d+)(?:(alpha|beta)(\d+))?$/);
    if (!m) return [0, 0, 0];
    const stability = m[2] === undefined ? 3 : m[2] === 'beta' ? 2 : 1;
    return [stability, Number(m[1]), Number(m[3] ?? 0)];
  };
  return [...versions].sort((a, b) => {
    const ra = rank(a);
    const rb = rank(b);
    return rb[0] - ra[0] || rb[1] - ra[1] || rb[2] - ra[2];
  });
}

export function apiVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

interface GroupInfo {
  name: string;
  versions: string[];
}

export function groupsOf(types: ResourceType[]): GroupInfo[] {
  const map = new Map<string, Set<string>>();
  for (const t of types) {
    if (!t.group) continue;
    const s = map.get(t.group) ?? new Set<string>();
    t.versions.forEach((v) => s.add(v));
    map.set(t.group, s);
  }
  return [...map.entries()].map(([name, vs]) => ({ name, versions: sortVersions([...vs]) }));
}

function apiGroup(g: GroupInfo): object {
  const versions = g.versions.map((v) => ({ groupVersion: `${g.name}/${v}`, version: v }));
  return { name: g.name, versions, preferredVersion: versions[0] };
}

export function apiGroupList(types: ResourceType[]): object {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groupsOf(types).map(apiGroup) };
}

export function apiGroupDoc(types: ResourceType[], group: string): object | undefined {
  const g = groupsOf(types).find((x) => x.name === group);
  return g ? { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(g) } : undefined;
}

function storageVersionHash(t: ResourceType): string {
  return createHash('sha256').update(`${t.group}/${t.versions[0]}/${t.kind}`).digest('base64').slice(0, 11);
}

function subresourceEntry(t: ResourceType, sub: string): object {
  if (sub === 'token')
    return {
      name: `${t.resource}/token`,
      singularName: '',
      namespaced: true,
      group: 'authentication.k8s.io',
      version: 'v1',
      kind: 'TokenRequest',
      verbs: ['create'],
    };
  if (sub === 'log')
    return { name: `${t.resource}/log`, singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] };
  return {
    name: `${t.resource}/${sub}`,
    singularName: '',
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: ['get', 'patch', 'update'],
  };
}

export function apiResourceList(types: ResourceType[], group: string, version: string): object | undefined {
  const inGv = types.filter((t) => t.group === group && t.versions.includes(version));
  if (!inGv.length) return undefined;
  const resources: object[] = [];
  for (const t of inGv) {
    resources.push({
      name: t.resource,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: t.verbs,
      ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
      ...(t.categories ? { categories: t.categories } : {}),
      ...(t.verbs.includes('get') ? { storageVersionHash: storageVersionHash(t) } : {}),
    });
    for (const sub of t.subresources) resources.push(subresourceEntry(t, sub));
  }
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources,
  };
}

// ---------- Tables (Accept: application/json;as=Table;v=v1;g=meta.k8s.io) ----------

interface Column {
  name: string;
  type: string;
  format?: string;
  description: string;
  priority: number;
  cell: (o: KubeObject) => string | number;
}

/** kubectl's human durations (duration.HumanDuration). */
export function humanAge(from: string | undefined, now = Date.now()): string {
  if (!from) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(from)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
  return `${d}d`;
}

const nameCol: Column = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace.',
  priority: 0,
  cell: (o) => o.metadata.name,
};
const ageCol: Column = {
  name: 'Age',
  type: 'string',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
  priority: 0,
  cell: (o) => humanAge(o.metadata.creationTimestamp),
};

function str(v: unknown, dflt = '<none>'): string {
  if (v === undefined || v === null || v === '') return dflt;
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function servicePorts(o: KubeObject): string {
  const ports = (o.spec?.ports ?? []) as Array<{ port: number; protocol?: string; nodePort?: number }>;
  return ports.length
    ? ports.map((p) => `${p.port}${p.nodePort ? ':' + p.nodePort : ''}/${p.protocol ?? 'TCP'}`).join(',')
    : '<none>';
}

function serviceExternal(o: KubeObject): string {
  const ing = (o.status?.loadBalancer?.ingress ?? []) as Array<{ ip?: string; hostname?: string }>;
  const lb = ing.map((i) => i.ip ?? i.hostname).filter(Boolean);
  const ext = (o.spec?.externalIPs ?? []) as string[];
  const all = [...lb, ...ext];
  if (all.length) return all.join(',');
  return o.spec?.type === 'LoadBalancer' ? '<pending>' : '<none>';
}

function columnsFor(t: ResourceType): Column[] {
  switch (`${t.resource}.${t.group}`) {
    case 'namespaces.':
      return [
        nameCol,
        {
          name: 'Status',
          type: 'string',
          description: 'The status of the namespace',
          priority: 0,
          cell: (o) => str(o.status?.phase),
        },
        ageCol,
      ];
    case 'configmaps.':
      return [
        nameCol,
        {
          name: 'Data',
          type: 'string',
          description: 'Data contains the configuration data.',
          priority: 0,
          cell: (o) => Object.keys(o.data ?? {}).length + Object.keys(o.binaryData ?? {}).length,
        },
        ageCol,
      ];
    case 'serviceaccounts.':
      return [
        nameCol,
        { name: 'Secrets', type: 'string', description: 'Secrets', priority: 0, cell: (o) => (o.secrets ?? []).length },
        ageCol,
      ];
    case 'services.':
      return [
        nameCol,
        {
          name: 'Type',
          type: 'string',
          description: 'type of the service',
          priority: 0,
          cell: (o) => str(o.spec?.type, 'ClusterIP'),
        },
        {
          name: 'Cluster-IP',
          type: 'string',
          description: 'clusterIP',
          priority: 0,
          cell: (o) => str(o.spec?.clusterIP),
        },
        { name: 'External-IP', type: 'string', description: 'external addresses', priority: 0, cell: serviceExternal },
        { name: 'Port(s)', type: 'string', description: 'ports', priority: 0, cell: servicePorts },
        ageCol,
      ];
    case 'pods.': {
      const statuses = (o: KubeObject): Array<{ ready?: boolean; restartCount?: number }> =>
        o.status?.containerStatuses ?? [];
      return [
        nameCol,
        {
          name: 'Ready',
          type: 'string',
          description: 'ready containers',
          priority: 0,
          cell: (o) => `${statuses(o).filter((c) => c.ready).length}/${(o.spec?.containers ?? []).length}`,
        },
        {
          name: 'Status',
          type: 'string',
          description: 'pod phase',
          priority: 0,
          cell: (o) => str(o.status?.phase, 'Pending'),
        },
        {
          name: 'Restarts',
          type: 'string',
          description: 'restarts',
          priority: 0,
          cell: (o) => statuses(o).reduce((n, c) => n + (c.restartCount ?? 0), 0),
        },
        ageCol,
      ];
    }
    case 'deployments.apps':
      return [
        nameCol,
        {
          name: 'Ready',
          type: 'string',
          description: 'ready replicas',
          priority: 0,
          cell: (o) => `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 1}`,
        },
        {
          name: 'Up-to-date',
          type: 'integer',
          description: 'updated replicas',
          priority: 0,
          cell: (o) => o.status?.updatedReplicas ?? 0,
        },
        {
          name: 'Available',
          type: 'integer',
          description: 'available replicas',
          priority: 0,
          cell: (o) => o.status?.availableReplicas ?? 0,
        },
        ageCol,
      ];
    case 'jobs.batch':
      return [
        nameCol,
        {
          name: 'Status',
          type: 'string',
          description: 'job status',
          priority: 0,
          cell: (o) => {
            const conds = (o.status?.conditions ?? []) as Array<{ type: string; status: string }>;
            const c = conds.find((x) => x.status === 'True' && (x.type === 'Complete' || x.type === 'Failed'));
            return c ? c.type : 'Running';
          },
        },
        {
          name: 'Completions',
          type: 'string',
          description: 'completions',
          priority: 0,
          cell: (o) => `${o.status?.succeeded ?? 0}/${o.spec?.completions ?? 1}`,
        },
        ageCol,
      ];
    case 'customresourcedefinitions.apiextensions.k8s.io':
      return [
        nameCol,
        {
          name: 'Created At',
          type: 'date',
          description: 'creation time',
          priority: 0,
          cell: (o) => str(o.metadata.creationTimestamp),
        },
      ];
    default: {
      const extra: Column[] = (t.printerColumns ?? []).map((c) => ({
        name: c.name,
        type: c.type === 'date' ? 'date' : c.type,
        description: c.description ?? '',
        priority: 0,
        cell: (o: KubeObject) => {
          const v = getAt(o as unknown as JsonObject, c.jsonPath.replace(/^\./, '').split('.'));
          return c.type === 'date' ? humanAge(typeof v === 'string' ? v : undefined) : str(v, '');
        },
      }));
      return extra.some((c) => c.name === 'Age') ? [nameCol, ...extra] : [nameCol, ...extra, ageCol];
    }
  }
}

export function toTable(
  t: ResourceType,
  objects: KubeObject[],
  includeObject: string | null,
  resourceVersion: string,
): object {
  const cols = columnsFor(t);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: cols.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: c.description,
      priority: c.priority,
    })),
    rows: objects.map((o) => {
      const row: { cells: Array<string | number>; object?: object } = { cells: cols.map((c) => c.cell(o)) };
      if (includeObject === 'Object') row.object = o;
      else if (includeObject !== 'None')
        row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
      return row;
    }),
  };
}

/** Only here so callers can ask the store for current discovery without importing it twice. */
export function servedTypes(store: ObjectStore): ResourceType[] {
  return store.types();
}
