// Authentication (static bearer tokens + ServiceAccount JWTs) and an RBAC-like authorizer:
// a per-user allow-list of rules plus a deny list for tests (denyPermission / kube-403).
export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
}

export interface PolicyRule {
  verbs: string[];
  /** API groups ('' = core, '*' = all). */
  apiGroups: string[];
  /** Resources, `resource/subresource` for subresources, '*' for all. */
  resources: string[];
  namespaces?: string[];
}

export interface ResourceAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export interface RulesReviewStatus {
  resourceRules: { verbs: string[]; apiGroups: string[]; resources: string[] }[];
  nonResourceRules: { verbs: string[]; nonResourceURLs: string[] }[];
  incomplete: boolean;
  evaluationError?: string;
}

export interface DenyRule {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  /** Only this user; all users when absent. */
  user?: string;
}

export const ADMIN_USER = 'lab-admin';
export const RESTRICTED_USER = 'lab-restricted';

export const READ_ONLY_RULES: PolicyRule[] = [
  {
    verbs: ['get', 'list', 'watch'],
    apiGroups: ['', 'apps', 'batch', 'apiextensions.k8s.io', 'networking.istio.io', 'security.istio.io'],
    resources: ['*'],
  },
];

export const ADMIN_RULES: PolicyRule[] = [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }];

function ruleMatches(rule: PolicyRule, a: ResourceAttributes): boolean {
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const verbOk = rule.verbs.includes('*') || rule.verbs.includes(a.verb);
  const groupOk = rule.apiGroups.includes('*') || rule.apiGroups.includes(a.group);
  const resOk =
    rule.resources.includes('*') ||
    rule.resources.includes(res) ||
    (a.subresource !== undefined && rule.resources.includes(`${a.resource}/*`)) ||
    (a.subresource === undefined && rule.resources.includes(a.resource));
  const nsOk = !rule.namespaces || (a.namespace !== undefined && rule.namespaces.includes(a.namespace));
  return verbOk && groupOk && resOk && nsOk;
}

function denyMatches(d: DenyRule, user: string, a: ResourceAttributes): boolean {
  const any = (x: string | undefined, y: string | undefined): boolean => x === undefined || x === '*' || x === y;
  return (
    any(d.user, user) &&
    any(d.verb, a.verb) &&
    any(d.group, a.group) &&
    any(d.resource, a.resource) &&
    (d.subresource === undefined || d.subresource === a.subresource)
  );
}

export class Authorizer {
  private readonly rules = new Map<string, PolicyRule[]>();
  private denies: DenyRule[] = [];

  setRules(user: string, rules: PolicyRule[]): void {
    this.rules.set(user, rules);
  }

  addRules(user: string, rules: PolicyRule[]): void {
    this.rules.set(user, [...(this.rules.get(user) ?? []), ...rules]);
  }

  deny(rule: DenyRule): () => void {
    this.denies.push(rule);
    return () => {
      this.denies = this.denies.filter((d) => d !== rule);
    };
  }

  removeDeny(match: Partial<DenyRule>): void {
    this.denies = this.denies.filter(
      (d) => !Object.entries(match).every(([k, v]) => (d as unknown as Record<string, unknown>)[k] === v),
    );
  }

  clearDenies(): void {
    this.denies = [];
  }

  /**
   * What a SelfSubjectRulesReview answers for `namespace`: the rules that apply there (cluster-wide
   * ones and those limited to it), plus system:basic-user's and system:discovery's. A deny rule of the
   * lab cannot be written as RBAC allow rules, so while one applies to the user the list is marked
   * incomplete — as the API server marks it when another authorizer (a webhook) also decides.
   */
  rulesFor(user: UserInfo, namespace: string, forbidden: boolean): RulesReviewStatus {
    const own = forbidden
      ? []
      : (this.rules.get(user.username) ?? []).filter((r) => !r.namespaces || r.namespaces.includes(namespace));
    const resourceRules = [
      {
        verbs: ['create'],
        apiGroups: ['authorization.k8s.io'],
        resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'],
      },
      ...own.map((r) => ({ verbs: [...r.verbs], apiGroups: [...r.apiGroups], resources: [...r.resources] })),
    ];
    const nonResourceRules = [
      {
        verbs: ['get'],
        nonResourceURLs: [
          '/api',
          '/api/*',
          '/apis',
          '/apis/*',
          '/healthz',
          '/livez',
          '/openapi',
          '/openapi/*',
          '/readyz',
          '/version',
          '/version/',
        ],
      },
    ];
    const denied = this.denies.filter((d) => d.user === undefined || d.user === user.username);
    return denied.length > 0
      ? {
          resourceRules,
          nonResourceRules,
          incomplete: true,
          evaluationError: `lab: ${denied.length} deny rule(s) apply to ${user.username}; ask a SelfSubjectAccessReview`,
        }
      : { resourceRules, nonResourceRules, incomplete: false };
  }

  /** RBAC's decision with its reason text (as SubjectAccessReview reports it). */
  authorize(user: UserInfo, a: ResourceAttributes): { allowed: boolean; reason: string } {
    if (this.denies.some((d) => denyMatches(d, user.username, a))) return { allowed: false, reason: '' };
    // Everyone may ask about themselves and review access (system:basic-user).
    if (a.group === 'authorization.k8s.io' && a.resource.startsWith('selfsubject') && a.verb === 'create') {
      return {
        allowed: true,
        reason:
          'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user" to Group "system:authenticated"',
      };
    }
    const rules = this.rules.get(user.username) ?? [];
    if (rules.some((r) => ruleMatches(r, a))) {
      return {
        allowed: true,
        reason: `RBAC: allowed by ClusterRoleBinding "${user.username}" of ClusterRole "${user.username}" to User "${user.username}"`,
      };
    }
    return { allowed: false, reason: '' };
  }
}
