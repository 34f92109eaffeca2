// Which of the run's permissions the credentials have, with few requests. One
// SelfSubjectRulesReview per namespace lists the RBAC rules that apply there; a permission that a
// complete list grants needs no further question. Everything else is asked with a
// SelfSubjectAccessReview, the API server's own answer for one permission:
//   - cluster-scoped permissions (a namespace's list cannot tell a ClusterRoleBinding from a
//     RoleBinding, and only the first grants cluster-scoped access);
//   - permissions the list does not grant (a rule limited to resourceNames, or none at all);
//   - every permission of a namespace whose list is incomplete (another authorizer, e.g. a webhook,
//     also decides there) or could not be read.
// So a fleet in ten namespaces costs about ten reviews, not two hundred, and a missing permission is
// still confirmed by an access review before the run reports it.
import pLimit from 'p-limit';
import type { ClusterContext } from './context.js';
import { KubeRequestError } from './errors.js';
import type { ConcretePermission } from './permissions.js';

/** A resource rule of a SelfSubjectRulesReview status (authorization.k8s.io/v1 ResourceRule). */
export interface ReviewedResourceRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
}

/** Does this rule grant the permission on every object of its kind (as RBAC matches rules)? */
export function ruleGrants(rule: ReviewedResourceRule, permission: ConcretePermission): boolean {
  if (rule.resourceNames && rule.resourceNames.length > 0) return false;
  const verbOk = rule.verbs.includes('*') || rule.verbs.includes(permission.verb);
  const groups = rule.apiGroups ?? [];
  const groupOk = groups.includes('*') || groups.includes(permission.group);
  const wanted = permission.subresource ? `${permission.resource}/${permission.subresource}` : permission.resource;
  const resourceOk = (rule.resources ?? []).some(
    (resource) =>
      resource === '*' ||
      resource === wanted ||
      (permission.subresource !== undefined && resource === `*/${permission.subresource}`),
  );
  return verbOk && groupOk && resourceOk;
}

/** The rules that apply in `namespace`, or undefined when the list is incomplete or cannot be read. */
async function rulesIn(ctx: ClusterContext, namespace: string): Promise<ReviewedResourceRule[] | undefined> {
  try {
    const review = await ctx.transport.call((o) =>
      ctx.authz.createSelfSubjectRulesReview(
        { body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } } },
        o,
      ),
    );
    if (review.status?.incomplete !== false) return undefined;
    return review.status.resourceRules ?? [];
  } catch (error) {
    // An API server (or a policy) that does not answer rules reviews: ask each permission instead.
    if (error instanceof KubeRequestError && ['forbidden', 'not-found', 'invalid', 'other'].includes(error.kind))
      return undefined;
    throw error;
  }
}

/** Asks one SelfSubjectAccessReview per permission (8 at a time); resolves to the ones not allowed. */
async function accessReviews(
  ctx: ClusterContext,
  permissions: readonly ConcretePermission[],
): Promise<ConcretePermission[]> {
  const limit = pLimit(8);
  // Once one review failed for good (API down, 500s after retries), the queued ones are not sent: the
  // run stops on that error anyway, and a failing API should not get every remaining request retried.
  let failure: unknown;
  const allowed = await Promise.all(
    permissions.map((permission) =>
      limit(async () => {
        if (failure !== undefined) throw failure;
        const review = await ctx.transport
          .call((o) =>
            ctx.authz.createSelfSubjectAccessReview(
              {
                body: {
                  apiVersion: 'authorization.k8s.io/v1',
                  kind: 'SelfSubjectAccessReview',
                  spec: {
                    resourceAttributes: {
                      verb: permission.verb,
                      group: permission.group,
                      resource: permission.resource,
                      ...(permission.subresource ? { subresource: permission.subresource } : {}),
                      ...(permission.namespace ? { namespace: permission.namespace } : {}),
                    },
                  },
                },
              },
              o,
            ),
          )
          .catch((error: unknown) => {
            failure ??= error;
            throw error;
          });
        return review.status?.allowed === true;
      }),
    ),
  );
  return permissions.filter((_, index) => !allowed[index]);
}

/** The permissions of `permissions` the credentials lack, in their order. */
export async function missingPermissions(
  ctx: ClusterContext,
  permissions: readonly ConcretePermission[],
): Promise<ConcretePermission[]> {
  const namespaces = [
    ...new Set(permissions.flatMap((permission) => (permission.namespace ? [permission.namespace] : []))),
  ];
  const clusterScoped = permissions.filter((permission) => !permission.namespace);
  // The cluster-scoped ones are asked while the namespaces' rules are read.
  const [clusterMissing, rules] = await Promise.all([
    accessReviews(ctx, clusterScoped),
    Promise.all(namespaces.map(async (namespace) => [namespace, await rulesIn(ctx, namespace)] as const)).then(
      (entries) => new Map(entries),
    ),
  ]);
  const unproven = permissions.filter(
    (permission) =>
      permission.namespace !== undefined &&
      !rules.get(permission.namespace)?.some((rule) => ruleGrants(rule, permission)),
  );
  const namespacedMissing = await accessReviews(ctx, unproven);
  const missing = new Set([...clusterMissing, ...namespacedMissing]);
  return permissions.filter((permission) => missing.has(permission));
}
