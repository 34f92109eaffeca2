// The resource types the double serves: built-ins (fixed) and custom resources (derived from the
// CustomResourceDefinition objects in the store, so deleting a CRD removes its group from discovery).
export interface ResourceType {
  group: string;
  /** Versions served, preferred (storage) first. */
  versions: string[];
  /** Plural, lower case: `workloadgroups`. */
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  subresources: string[];
  verbs: string[];
  categories?: string[];
  /** True for custom resources (items in lists carry apiVersion/kind; patch must not be strategic). */
  custom: boolean;
  /** Extra columns for `kubectl get` tables (CRD additionalPrinterColumns style). */
  printerColumns?: Array<{ name: string; type: string; jsonPath: string; description?: string }>;
}

/** Store key of a resource type: `configmaps`, `deployments.apps`, `workloadgroups.networking.istio.io`. */
export function kindKeyOf(t: { group: string; resource: string }): string {
  return t.group ? `${t.resource}.${t.group}` : t.resource;
}

const CRUD = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function builtin(
  group: string,
  version: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  extra: Partial<ResourceType> = {},
): ResourceType {
  return {
    group,
    versions: [version],
    resource,
    singular: kind.toLowerCase(),
    kind,
    namespaced,
    shortNames: [],
    subresources: [],
    verbs: CRUD,
    custom: false,
    ...extra,
  };
}

export const BUILTIN_TYPES: ResourceType[] = [
  builtin('', 'v1', 'namespaces', 'Namespace', false, {
    shortNames: ['ns'],
    subresources: ['status'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  }),
  builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', true, { shortNames: ['sa'], subresources: ['token'] }),
  builtin('', 'v1', 'configmaps', 'ConfigMap', true, { shortNames: ['cm'] }),
  builtin('', 'v1', 'secrets', 'Secret', true),
  builtin('', 'v1', 'endpoints', 'Endpoints', true, { shortNames: ['ep'] }),
  builtin('', 'v1', 'nodes', 'Node', false, { shortNames: ['no'], subresources: ['status'] }),
  builtin('', 'v1', 'events', 'Event', true, { shortNames: ['ev'] }),
  builtin('discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice', true),
  builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', true),
  builtin('networking.k8s.io', 'v1', 'ingresses', 'Ingress', true, { shortNames: ['ing'], subresources: ['status'] }),
  builtin('networking.k8s.io', 'v1', 'ingressclasses', 'IngressClass', false),
  builtin(
    'admissionregistration.k8s.io',
    'v1',
    'mutatingwebhookconfigurations',
    'MutatingWebhookConfiguration',
    false,
    {
      categories: ['api-extensions'],
    },
  ),
  builtin(
    'admissionregistration.k8s.io',
    'v1',
    'validatingwebhookconfigurations',
    'ValidatingWebhookConfiguration',
    false,
    { categories: ['api-extensions'] },
  ),
  builtin('', 'v1', 'services', 'Service', true, {
    shortNames: ['svc'],
    subresources: ['status'],
    categories: ['all'],
  }),
  builtin('', 'v1', 'pods', 'Pod', true, { shortNames: ['po'], subresources: ['log', 'status'], categories: ['all'] }),
  builtin('apps', 'v1', 'deployments', 'Deployment', true, {
    shortNames: ['deploy'],
    subresources: ['status'],
    categories: ['all'],
  }),
  builtin('batch', 'v1', 'jobs', 'Job', true, { subresources: ['status'], categories: ['all'] }),
  builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false, {
    shortNames: ['crd', 'crds'],
    subresources: ['status'],
    categories: ['api-extensions'],
  }),
  builtin('authentication.k8s.io', 'v1', 'tokenreviews', 'TokenReview', false, { verbs: ['create'] }),
  builtin('authorization.k8s.io', 'v1', 'selfsubjectaccessreviews', 'SelfSubjectAccessReview', false, {
    verbs: ['create'],
  }),
  builtin('authorization.k8s.io', 'v1', 'selfsubjectrulesreviews', 'SelfSubjectRulesReview', false, {
    verbs: ['create'],
  }),
];

/** Group versions of built-in groups (for discovery), preferred first. */
export function builtinGroupVersions(group: string): string[] {
  const t = BUILTIN_TYPES.find((x) => x.group === group);
  return t ? t.versions : [];
}

interface CrdLike {
  spec?: {
    group?: string;
    scope?: string;
    names?: { plural?: string; singular?: string; kind?: string; shortNames?: string[]; categories?: string[] };
    versions?: Array<{
      name: string;
      served?: boolean;
      storage?: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns?: Array<{ name: string; type: string; jsonPath: string; description?: string }>;
    }>;
  };
}

export function resourceTypeFromCrd(crd: object): ResourceType | undefined {
  const s = (crd as CrdLike).spec;
  if (!s?.group || !s.names?.plural || !s.names.kind || !s.versions?.length) return undefined;
  const served = s.versions.filter((v) => v.served !== false);
  served.sort((a, b) => Number(b.storage === true) - Number(a.storage === true));
  const storage = served[0];
  if (!storage) return undefined;
  return {
    group: s.group,
    versions: served.map((v) => v.name),
    resource: s.names.plural,
    singular: s.names.singular ?? s.names.kind.toLowerCase(),
    kind: s.names.kind,
    namespaced: s.scope !== 'Cluster',
    shortNames: s.names.shortNames ?? [],
    subresources: storage.subresources?.status ? ['status'] : [],
    verbs: CRUD,
    ...(s.names.categories ? { categories: s.names.categories } : {}),
    custom: true,
    ...(storage.additionalPrinterColumns ? { printerColumns: storage.additionalPrinterColumns } : {}),
  };
}
