// One bootstrap token per ServiceAccount and run, shared by the VMs that present it. A TokenRequest
// for the group's ServiceAccount with audience istio-ca carries nothing about the VM: istiod's CA
// authenticates the ServiceAccount and signs the identity spiffe://<trust domain>/ns/<ns>/sa/<sa>
// whichever VM presents it, so one token per VM grants nothing more than one per group, and costs a
// Kubernetes request per VM (issue 20). A token is asked for again once less than half of its lifetime is
// left, so that a VM late in a long rollout still gets one its agent can use; a request that failed is
// not remembered (the next VM asks again).
import type { GroupSpec } from '../inventory/types.js';

export interface IssuedToken {
  token: string;
  expiresAt: Date;
}

export interface SharedTokenOptions {
  /** The lifetime asked for, in seconds (what decides "half of its lifetime"). */
  lifetimeSeconds: number;
  now?: () => number;
}

/** `request` wrapped so that the groups of one ServiceAccount share a token while it is fresh enough. */
export function sharedPerServiceAccount(
  request: (group: GroupSpec) => Promise<IssuedToken>,
  options: SharedTokenOptions,
): (group: GroupSpec) => Promise<IssuedToken> {
  const now = options.now ?? Date.now;
  const minimumLeftMs = (options.lifetimeSeconds * 1000) / 2;
  const issued = new Map<string, Promise<IssuedToken>>();
  const settled = new Map<string, IssuedToken>();
  return (group) => {
    const key = `${group.namespace}/${group.serviceAccount}`;
    const known = settled.get(key);
    if (known && known.expiresAt.getTime() - now() >= minimumLeftMs) return Promise.resolve(known);
    const pending = issued.get(key);
    if (pending && !known) return pending;
    const asked = request(group).then(
      (token) => {
        settled.set(key, token);
        return token;
      },
      (error: unknown) => {
        issued.delete(key);
        throw error;
      },
    );
    settled.delete(key);
    issued.set(key, asked);
    return asked;
  };
}
