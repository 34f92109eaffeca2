// Cluster preflight, before any VM is touched: istiod for the revision, its Istio version, the mesh
// config map, the Istio CRDs served, the istiod feature flags VMs rely on, and every permission the
// run needs (a SelfSubjectRulesReview per namespace, SelfSubjectAccessReviews for the rest: see
// access-rules.ts), all asked at once. All problems are collected and reported in one error.
import type { V1Deployment } from '@kubernetes/client-node';
import type { Inventory } from '../inventory/types.js';
import { proxyMetadataProblems } from '../render/proxy-metadata.js';
import { meshConfigMapName } from '../render/istiod.js';
import { parseYaml11 } from '../render/yaml-input.js';
import { missingPermissions } from './access-rules.js';
import { readIstioConfigMap, type ClusterContext } from './context.js';
import { describePermission, KubeRequestError } from './errors.js';
import { describeMissingNamespace, groupNamespaceState, type GroupNamespaceState } from './group-namespaces.js';
import {
  discoveryContainer,
  featureFlag,
  parseIstioVersion,
  revisionsOf,
  selectIstiod,
  type FeatureFlag,
} from './istiod.js';
import {
  permissionsForRun,
  type ConcretePermission,
  type PeerAuthenticationSetting,
  type RunMode,
} from './permissions.js';

export interface PreflightOptions {
  /** istiod revision; '' / 'default' = the default revision. Default: inventory.mesh.revision. */
  revision?: string;
  /** The inventory has groups with `registration: auto`. Default: derived from the inventory. */
  needsAutoRegistration: boolean;
  /** Health checks are needed (auto-registered groups with a probe). Default: derived from the inventory. */
  needsHealthChecks?: boolean;
  mode: RunMode;
  /** The peer-authentication input; decides whether PeerAuthentication writes are needed. */
  peerAuthentication?: PeerAuthenticationSetting;
  /** The checks will run with the default `verify-url` (istiod's :15014). */
  defaultVerifyUrl?: boolean;
}

/**
 * Issue 15: a VM on another network reaches mesh services only through the east-west gateway, over mTLS
 * to sidecar-injected endpoints; istiod's :15014 endpoint has no sidecar, and cross-network endpoints
 * without mTLS are dropped (pilot/pkg/xds/endpoints/ep_filters.go). So the default `verify-url` cannot
 * pass for a group with a `network`: say so before anything changes. Pure.
 */
export function multiNetworkVerifyUrlProblem(groups: readonly { name: string; network: string }[]): string | undefined {
  const onNetworks = groups.filter((g) => g.network !== '');
  if (onNetworks.length === 0) return undefined;
  const named = onNetworks.map((g) => `${g.name} (network ${g.network})`).join(', ');
  return (
    `the default verify-url (istiod's :15014) has no endpoint a VM on another network can reach: ` +
    `cross-network endpoints are reached only over mTLS through the east-west gateway, and istiod has no sidecar. ` +
    `Groups: ${named}. Set the verify-url input to a mesh service with sidecar-injected endpoints ` +
    `(e.g. http://<service>.<namespace>.svc.cluster.local:<port>/), or leave network empty when the ` +
    `VMs share the cluster's network`
  );
}

export interface CrdCheck {
  name: string;
  groupVersion: string;
  served: boolean;
}

export interface PreflightReport {
  istiod?: { namespace: string; name: string; revision: string; image: string };
  /** Istio version from istiod's image tag; undefined when the tag is not a version. */
  istioVersion?: string;
  meshConfigMap: { namespace: string; name: string; present: boolean };
  crds: CrdCheck[];
  autoRegistration?: FeatureFlag;
  healthChecks?: FeatureFlag;
  permissions: { checked: ConcretePermission[]; missing: ConcretePermission[] };
  /** Things the run can live with but the report should show. */
  warnings: string[];
  /** Blocking problems (preflight throws PreflightError when non-empty). */
  problems: string[];
}

export class PreflightError extends Error {
  constructor(readonly report: PreflightReport) {
    super(formatPreflightProblems(report.problems));
    this.name = 'PreflightError';
  }
}

export function formatPreflightProblems(problems: readonly string[]): string {
  if (problems.length === 1) return `Cluster preflight failed: ${problems[0]}`;
  return `Cluster preflight failed (${problems.length} problems):\n${problems.map((p) => `- ${p}`).join('\n')}`;
}

export function formatMissingPermissions(missing: readonly ConcretePermission[]): string {
  const lines = missing.map((m) => `  - ${describePermission(m)} — ${m.why}`);
  return (
    `the credentials lack ${missing.length} permission${missing.length === 1 ? '' : 's'} this ` +
    `run needs:\n${lines.join('\n')}\n  (the README's minimal RBAC grants exactly these; generated ` +
    `by renderMinimalRbacYaml)`
  );
}

