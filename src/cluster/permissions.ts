// Every Kubernetes permission the action uses, as data: preflight checks them (a
// SelfSubjectRulesReview per namespace, SelfSubjectAccessReviews for the rest: access-rules.ts) and
// the README's minimal RBAC YAML is generated from the same list.
import type { Inventory } from '../inventory/types.js';

export type RunMode = 'onboard' | 'verify' | 'offboard' | 'plan';
export type PeerAuthenticationSetting = 'strict' | 'permissive' | 'unchanged';

/** Where a permission applies. */
export type PermissionScope =
  | 'cluster'
  /** each namespace of an inventory group */
  | 'group-namespace'
  /** the istiod namespace (istio-system) */
  | 'istio-namespace'
  /** the east-west gateway Service's namespace */
  | 'gateway-namespace';

/** Only needed when … */
export type PermissionCondition =
  | 'always'
  | 'static-registration'
  | 'service'
  | 'peer-authentication'
  /** a group namespace does not exist yet (onboard creates it) */
  | 'missing-namespace';

export interface RequiredPermission {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  scope: PermissionScope;
  modes: readonly RunMode[];
  when: PermissionCondition;
  /** What the action does with it (README). */
  why: string;
}

const ALL: readonly RunMode[] = ['onboard', 'verify', 'offboard', 'plan'];
const ONBOARD: readonly RunMode[] = ['onboard'];
const READS: readonly RunMode[] = ['onboard', 'plan'];
/** Reads that compare the group's objects with what onboard applies: plan, and verify (drift). */
const COMPARES: readonly RunMode[] = ['onboard', 'plan', 'verify'];
const VERIFY: readonly RunMode[] = ['onboard', 'verify'];

function p(
  verb: string,
  group: string,
  resource: string,
  scope: PermissionScope,
  modes: readonly RunMode[],
  why: string,
  extra: { subresource?: string; when?: PermissionCondition } = {},
): RequiredPermission {
  const out: RequiredPermission = { verb, group, resource, scope, modes, when: extra.when ?? 'always', why };
  if (extra.subresource) out.subresource = extra.subresource;
  return out;
}

export const REQUIRED_PERMISSIONS: readonly RequiredPermission[] = [
  // GET /api/v1/namespaces/<ns> is a request *in* <ns> for the API server (RequestInfo sets the namespace
  // from the path, k8s.io/apiserver pkg/endpoints/request/requestinfo.go), so the group role's RoleBinding in
  // <ns> grants reading that namespace object, and only that one.
  // verify (drift) reads it too, but falls back to the ConfigMaps every namespace holds (group-namespaces.ts).
  p('get', '', 'namespaces', 'group-namespace', READS, 'see that the group namespace exists (only its own object)'),
  // Cluster-scoped, and only asked for namespaces that do not exist (a RoleBinding cannot live in them).
  p('create', '', 'namespaces', 'cluster', ONBOARD, 'create a missing group namespace', {
    when: 'missing-namespace',
  }),

  p('get', '', 'serviceaccounts', 'group-namespace', COMPARES, "compare the group's ServiceAccount before applying"),
  p('create', '', 'serviceaccounts', 'group-namespace', ONBOARD, "create the group's ServiceAccount"),
  p('patch', '', 'serviceaccounts', 'group-namespace', ONBOARD, "server-side apply of the group's ServiceAccount"),
  p(
    'create',
    '',
    'serviceaccounts',
    'group-namespace',
    ONBOARD,
    'TokenRequest: bootstrap token (audience istio-ca), one per ServiceAccount and run',
    {
      subresource: 'token',
    },
  ),
  p(
    'get',
    '',
    'configmaps',
    'group-namespace',
    ['onboard', 'plan', 'verify'],
    'read istio-ca-root-cert (root-cert.pem for the VMs); see that the namespace exists when reading it is forbidden',
  ),

  p(
    'get',
    'networking.istio.io',
    'workloadgroups',
    'group-namespace',
    ['onboard', 'plan', 'verify'],
    'compare the WorkloadGroup',
  ),
  p('create', 'networking.istio.io', 'workloadgroups', 'group-namespace', ONBOARD, 'create the WorkloadGroup'),
  p(
    'patch',
    'networking.istio.io',
    'workloadgroups',
    'group-namespace',
    ONBOARD,
    'server-side apply of the WorkloadGroup',
  ),
  p(
    'list',
    'networking.istio.io',
    'workloadentries',
    'group-namespace',
    ALL,
    "list the group's WorkloadEntries (find a VM's)",
  ),
  p(
    'watch',
    'networking.istio.io',
    'workloadentries',
    'group-namespace',
    VERIFY,
    'follow the WorkloadEntries while VMs register and turn Healthy (one watch per namespace)',
  ),
  p('create', 'networking.istio.io', 'workloadentries', 'group-namespace', ONBOARD, 'create static WorkloadEntries', {
    when: 'static-registration',
  }),
  p(
    'patch',
    'networking.istio.io',
    'workloadentries',
    'group-namespace',
    ONBOARD,
    'server-side apply of static WorkloadEntries',
    {
      when: 'static-registration',
    },
  ),
  p(
    'delete',
    'networking.istio.io',
    'workloadentries',
    'group-namespace',
    ['offboard'],
    "delete an offboarded VM's WorkloadEntry",
  ),

  p('get', '', 'services', 'group-namespace', COMPARES, "compare the group's Service", { when: 'service' }),
  p('create', '', 'services', 'group-namespace', ONBOARD, "create the group's Service", { when: 'service' }),
  p('patch', '', 'services', 'group-namespace', ONBOARD, "server-side apply of the group's Service", {
    when: 'service',
  }),

  p(
    'get',
    'security.istio.io',
    'peerauthentications',
    'group-namespace',
    ['onboard', 'plan', 'verify'],
    'compare the PeerAuthentication',
  ),
  p(
    'list',
    'security.istio.io',
    'peerauthentications',
    'group-namespace',
    VERIFY,
    'find the mTLS mode that applies to a group',
  ),
  p('create', 'security.istio.io', 'peerauthentications', 'group-namespace', ONBOARD, 'create <group>-vm-mtls', {
    when: 'peer-authentication',
  }),
  p(
    'patch',
    'security.istio.io',
    'peerauthentications',
    'group-namespace',
    ONBOARD,
    'server-side apply of <group>-vm-mtls',
    {
      when: 'peer-authentication',
    },
  ),

  p(
    'create',
    'networking.istio.io',
    'serviceentries',
    'group-namespace',
    VERIFY,
    'the ServiceEntry the mTLS Job calls the VM through (ADR 0005)',
  ),
  p(
    'delete',
    'networking.istio.io',
    'serviceentries',
    'group-namespace',
    VERIFY,
    'delete it when its Job could not take it along (it is owned by the Job)',
  ),
  p('create', 'batch', 'jobs', 'group-namespace', VERIFY, 'mesh-to-VM mTLS verification Job (ADR 0002)'),
  p('delete', 'batch', 'jobs', 'group-namespace', VERIFY, 'delete the verification Job'),
  p('watch', '', 'pods', 'group-namespace', VERIFY, "wait for the verification Job's pod (one watch, label job-name)"),
  p('get', '', 'pods', 'group-namespace', VERIFY, "read the verification pod's log", { subresource: 'log' }),

  p('list', 'apps', 'deployments', 'istio-namespace', ALL, 'find istiod (label app=istiod) and its version and env'),
  p(
    'list',
    '',
    'configmaps',
    'istio-namespace',
    ['onboard', 'plan', 'verify'],
    "read the mesh config (istio[-REV]), the injector config (cluster ID) and istiod's root cert: one list",
  ),
  p(
    'list',
    'security.istio.io',
    'peerauthentications',
    'istio-namespace',
    VERIFY,
    'find a mesh-wide mTLS mode (root namespace)',
  ),
  p('get', '', 'services', 'gateway-namespace', READS, 'read the east-west gateway address'),
];

