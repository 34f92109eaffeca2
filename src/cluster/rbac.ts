// The minimal RBAC for the action's credentials, generated from REQUIRED_PERMISSIONS (so the
// README and preflight can never disagree), least privilege first: a ClusterRole of the
// group-namespace permissions, meant to be bound with a RoleBinding in each group namespace (never a
// ClusterRoleBinding: it holds TokenRequest for ServiceAccounts and Job creation; its `get namespaces`
// reaches only the namespace it is bound in); a separate opt-in ClusterRole for creating a missing
// group namespace (cluster-scoped);
// and a Role in the Istio namespace (plus one in the gateway namespace when it differs). Every rule
// carries a comment saying what the action does with it.
import { Document, isMap, isSeq } from 'yaml';
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

/** The purposes (REQUIRED_PERMISSIONS' `why`) of the permissions a rule grants. */
function purposesOf(rule: RbacRule, perms: readonly RequiredPermission[]): string[] {
  const whys = perms
    .filter(
      (perm) =>
        rule.apiGroups.includes(perm.group) &&
        rule.resources.includes(resourceOf(perm)) &&
        rule.verbs.includes(perm.verb),
    )
    .map((perm) => `${perm.verb} ${resourceOf(perm)}: ${perm.why}`);
  return [...new Set(whys)];
}

function roleDocument(object: Record<string, unknown>, perms: readonly RequiredPermission[], comment: string): string {
  const rules = rulesFor(perms);
  const doc = new Document({ ...object, rules });
  doc.commentBefore = comment;
  const seq = doc.get('rules', true);
  if (isSeq(seq)) {
    seq.items.forEach((item, index) => {
      if (isMap(item))
        item.commentBefore = purposesOf(rules[index]!, perms)
          .map((why) => ` ${why}`)
          .join('\n');
    });
  }
  return `---\n${doc.toString()}`;
}

/** The RBAC objects as multi-document YAML, each rule commented with its purpose, and how to bind them. */
export function renderMinimalRbacYaml(options: RbacOptions = {}): string {
  const name = options.name ?? 'istio-vm-onboard';
  const istioNamespace = options.istioNamespace ?? 'istio-system';
  const gatewayNamespace = options.gatewayNamespace ?? istioNamespace;
  const labels = { 'app.kubernetes.io/name': 'istio-vm-onboard' };
  const docs: string[] = [
    roleDocument(
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels } },
      scoped('group-namespace'),
      ` What the action does in a VM group's namespace. Bind it with a RoleBinding in each group namespace
 (kubectl -n <group-namespace> create rolebinding ${name} --clusterrole=${name} --user=<ci-user>);
 never with a ClusterRoleBinding, which would let the credentials mint tokens for every ServiceAccount
 and create Jobs in every namespace. Its "get namespaces" reaches only the namespace it is bound in: the
 API server treats GET of a namespace object as a request in that namespace.`,
    ),
    roleDocument(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: `${name}-namespaces`, labels },
      },
      scoped('cluster'),
      ` Optional: creating a group namespace that does not exist yet (cluster-scoped). Not needed when the
 group namespaces exist — the usual least-privilege setup, since the RoleBinding above can only be made in
 an existing namespace. Preflight asks for it only when a group namespace is missing, and then also
 needs the group role in that namespace. Opt in with a ClusterRoleBinding (kubectl create
 clusterrolebinding ${name}-namespaces --clusterrole=${name}-namespaces --user=<ci-user>).`,
    ),
  ];
  const namespaced = new Map<string, RequiredPermission[]>();
  for (const perm of scoped('istio-namespace', 'gateway-namespace')) {
    const ns = perm.scope === 'istio-namespace' ? istioNamespace : gatewayNamespace;
    namespaced.set(ns, [...(namespaced.get(ns) ?? []), perm]);
  }
  for (const [namespace, perms] of namespaced) {
    docs.push(
      roleDocument(
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'Role',
          metadata: { name: `${name}-istio-read`, namespace, labels },
        },
        perms,
        ` Read-only, in ${namespace}: bind it with a RoleBinding there
 (kubectl -n ${namespace} create rolebinding ${name}-istio-read --role=${name}-istio-read --user=<ci-user>).`,
      ),
    );
  }
  const header =
    '# Minimal RBAC for istio-vm-onboard (generated from REQUIRED_PERMISSIONS in src/cluster/permissions.ts).\n' +
    '# Least privilege: RoleBindings per VM group namespace (the namespaces exist); creating missing namespaces is\n' +
    '# a separate opt-in ClusterRole; nothing else cluster-wide.\n';
  return header + docs.join('');
}