const ISTIO_CRDS: Array<{ group: string; version: string; plural: string; forModes?: RunMode[] }> = [
  { group: 'networking.istio.io', version: 'v1', plural: 'workloadgroups' },
  { group: 'networking.istio.io', version: 'v1', plural: 'workloadentries' },
  // ADR 0005: the mTLS check calls each VM through a ServiceEntry (networking.istio.io/v1 from Istio 1.22).
  { group: 'networking.istio.io', version: 'v1', plural: 'serviceentries', forModes: ['onboard', 'verify'] },
];

async function checkCrds(ctx: ClusterContext, needPeerAuthentication: boolean, mode: RunMode): Promise<CrdCheck[]> {
  const wanted = ISTIO_CRDS.filter((w) => !w.forModes || w.forModes.includes(mode));
  if (needPeerAuthentication) wanted.push({ group: 'security.istio.io', version: 'v1', plural: 'peerauthentications' });
  const groupVersions = [...new Set(wanted.map((w) => `${w.group}/${w.version}`))];
  const served = new Map<string, Set<string>>();
  for (const gv of groupVersions) {
    const [group = '', version = ''] = gv.split('/');
    const list = await ctx.transport.callOptional((o) => ctx.custom.getAPIResources({ group, version }, o));
    served.set(gv, new Set((list?.resources ?? []).map((r) => r.name)));
  }
  return wanted.map((w) => ({
    name: `${w.plural}.${w.group}`,
    groupVersion: `${w.group}/${w.version}`,
    served: served.get(`${w.group}/${w.version}`)?.has(w.plural) ?? false,
  }));
}

/**
 * The mesh config's defaultConfig.proxyMetadata reaches every VM's cluster.env, which istio-start.sh
 * sources as root: each entry the renderer would refuse is a problem, named by its key. (An
 * unreadable mesh config is left to the renderer, which names the YAML error.)
 */
export function meshProxyMetadataProblems(meshText: string): string[] {
  let mesh: unknown;
  try {
    mesh = parseYaml11(meshText, 'mesh config');
  } catch {
    return [];
  }
  if (mesh === null || typeof mesh !== 'object' || Array.isArray(mesh)) return [];
  const meshObj = mesh as Record<string, unknown>;
  const defaultConfig = (meshObj.defaultConfig ?? meshObj.default_config) as Record<string, unknown> | undefined;
  if (defaultConfig === null || typeof defaultConfig !== 'object' || Array.isArray(defaultConfig)) return [];
  const metadata = defaultConfig.proxyMetadata ?? defaultConfig.proxy_metadata;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return [];
  const strings: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) strings[key] = typeof value === 'string' ? value : '';
  return proxyMetadataProblems(strings).map(
    ({ key, problem }) => `defaultConfig.proxyMetadata ${JSON.stringify(key)}: ${problem}`,
  );
}

/** The group namespaces that are not there (onboard and plan look; the other modes never touch them). */
async function missingGroupNamespaces(
  ctx: ClusterContext,
  inventory: Inventory,
  mode: RunMode,
): Promise<Array<GroupNamespaceState & { exists: false }>> {
  if (mode !== 'onboard' && mode !== 'plan') return [];
  const namespaces = [...new Set(inventory.groups.map((group) => group.namespace))];
  const states = await Promise.all(namespaces.map((namespace) => groupNamespaceState(ctx, namespace)));
  return states.filter((state): state is GroupNamespaceState & { exists: false } => !state.exists);
}

/** A permission about a missing namespace: creating it, or one the group role needs in it. */
function concernsMissingNamespace(
  permission: ConcretePermission,
  missingNamespaces: readonly GroupNamespaceState[],
): boolean {
  if (permission.resource === 'namespaces' && permission.namespace === undefined) return missingNamespaces.length > 0;
  return missingNamespaces.some((state) => state.namespace === permission.namespace);
}

/**
 * Onboarding into a namespace that is not there: one problem per namespace, naming it and what the
 * credentials lack — creating it (cluster-scoped), and the group role in it, which no RoleBinding can
 * grant before the namespace exists. Pure.
 */
