// An in-memory IstiodKube for standalone tests of the istiod double and the simulator (before or
// without the Kubernetes API double). Tokens are `sa:<ns>:<sa>:<aud>:<expEpochSec>`; the real
// TokenReview path is covered by the lab tests against test/lab/kube.
import type { IstiodKube, KubeObjectLike, TokenReviewOutcome } from './kube-access.js';

export class MemoryKube implements IstiodKube {
  env: Record<string, string> = {
    PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION: 'true',
    PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS: 'true',
  };
  groups = new Map<string, KubeObjectLike>();
  entries = new Map<string, KubeObjectLike>();
  peerAuthentications: KubeObjectLike[] = [];
  serviceAccounts = new Set<string>();

  static token(ns: string, sa: string, aud = 'istio-ca', expiresInSec = 3600): string {
    return `sa:${ns}:${sa}:${aud}:${Math.floor(Date.now() / 1000) + expiresInSec}`;
  }

  async reviewToken(token: string, audiences: string[]): Promise<TokenReviewOutcome> {
    const [kind, ns, sa, aud, exp] = token.split(':');
    if (kind !== 'sa' || !ns || !sa) return { authenticated: false, error: 'invalid bearer token' };
    if (Number(exp) < Date.now() / 1000) return { authenticated: false, error: 'service account token has expired' };
    if (!audiences.includes(aud ?? ''))
      return {
        authenticated: false,
        error: 'token audiences ["' + aud + '"] is invalid for the target audiences ["istio-ca"]',
      };
    if (!this.serviceAccounts.has(`${ns}/${sa}`))
      return { authenticated: false, error: `serviceaccounts "${sa}" not found` };
    return { authenticated: true, username: `system:serviceaccount:${ns}:${sa}`, audiences: [aud!] };
  }
  async istiodEnv() {
    return { ...this.env };
  }
  async getWorkloadGroup(ns: string, name: string) {
    return this.groups.get(`${ns}/${name}`);
  }
  async getWorkloadEntry(ns: string, name: string) {
    const e = this.entries.get(`${ns}/${name}`);
    return e ? (JSON.parse(JSON.stringify(e)) as KubeObjectLike) : undefined;
  }
  async createWorkloadEntry(obj: KubeObjectLike) {
    this.entries.set(
      `${obj.metadata.namespace}/${obj.metadata.name}`,
      JSON.parse(JSON.stringify(obj)) as KubeObjectLike,
    );
  }
  private merge(target: Record<string, unknown>, patch: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete target[k];
      else if (typeof v === 'object' && !Array.isArray(v)) {
        if (typeof target[k] !== 'object' || target[k] === null) target[k] = {};
        this.merge(target[k] as Record<string, unknown>, v as Record<string, unknown>);
      } else target[k] = v;
    }
  }
  async patchWorkloadEntry(ns: string, name: string, patch: unknown) {
    const e = this.entries.get(`${ns}/${name}`);
    if (e)
      this.merge(
        e as unknown as Record<string, unknown>,
        { ...(patch as Record<string, unknown>), status: undefined } as Record<string, unknown>,
      );
    if (e && 'status' in e && e.status === undefined) delete e.status;
  }
  async patchWorkloadEntryStatus(ns: string, name: string, patch: unknown) {
    const e = this.entries.get(`${ns}/${name}`);
    if (e) e.status = (patch as { status: Record<string, unknown> }).status;
  }
  async deleteWorkloadEntry(ns: string, name: string) {
    this.entries.delete(`${ns}/${name}`);
  }
  async listPeerAuthentications() {
    return this.peerAuthentications;
  }
}
