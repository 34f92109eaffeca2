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