export function missingNamespaceProblems(
  missingNamespaces: ReadonlyArray<GroupNamespaceState & { exists: false }>,
  missing: readonly ConcretePermission[],
  mode: RunMode,
): string[] {
  if (mode !== 'onboard') return [];
  const problems: string[] = [];
  const cannotCreate = missing.filter((m) => m.resource === 'namespaces' && m.namespace === undefined);
  for (const state of missingNamespaces) {
    const inIt = missing.filter((m) => m.namespace === state.namespace);
    if (cannotCreate.length === 0 && inIt.length === 0) continue;
    const lacks: string[] = [];
    if (cannotCreate.length > 0)
      lacks.push(
        `${cannotCreate.map((m) => `${m.verb} namespaces`).join(' and ')} (cluster-scoped) to create it ` +
          `(the README's istio-vm-onboard-namespaces ClusterRole, an opt-in)`,
      );
    if (inIt.length > 0)
      lacks.push(
        `${inIt.length} permission${inIt.length === 1 ? '' : 's'} of the group role in it ` +
          `(${inIt.map((m) => describePermission(m)).join('; ')}), ` +
          `which a RoleBinding can only grant once the namespace exists`,
      );
    problems.push(
      `${describeMissingNamespace(state)}, and the credentials lack ${lacks.join(', and ')}. ` +
        `Create namespace "${state.namespace}" and bind the group role in it (RoleBinding), ` +
        `then run again; nothing was changed`,
    );
  }
  return problems;
}

/**
 * Modes in which an istiod feature flag the inventory needs (autoregistration, health checks) being off is
 * blocking.
 */
const FLAGS_BLOCK_MODES: readonly RunMode[] = ['onboard', 'plan'];

