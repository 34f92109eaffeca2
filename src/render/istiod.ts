// Names istioctl derives from the istiod revision (istioctl/pkg/workload: IstiodHost/IstiodAddr).

/** A revision other than '' and 'default' selects `istiod-REV` and the `istio-REV` mesh configmap. */
export function isRevisioned(revision: string | undefined): revision is string {
  return revision !== undefined && revision !== '' && revision !== 'default';
}

export function istiodHost(istioNamespace: string, revision?: string): string {
  const istiod = isRevisioned(revision) ? `istiod-${revision}` : 'istiod';
  return `${istiod}.${istioNamespace}.svc`;
}

/** istiod's XDS/CA address; istioctl hard-codes port 15012. */
export function istiodAddress(istioNamespace: string, revision?: string): string {
  return `${istiodHost(istioNamespace, revision)}:15012`;
}

/** Name of the configmap that holds the mesh config for this revision. */
export function meshConfigMapName(revision?: string): string {
  return isRevisioned(revision) ? `istio-${revision}` : 'istio';
}

/**
 * The istiod address a VM's sidecar dials for its certificate and config: CA_ADDR of its cluster.env, which
 * onboarding writes as `istiodAddress(istioNamespace, revision)` (render/vm-files.ts); without CA_ADDR,
 * Istio's istio-start.sh falls back to istiod.istio-system.svc:15012. A revision move changes it.
 */
export function sidecarControlPlaneAddress(caAddress: string | undefined): string {
  return caAddress ?? istiodAddress('istio-system');
}