/** A permission with its namespace filled in. */
export interface ConcretePermission {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  /** undefined for cluster-scoped. */
  namespace?: string;
  why: string;
}

export interface PermissionContext {
  mode: RunMode;
  peerAuthentication?: PeerAuthenticationSetting;
  /**
   * Group namespaces known not to exist (preflight's look, group-namespaces.ts). Onboard needs the
   * cluster-scoped namespace permissions only for these; plan reads nothing in them. Default: none.
   */
  missingNamespaces?: readonly string[];
}

function plural(n: number, word: string): string {
  return `${word}${n === 1 ? '' : 's'}`;
}

/** The permissions one run needs, one per (verb, resource, namespace), in REQUIRED_PERMISSIONS order. */
export function permissionsForRun(inventory: Inventory, ctx: PermissionContext): ConcretePermission[] {
  const missing = new Set(ctx.missingNamespaces ?? []);
  const allGroupNamespaces = [...new Set(inventory.groups.map((g) => g.namespace))];
  // Plan reads nothing in a namespace that does not exist yet (it reports it as would-create).
  const groupNamespaces =
    ctx.mode === 'plan' ? allGroupNamespaces.filter((ns) => !missing.has(ns)) : allGroupNamespaces;
  const missingNamed = allGroupNamespaces.filter((ns) => missing.has(ns));
  const anyStatic = inventory.groups.some((g) => g.registration === 'static');
  const anyService = inventory.groups.some((g) => g.service !== undefined);
  const peerAuth = ctx.peerAuthentication !== undefined && ctx.peerAuthentication !== 'unchanged';
  const out: ConcretePermission[] = [];
  const seen = new Set<string>();
  for (const perm of REQUIRED_PERMISSIONS) {
    if (!perm.modes.includes(ctx.mode)) continue;
    if (perm.when === 'static-registration' && !anyStatic) continue;
    if (perm.when === 'service' && !anyService) continue;
    if (perm.when === 'peer-authentication' && !peerAuth) continue;
    if (perm.when === 'missing-namespace' && missingNamed.length === 0) continue;
    const namespaces: (string | undefined)[] =
      perm.scope === 'cluster'
        ? [undefined]
        : perm.scope === 'group-namespace'
          ? groupNamespaces
          : perm.scope === 'istio-namespace'
            ? [inventory.mesh.istioNamespace]
            : [inventory.mesh.eastWestGateway.namespace];
    for (const namespace of namespaces) {
      // A namespace known to be missing was already looked at; there is nothing of it to read again.
      if (perm.resource === 'namespaces' && namespace !== undefined && missing.has(namespace)) continue;
      const key = [perm.verb, perm.group, perm.resource, perm.subresource ?? '', namespace ?? ''].join('|');
      if (seen.has(key)) continue;
      seen.add(key);
      const why =
        perm.when === 'missing-namespace'
          ? `${perm.why}: ${plural(missingNamed.length, 'namespace')} ` +
            `${missingNamed.map((ns) => JSON.stringify(ns)).join(', ')} ` +
            `${missingNamed.length === 1 ? 'does' : 'do'} not exist`
          : perm.why;
      const c: ConcretePermission = { verb: perm.verb, group: perm.group, resource: perm.resource, why };
      if (perm.subresource) c.subresource = perm.subresource;
      if (namespace !== undefined) c.namespace = namespace;
      out.push(c);
    }
  }
  return out;
}