export async function runPreflight(
  ctx: ClusterContext,
  inventory: Inventory,
  options: PreflightOptions,
): Promise<PreflightReport> {
  const revision = options.revision ?? inventory.mesh.revision;
  const istioNamespace = inventory.mesh.istioNamespace;
  const problems: string[] = [];
  const warnings: string[] = [];
  const needPeerAuthWrite = options.peerAuthentication !== undefined && options.peerAuthentication !== 'unchanged';

  // The reads below run alongside the permission reviews; a read the credentials may not make is not
  // reported twice (the missing permission says it), and a review failure is the one reported first.
  const deploymentsRead = ctx.transport.call((o) =>
    ctx.apps.listNamespacedDeployment({ namespace: istioNamespace, labelSelector: 'app=istiod' }, o),
  );
  const meshConfigRead = readIstioConfigMap(ctx, istioNamespace, meshConfigMapName(revision));
  const crdsRead = checkCrds(ctx, needPeerAuthWrite, options.mode);
  const readsSettled = Promise.allSettled([deploymentsRead, meshConfigRead, crdsRead]);
  // Which group namespaces exist decides which permissions the run needs: namespace creation
  // (cluster-scoped) only for a missing one, and only when onboarding (group-namespaces.ts).
  const missingNamespaces = await missingGroupNamespaces(ctx, inventory, options.mode);
  // Permissions first: a missing one explains later failures better than the failure itself.
  const perms = permissionsForRun(inventory, {
    mode: options.mode,
    ...(options.peerAuthentication ? { peerAuthentication: options.peerAuthentication } : {}),
    missingNamespaces: missingNamespaces.map((state) => state.namespace),
  });
  const [permissionsResult, readsResult] = await Promise.allSettled([missingPermissions(ctx, perms), readsSettled]);
  if (permissionsResult.status === 'rejected') throw permissionsResult.reason;
  if (readsResult.status === 'rejected') throw readsResult.reason;
  const [deploymentsResult, meshConfigResult, crdsResult] = readsResult.value;
  const missing = permissionsResult.value;
  problems.push(...missingNamespaceProblems(missingNamespaces, missing, options.mode));
  const missingElsewhere = missing.filter((m) => !concernsMissingNamespace(m, missingNamespaces));
  if (missingElsewhere.length > 0) problems.push(formatMissingPermissions(missingElsewhere));
  if (options.mode === 'plan') {
    for (const state of missingNamespaces)
      warnings.push(
        `${describeMissingNamespace(state)}: onboard will create it, which needs create namespaces ` +
          `(cluster-scoped) and the group role's permissions in it`,
      );
  }
  const canListDeployments = !missing.some((m) => m.resource === 'deployments' && m.verb === 'list');
  const canReadIstioConfigMaps = !missing.some((m) => m.resource === 'configmaps' && m.namespace === istioNamespace);
  const valueOf = <T>(result: PromiseSettledResult<T>, allowed: boolean): T | undefined => {
    if (!allowed) return undefined;
    if (result.status === 'rejected') throw result.reason;
    return result.value;
  };
  const deploymentList = valueOf(deploymentsResult, canListDeployments);
  const meshConfigMap = valueOf(meshConfigResult, canReadIstioConfigMaps);

  const report: PreflightReport = {
    meshConfigMap: { namespace: istioNamespace, name: meshConfigMapName(revision), present: false },
    crds: [],
    permissions: { checked: perms, missing },
    warnings,
    problems,
  };

  const revLabel = revision && revision !== 'default' ? revision : 'default';
  if (deploymentList) {
    const deployments: V1Deployment[] = deploymentList.items ?? [];
    const istiod = selectIstiod(deployments, revision);
    if (!istiod) {
      const found = deployments.length ? `found revisions: ${revisionsOf(deployments).join(', ')}` : 'found none';
      problems.push(
        `no istiod Deployment for revision "${revLabel}" in namespace ${istioNamespace} (label ` +
          `app=istiod${revLabel === 'default' ? '' : `, istio.io/rev=${revLabel}`}); ${found}. ` +
          'Is Istio installed, and are the istio-namespace / revision inputs right?',
      );
    } else {
      const image = discoveryContainer(istiod)?.image ?? '';
      report.istiod = { namespace: istioNamespace, name: istiod.metadata?.name ?? '', revision: revLabel, image };
      const version = parseIstioVersion(image);
      if (version) report.istioVersion = version;
      else
        warnings.push(`could not read the Istio version from istiod's image "${image}"; give the istio-version input`);

      const needsAuto = options.needsAutoRegistration;
      const needsHealth =
        options.needsHealthChecks ?? inventory.groups.some((g) => g.registration === 'auto' && g.probe !== undefined);
      report.autoRegistration = featureFlag(istiod, 'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION');
      report.healthChecks = featureFlag(istiod, 'PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS');
      for (const [flag, needed, what] of [
        [report.autoRegistration, needsAuto, 'groups with registration: auto'],
        [report.healthChecks, needsHealth, 'auto-registered groups with a readiness probe'],
      ] as const) {
        if (!needed) continue;
        if (!flag.enabled) {
          const message =
            `istiod ${report.istiod.name} has ${flag.name}=${flag.raw ?? 'false'}, but the inventory has ${what}. ` +
            `Set ${flag.name}=true on istiod (e.g. --set values.pilot.env.${flag.name}=true) or use ` +
            `registration: static.`;
          // Onboarding (and its plan) would create VMs that never register: stop before any VM. Verify
          // changes nothing, so it reports the effect per VM (workload-entry) instead of refusing to look;
          // offboard does not depend on the flags at all.
          if (FLAGS_BLOCK_MODES.includes(options.mode)) problems.push(message);
          else warnings.push(message);
        } else if (flag.source === 'unknown') {
          warnings.push(
            `istiod ${flag.name} is set from a reference or an unreadable value; assuming Istio's default (true)`,
          );
        }
      }
    }
  }

  if (canReadIstioConfigMaps) {
    const cm = meshConfigMap;
    report.meshConfigMap.present = cm?.data?.['mesh'] !== undefined;
    if (!cm) {
      problems.push(
        `mesh config map ${report.meshConfigMap.name} not found in namespace ${istioNamespace} ` +
          `(istioctl reads its "mesh" key)`,
      );
    } else if (!report.meshConfigMap.present) {
      problems.push(`config map ${istioNamespace}/${report.meshConfigMap.name} has no "mesh" key`);
    } else {
      const where = `config map ${istioNamespace}/${report.meshConfigMap.name} key "mesh"`;
      for (const problem of meshProxyMetadataProblems(cm.data!['mesh']!)) problems.push(`${where}: ${problem}`);
    }
  }

  if (crdsResult.status === 'fulfilled') {
    report.crds = crdsResult.value;
  } else {
    if (!(crdsResult.reason instanceof KubeRequestError)) throw crdsResult.reason;
    problems.push(`API discovery failed: ${crdsResult.reason.message}`);
  }
  const notServed = report.crds.filter((c) => !c.served);
  if (notServed.length > 0) {
    problems.push(
      `Istio CRD${notServed.length > 1 ? 's' : ''} not served: ` +
        `${notServed.map((c) => `${c.name} (${c.groupVersion})`).join(', ')}. ` +
        "Install Istio's CRDs (Istio ≥ 1.22 serves networking.istio.io/v1 and " +
        'security.istio.io/v1; helm chart "base" or istioctl install).',
    );
  }

  if (options.defaultVerifyUrl && (options.mode === 'onboard' || options.mode === 'verify')) {
    const problem = multiNetworkVerifyUrlProblem(inventory.groups);
    if (problem) problems.push(problem);
  }
  if (problems.length > 0) throw new PreflightError(report);
  return report;
}
