// The minimal RBAC for the action's credentials, generated from REQUIRED_PERMISSIONS (so the
// README and preflight can never disagree): a ClusterRole for cluster-scoped and group-namespace
// permissions (group namespaces may not exist yet, so a namespaced Role cannot be made in advance),
// and a Role in the Istio namespace (plus one in the gateway namespace when it differs).
import { stringify } from 'yaml';
import { REQUIRED_PERMISSIONS, type PermissionScope, type RequiredPermission } from './permissions.js';

export interface RbacRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface RbacOptions {
  name?: string;
  istioNamespace?: string;
  gatewayNamespace?: string;
}

const VERB_ORDER = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'];

function resourceOf(perm: RequiredPermission): string {
  return perm.subresource ? `${perm.resource}/${perm.subresource}` : perm.resource;
}

/** Merges permissions into rules: one rule per (apiGroup, verbs set), resources sorted. */
export function rulesFor(perms: readonly RequiredPermission[]): RbacRule[] {
  const verbsByResource = new Map<string, { group: string; resource: string; verbs: Set<string> }>();
  for (const perm of perms) {
    const key = `${perm.group}|${resourceOf(perm)}`;
    const entry = verbsByResource.get(key) ?? {
      group: perm.group,
      resource: resourceOf(perm),
      verbs: new Set<string>(),
    };
    entry.verbs.add(perm.verb);
    verbsByResource.set(key, entry);
  }
  const byGroupAndVerbs = new Map<string, RbacRule>();
  for (const e of verbsByResource.values()) {
    const verbs = [...e.verbs].sort((a, b) => VERB_ORDER.indexOf(a) - VERB_ORDER.indexOf(b));
    const key = `${e.group}|${verbs.join(',')}`;
    const rule = byGroupAndVerbs.get(key) ?? { apiGroups: [e.group], resources: [], verbs };
    rule.resources.push(e.resource);
    byGroupAndVerbs.set(key, rule);
  }
  const rules = [...byGroupAndVerbs.values()];
  for (const r of rules) r.resources.sort();
  rules.sort(
    (a, b) =>
      (a.apiGroups[0] ?? '').localeCompare(b.apiGroups[0] ?? '') ||
      (a.resources[0] ?? '').localeCompare(b.resources[0] ?? ''),
  );
  return rules;
}

function scoped(...scopes: PermissionScope[]): RequiredPermission[] {
  return REQUIRED_PERMISSIONS.filter((perm) => scopes.includes(perm.scope));
}

/** ClusterRole + Role(s) as multi-document YAML, with a header saying how to bind them. */
export function renderMinimalRbacYaml(options: RbacOptions = {}): string {
  const name = options.name ?? 'istio-vm-onboard';
  const istioNamespace = options.istioNamespace ?? 'istio-system';
  const gatewayNamespace = options.gatewayNamespace ?? istioNamespace;
  const labels = { 'app.kubernetes.io/name': 'istio-vm-onboard' };
  const docs: object[] = [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name, labels },
      rules: rulesFor(scoped('cluster', 'group-namespace')),
    },
  ];
  const namespaced = new Map<string, RequiredPermission[]>();
  for (const perm of scoped('istio-namespace', 'gateway-namespace')) {
    const ns = perm.scope === 'istio-namespace' ? istioNamespace : gatewayNamespace;
    namespaced.set(ns, [...(namespaced.get(ns) ?? []), perm]);
  }
  for (const [namespace, perms] of namespaced) {
    docs.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: `${name}-istio-read`, namespace, labels },
      rules: rulesFor(perms),
    });
  }
  const header =
    '# Minimal RBAC for istio-vm-onboard (generated from REQUIRED_PERMISSIONS in src/cluster/permissions.ts).\n' +
    '# Bind the ClusterRole with a ClusterRoleBinding (or a RoleBinding in each VM group namespace once it\n' +
    '# exists), and the Role(s) with a RoleBinding in their namespace.\n';
  return header + docs.map((d) => `---\n${stringify(d)}`).join('');
}
