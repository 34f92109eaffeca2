// What the istiod double needs from Kubernetes, implemented over the REST API (KubeRest).
import { KubeRest, type KubeRestOptions } from './kube-rest.js';

export interface KubeObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface TokenReviewOutcome {
  authenticated: boolean;
  username?: string;
  audiences?: string[];
  error?: string;
}

export interface IstiodKube {
  reviewToken(token: string, audiences: string[]): Promise<TokenReviewOutcome>;
  istiodEnv(): Promise<Record<string, string>>;
  getWorkloadGroup(ns: string, name: string): Promise<KubeObjectLike | undefined>;
  getWorkloadEntry(ns: string, name: string): Promise<KubeObjectLike | undefined>;
  createWorkloadEntry(obj: KubeObjectLike): Promise<void>;
  patchWorkloadEntry(ns: string, name: string, mergePatch: unknown): Promise<void>;
  patchWorkloadEntryStatus(ns: string, name: string, mergePatch: unknown): Promise<void>;
  deleteWorkloadEntry(ns: string, name: string): Promise<void>;
  listPeerAuthentications(): Promise<KubeObjectLike[]>;
}

const NET = '/apis/networking.istio.io/v1';

export function istiodKubeOverRest(
  o: KubeRestOptions,
  opts: { systemNamespace?: string; istiodDeployment?: string } = {},
): IstiodKube {
  const k = new KubeRest(o);
  const sys = opts.systemNamespace ?? 'istio-system';
  const dep = opts.istiodDeployment ?? 'istiod';
  const merge = 'application/merge-patch+json';
  return {
    async reviewToken(token, audiences) {
      const r = await k.request<{
        status?: { authenticated?: boolean; user?: { username?: string }; audiences?: string[]; error?: string };
      }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences },
      });
      return {
        authenticated: !!r.status?.authenticated,
        username: r.status?.user?.username,
        audiences: r.status?.audiences,
        error: r.status?.error,
      };
    },
    async istiodEnv() {
      const d = await k.getOrUndefined<{
        spec?: {
          template?: { spec?: { containers?: Array<{ name: string; env?: Array<{ name: string; value?: string }> }> } };
        };
      }>(`/apis/apps/v1/namespaces/${sys}/deployments/${dep}`);
      const env: Record<string, string> = {};
      const c =
        d?.spec?.template?.spec?.containers?.find((x) => x.name === 'discovery') ??
        d?.spec?.template?.spec?.containers?.[0];
      for (const e of c?.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
      return env;
    },
    getWorkloadGroup: (ns, name) => k.getOrUndefined<KubeObjectLike>(`${NET}/namespaces/${ns}/workloadgroups/${name}`),
    getWorkloadEntry: (ns, name) => k.getOrUndefined<KubeObjectLike>(`${NET}/namespaces/${ns}/workloadentries/${name}`),
    async createWorkloadEntry(obj) {
      await k.request('POST', `${NET}/namespaces/${obj.metadata.namespace}/workloadentries`, obj);
    },
    async patchWorkloadEntry(ns, name, patch) {
      await k.request('PATCH', `${NET}/namespaces/${ns}/workloadentries/${name}`, patch, merge);
    },
    async patchWorkloadEntryStatus(ns, name, patch) {
      await k.request('PATCH', `${NET}/namespaces/${ns}/workloadentries/${name}/status`, patch, merge);
    },
    async deleteWorkloadEntry(ns, name) {
      await k.request('DELETE', `${NET}/namespaces/${ns}/workloadentries/${name}`);
    },
    async listPeerAuthentications() {
      const l = await k.getOrUndefined<{ items?: KubeObjectLike[] }>('/apis/security.istio.io/v1/peerauthentications');
      return l?.items ?? [];
    },
  };
}
