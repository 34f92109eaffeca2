// Whether each group namespace exists, asked with what the least-privilege RBAC grants: a RoleBinding
// of the group role in a namespace allows GET of that namespace object (the API server takes the
// namespace of GET /api/v1/namespaces/<ns> from the path: k8s.io/apiserver
// pkg/endpoints/request/requestinfo.go), so no cluster-wide permission is needed to see that it is
// there. A 403 there means no RoleBinding grants it — or the namespace does not exist, since no
// RoleBinding can live in a namespace that is not there. Then the two ConfigMaps every namespace gets
// (`kube-root-ca.crt` from kube-controller-manager, `istio-ca-root-cert` from istiod), readable with the
// group role's `get configmaps`, settle it: one of them present proves the namespace exists.
// The answer is kept for the run: applying the group's objects uses it instead of reading again.
import type { ClusterContext } from './context.js';
import { KubeRequestError } from './errors.js';

/** How a group namespace was found: `read` = GET namespace; `configmap` = a ConfigMap in it. */
export type GroupNamespaceState =
  | { namespace: string; exists: true; seenBy: 'read' | 'configmap' }
  | { namespace: string; exists: false; seenBy: 'read' | 'forbidden' };

/** ConfigMaps every namespace holds, each written by a controller into every namespace it sees. */
export const EVERY_NAMESPACE_CONFIGMAPS = ['kube-root-ca.crt', 'istio-ca-root-cert'] as const;

async function configMapPresent(ctx: ClusterContext, namespace: string, name: string): Promise<boolean> {
  try {
    const cm = await ctx.transport.callOptional((o) => ctx.core.readNamespacedConfigMap({ namespace, name }, o));
    return cm !== undefined;
  } catch (error) {
    if (error instanceof KubeRequestError && error.kind === 'forbidden') return false;
    throw error;
  }
}

async function lookUp(ctx: ClusterContext, namespace: string): Promise<GroupNamespaceState> {
  try {
    const live = await ctx.transport.callOptional((o) => ctx.core.readNamespace({ name: namespace }, o));
    return live === undefined
      ? { namespace, exists: false, seenBy: 'read' }
      : { namespace, exists: true, seenBy: 'read' };
  } catch (error) {
    if (!(error instanceof KubeRequestError && error.kind === 'forbidden')) throw error;
  }
  for (const name of EVERY_NAMESPACE_CONFIGMAPS) {
    if (await configMapPresent(ctx, namespace, name)) return { namespace, exists: true, seenBy: 'configmap' };
  }
  return { namespace, exists: false, seenBy: 'forbidden' };
}

/** The state of `namespace`, looked up once per run (see the top of this file). */
export function groupNamespaceState(ctx: ClusterContext, namespace: string): Promise<GroupNamespaceState> {
  return ctx.cache.once(`group-namespace/${namespace}`, () => lookUp(ctx, namespace));
}

/** After the run created it. */
export function rememberNamespaceCreated(ctx: ClusterContext, namespace: string): void {
  ctx.cache.set<GroupNamespaceState>(`group-namespace/${namespace}`, { namespace, exists: true, seenBy: 'read' });
}

/** What preflight says about a namespace it found missing (or could not see). */
export function describeMissingNamespace(state: GroupNamespaceState & { exists: false }): string {
  return state.seenBy === 'read'
    ? `group namespace "${state.namespace}" does not exist`
    : `group namespace "${state.namespace}" was not found: reading it is forbidden ` +
        `(get namespaces in "${state.namespace}", which a RoleBinding of the group role there grants) ` +
        `and neither ${EVERY_NAMESPACE_CONFIGMAPS.join(' nor ')} is there`;
}
