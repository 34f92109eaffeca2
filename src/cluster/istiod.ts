// Pure facts about an istiod Deployment: which one serves a revision, its Istio version (from the
// image tag), and the feature flags set in its env (defaults as in istio/istio pilot/pkg/features).

import { isRevisioned } from '../render/istiod.js';

export interface ContainerLike {
  name?: string;
  image?: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
}

export interface DeploymentLike {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { template?: { spec?: { containers?: ContainerLike[] } } };
}

/** Name of the injector config map: `istio-sidecar-injector` or `istio-sidecar-injector-REV`. */
export function injectorConfigMapName(revision: string | undefined): string {
  return isRevisioned(revision) ? `istio-sidecar-injector-${revision}` : 'istio-sidecar-injector';
}

/** The istiod Deployment for a revision among those labelled app=istiod, or undefined. */
export function selectIstiod<T extends DeploymentLike>(
  deployments: readonly T[],
  revision: string | undefined,
): T | undefined {
  const wanted = isRevisioned(revision) ? revision : 'default';
  const matching = deployments.filter((d) => {
    const rev = d.metadata?.labels?.['istio.io/rev'];
    return wanted === 'default' ? rev === undefined || rev === '' || rev === 'default' : rev === wanted;
  });
  return [...matching].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))[0];
}

/** Revisions present among istiod Deployments, for messages. */
export function revisionsOf(deployments: readonly DeploymentLike[]): string[] {
  return [...new Set(deployments.map((d) => d.metadata?.labels?.['istio.io/rev'] || 'default'))].sort();
}

/** istiod's container (`discovery`), or the first one. */
export function discoveryContainer(d: DeploymentLike): ContainerLike | undefined {
  const containers = d.spec?.template?.spec?.containers ?? [];
  return containers.find((c) => c.name === 'discovery') ?? containers[0];
}

/**
 * The tag of an image reference (`reg:5000/istio/pilot:1.24.2-distroless` → `1.24.2-distroless`); undefined for
 * digests only.
 */
export function imageTag(image: string): string | undefined {
  const withoutDigest = image.split('@')[0] ?? '';
  const lastSlash = withoutDigest.lastIndexOf('/');
  const nameAndTag = withoutDigest.slice(lastSlash + 1);
  const colon = nameAndTag.indexOf(':');
  return colon === -1 ? undefined : nameAndTag.slice(colon + 1) || undefined;
}

/**
 * Istio version from a pilot image (`docker.io/istio/pilot:1.24.2`, `…:1.22.0-distroless`,
 * `…:1.25.0-beta.1`, `…:v1.20.3`). Undefined when the tag is not a version (`latest`, a digest).
 */
export function parseIstioVersion(image: string): string | undefined {
  const tag = imageTag(image);
  if (!tag) return undefined;
  // A release (1.24.2), a pre-release (1.25.0-beta.1) or a development build (1.31-dev-eed52ebb: the
  // VERSION file plus -dev, as Istio's Makefile.core.mk tags it; 1.28-alpha.<sha> on istio-testing), with an
  // optional image variant suffix.
  const m =
    /^v?(\d+\.\d+(?:\.\d+)?(?:-(?:alpha|beta|rc|dev)(?:[.-](?!(?:distroless|debug)$)[0-9A-Za-z]+)*)?)(?:-(?:distroless|debug))?$/.exec(
      tag,
    );
  return m?.[1];
}

/** Go's strconv.ParseBool, which istiod uses for its env flags. */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

export interface FeatureFlag {
  name: string;
  enabled: boolean;
  /** 'env': set on the container; 'default': not set, Istio's default applies; 'unknown': valueFrom or unparsable. */
  source: 'env' | 'default' | 'unknown';
  raw?: string;
}

/** Default values in istio/istio pilot/pkg/features/pilot.go (both true since Istio 1.x with VM GA). */
export const ISTIOD_FLAG_DEFAULTS: Record<string, boolean> = {
  PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION: true,
  PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS: true,
};

export function featureFlag(d: DeploymentLike, name: string): FeatureFlag {
  const env = discoveryContainer(d)?.env ?? [];
  const entry = [...env].reverse().find((e) => e.name === name); // last one wins, as in a container
  const dflt = ISTIOD_FLAG_DEFAULTS[name] ?? false;
  if (!entry) return { name, enabled: dflt, source: 'default' };
  if (entry.value === undefined) return { name, enabled: dflt, source: 'unknown' };
  const parsed = parseGoBool(entry.value);
  return parsed === undefined
    ? { name, enabled: dflt, source: 'unknown', raw: entry.value }
    : { name, enabled: parsed, source: 'env', raw: entry.value };
}
