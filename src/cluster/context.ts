// Internal: what every cluster-side operation shares — the transport (the one place requests go
// through), the typed client-node APIs, the field manager, and a per-run cache so each value is
// read once per run (keeps requests at O(groups) + 1 per VM).
import {
  AppsV1Api,
  AuthorizationV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import type { KubeTransport } from './transport.js';

export class RunCache {
  private readonly entries = new Map<string, Promise<unknown>>();

  /** The value for key, computed once; a failed computation is forgotten so a later call retries. */
  once<T>(key: string, compute: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit) return hit as Promise<T>;
    const p = compute();
    this.entries.set(key, p);
    p.catch(() => {
      if (this.entries.get(key) === p) this.entries.delete(key);
    });
    return p;
  }

  private readonly recent = new Map<string, { startedAt: number; value: Promise<unknown> }>();

  /**
   * A read shared by everyone who asks within `maxAgeMs` of its start (and while it runs): VMs of a group
   * that poll the same namespace at once make one request per round, not one each. A failed read is not
   * shared after it settles. `now` is the clock (tests pass their own).
   */
  recentOrNew<T>(key: string, maxAgeMs: number, compute: () => Promise<T>, now: () => number = Date.now): Promise<T> {
    const hit = this.recent.get(key);
    const at = now();
    if (hit && at - hit.startedAt >= 0 && at - hit.startedAt < maxAgeMs) return hit.value as Promise<T>;
    const value = compute();
    const entry = { startedAt: at, value };
    this.recent.set(key, entry);
    value.catch(() => {
      if (this.recent.get(key) === entry) this.recent.delete(key);
    });
    return value;
  }

  /** Forget a shared read (after a write that changes what it would return). */
  forgetRecent(key: string): void {
    this.recent.delete(key);
  }

  /** True for the first caller only (per key and run): who gets to act on something that happens once. */
  claim(key: string): boolean {
    if (this.entries.has(key)) return false;
    this.entries.set(key, Promise.resolve(true));
    return true;
  }

  set<T>(key: string, value: T): void {
    this.entries.set(key, Promise.resolve(value));
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}

export interface ClusterContext {
  transport: KubeTransport;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  authz: AuthorizationV1Api;
  custom: CustomObjectsApi;
  fieldManager: string;
  cache: RunCache;
  /** Aborted when the run is done with the cluster: what still runs in the background (watches) stops. */
  closed: AbortSignal;
}

export function createClusterContext(
  kubeConfig: KubeConfig,
  transport: KubeTransport,
  fieldManager: string,
  closed: AbortSignal = new AbortController().signal,
): ClusterContext {
  return {
    closed,
    transport,
    core: kubeConfig.makeApiClient(CoreV1Api),
    apps: kubeConfig.makeApiClient(AppsV1Api),
    batch: kubeConfig.makeApiClient(BatchV1Api),
    authz: kubeConfig.makeApiClient(AuthorizationV1Api),
    custom: kubeConfig.makeApiClient(CustomObjectsApi),
    fieldManager,
    cache: new RunCache(),
  };
}

/**
 * A ConfigMap of istiod's namespace (the mesh config, the injector config, istiod's own istio-ca-root-cert),
 * undefined when absent: from one list of that namespace per run (issue 20: one request where there were a GET
 * per ConfigMap; `list configmaps` in that one namespace reaches what `get configmaps` there did).
 */
export async function readIstioConfigMap(
  ctx: ClusterContext,
  namespace: string,
  name: string,
): Promise<V1ConfigMap | undefined> {
  const byName = await ctx.cache.once(`configmaps/${namespace}`, async () => {
    const list = await ctx.transport.call((o) => ctx.core.listNamespacedConfigMap({ namespace }, o));
    return new Map((list.items ?? []).map((cm) => [cm.metadata?.name ?? '', cm]));
  });
  return byName.get(name);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
