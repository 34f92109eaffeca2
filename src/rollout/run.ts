// The orchestrator: the story of one run. Inputs are already validated; the inventory is parsed.
//   select VMs → cluster preflight → per group: mesh objects, mesh values → per VM (bounded
//   concurrency, at most max-unavailable per group, stop starting VMs past the failure budget):
//   connect → inspect → token → render → apply → verify → roll back on failure → report.
import pLimit from 'p-limit';
import type { GroupSpec, Inventory, VmSpec } from '../inventory/types.js';
import {
  computeTotals,
  isSuccess,
  REPORT_SCHEMA_VERSION,
  type ClusterObjectRecord,
  type RunReport,
  type VmReport,
} from '../report/model.js';
import { resolveShare, type RunSettings } from '../settings.js';
import type { ClusterPort, MeshContext, RunLogger, VerifierPort, VmConnectorPort } from './ports.js';
import { firstWave, openEarlyConnections, type EarlyConnections } from './early-connections.js';
import { selectVms } from './select.js';
import { runVmPipeline, type VmPipelineContext } from './vm-pipeline.js';
import { checkVersionSkew, VersionSkewError } from './version-skew.js';
import { GroupCanary } from './canary.js';

export interface RolloutDependencies {
  /** Built lazily so that a bad input never opens a connection. */
  cluster: () => Promise<ClusterPort>;
  connector: VmConnectorPort;
  verifier: VerifierPort;
  logger: RunLogger;
  toolVersion: string;
  /** Inputs as given, already redacted, for the report. */
  redactedInputs: Record<string, string>;
  /** The sidecar package uploaded from the runner, when sidecar-package-path is set. */
  packageUpload?: Buffer;
  /** Called when a VM starts or finishes (the CLI shows a progress line). */
  progress?: (state: RolloutProgress) => void;
  now?: () => Date;
}

export interface RolloutProgress {
  done: number;
  total: number;
  failed: number;
  inFlight: string[];
}

export async function runRollout(
  settings: RunSettings,
  inventory: Inventory,
  deps: RolloutDependencies,
): Promise<RunReport> {
  const now = deps.now ?? (() => new Date());
  const started = now();
  const log = deps.logger;
  const selection = selectVms(inventory, settings.rollout);
  const report: RunReport = {
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: { name: 'istio-vm-onboard', version: deps.toolVersion, node: process.version },
    mode: settings.mode,
    startedAt: started.toISOString(),
    finishedAt: started.toISOString(),
    durationMs: 0,
    inputs: deps.redactedInputs,
    inventory: {
      source: inventory.source,
      groups: inventory.groups.length,
      vms: inventory.groups.reduce((sum, group) => sum + group.vms.length, 0),
      selected: selection.selected.length,
      ...(settings.rollout.shard ? { shard: `${settings.rollout.shard.index}/${settings.rollout.shard.count}` } : {}),
    },
    vms: [],
    warnings: [],
    totals: computeTotals([]),
  };
  const finish = (): RunReport => {
    const finished = now();
    report.finishedAt = finished.toISOString();
    report.durationMs = finished.getTime() - started.getTime();
    report.totals = computeTotals(report.vms);
    return report;
  };
  for (const { group, vm } of selection.otherShards) report.vms.push(skippedVm(group, vm, 'skipped-shard'));

  const groups = uniqueGroups(selection.selected.map(({ group }) => group));
  log.info(
    `${settings.mode}: ${selection.selected.length} VM(s) in ${groups.length} group(s) from ${inventory.source}` +
      (report.inventory.shard
        ? ` (shard ${report.inventory.shard}, ${selection.otherShards.length} VM(s) in other shards)`
        : ''),
  );
  if (selection.selected.length === 0) {
    report.warnings.push('no VM selected: check the groups and shard inputs');
    return finish();
  }

  // Cluster side: nothing on a VM is touched unless all of this succeeds.
  let cluster: ClusterPort | undefined;
  const meshByGroup = new Map<GroupSpec, MeshContext>();
  // verify and plan: the group's objects as a dry-run apply found them (its VMs report their drift).
  const objectsByGroup = new Map<GroupSpec, ClusterObjectRecord[]>();
  let early: EarlyConnections | undefined;
  try {
    cluster = await deps.cluster();
    const preflight = await cluster.preflight({ inventory, groups, mode: settings.mode });
    // Before any login: a sidecar version Istio does not support with this istiod is refused.
    checkSkew(settings, preflight.istioVersion, report.warnings);
    // The cluster answers and allows this run: log in to the first VMs while its objects and mesh values are prepared.
    if (settings.mode !== 'offboard')
      early = openEarlyConnections(deps.connector, firstWave(selection.selected, settings.rollout));
    report.cluster = {
      server: cluster.server,
      istioVersion: preflight.istioVersion,
      revision: preflight.revision,
      objects: [],
    };
    report.warnings.push(...preflight.warnings);
    log.info(
      `cluster ${cluster.server}: Istio ` +
        `${preflight.istioVersion}${preflight.revision ? ` (revision ${preflight.revision})` : ''}`,
    );
    for (const group of groups) {
      // Plan writes nothing: a namespace it would create has no istio-ca-root-cert to wait for.
      let namespaceNotCreatedYet = false;
      if (settings.mode === 'onboard' || settings.mode === 'plan') {
        const objects = await cluster.applyGroup(group, {
          peerAuthentication: settings.peerAuthentication,
          dryRun: settings.mode === 'plan',
        });
        report.cluster.objects.push(...objects);
        namespaceNotCreatedYet = objects.some(
          (object) =>
            object.kind === 'Namespace' && object.name === group.namespace && object.action === 'would-create',
        );
        for (const object of objects) {
          log.info(
            `  ${object.kind} ${object.namespace ? `${object.namespace}/` : ''}${object.name}: ${object.action}`,
          );
        }
        if (settings.mode === 'plan') objectsByGroup.set(group, objects);
      }
      if (settings.mode === 'verify') {
        // Drift of the group's objects: compared, never written. Not being able to compare them is a
        // warning, not a reason to skip the VMs' checks.
        try {
          objectsByGroup.set(
            group,
            await cluster.applyGroup(group, { peerAuthentication: settings.peerAuthentication, dryRun: true }),
          );
        } catch (error) {
          report.warnings.push(`group ${group.name}: its cluster objects were not compared: ${messageOf(error)}`);
        }
      }
      if (settings.mode !== 'offboard') {
        const mesh = await cluster.meshContext(group, namespaceNotCreatedYet ? { namespaceNotCreatedYet } : undefined);
        if (namespaceNotCreatedYet) {
          log.info(
            `  root cert: read from ${mesh.istioNamespace}/istio-ca-root-cert (istiod copies the ` +
              `same one into ${group.namespace} once it exists)`,
          );
        }
        meshByGroup.set(group, mesh);
        report.cluster.clusterID = mesh.clusterID;
        report.cluster.trustDomain = mesh.trustDomain;
        report.cluster.eastWest = mesh.eastWest;
        if (mesh.eastWest.hostname) {
          log.info(
            `east-west gateway ${mesh.eastWest.hostname} resolved to ` +
              `${mesh.eastWest.candidates.join(', ')}; using ${mesh.eastWest.address}`,
          );
        }
      }
    }
  } catch (error) {
    const stage = error instanceof VersionSkewError ? 'version-skew' : 'cluster';
    report.fatal = {
      stage,
      message: messageOf(error),
      hint: hintOf(error),
      ...(error instanceof VersionSkewError ? { hintId: error.hintId } : {}),
    };
    log.error(`${stage}: ${messageOf(error)}${error instanceof VersionSkewError ? ` — ${error.hint}` : ''}`);
    await early?.discardUnused();
    cluster?.close?.();
    for (const { group, vm } of selection.selected) report.vms.push(skippedVm(group, vm, 'skipped-preflight'));
    return finish();
  }

  const istioVersion = settings.istioVersion || report.cluster?.istioVersion || '';
  const connector = early?.connector ?? deps.connector;
  const vmResults = await rollVms(settings, selection.selected, cluster, meshByGroup, objectsByGroup, istioVersion, {
    ...deps,
    connector,
  }).finally(() => early?.discardUnused());
  report.vms.push(...vmResults);
  if (settings.mode === 'offboard') {
    for (const vm of vmResults) {
      if (vm.outcome !== 'offboarded') continue;
      const entry = selection.selected.find((item) => item.vm.name === vm.name);
      if (!entry) continue;
      try {
        report.cluster?.objects.push(...(await cluster.removeWorkloadEntries(entry.group, entry.vm, vm.workloadIP)));
      } catch (error) {
        report.warnings.push(`${vm.name}: WorkloadEntry not removed: ${messageOf(error)}`);
      }
    }
  }
  for (const [index, mesh] of [...meshByGroup.values()].entries()) {
    if (index === 0) continue;
    if (mesh.trustDomain !== report.cluster?.trustDomain) report.warnings.push('groups disagree on the trust domain');
  }
  cluster.close?.();
  if (report.cluster) report.cluster.apiRequests = cluster.requestCount();
  return finish();
}

async function rollVms(
  settings: RunSettings,
  selected: { group: GroupSpec; vm: VmSpec }[],
  cluster: ClusterPort,
  meshByGroup: Map<GroupSpec, MeshContext>,
  objectsByGroup: Map<GroupSpec, ClusterObjectRecord[]>,
  istioVersion: string,
  deps: RolloutDependencies,
): Promise<VmReport[]> {
  const global = pLimit(settings.rollout.concurrency);
  const perGroup = new Map<GroupSpec, ReturnType<typeof pLimit>>();
  for (const { group } of selected) {
    if (!perGroup.has(group)) {
      perGroup.set(group, pLimit(resolveShare(settings.rollout.maxUnavailable, group.vms.length)));
    }
  }
  // onboard: one canary per group (canary.ts) for upgrades and revision moves; first installs and unchanged VMs
  // never wait for it.
  const canaries = new Map<GroupSpec, GroupCanary>();
  if (settings.mode === 'onboard') for (const group of perGroup.keys()) canaries.set(group, new GroupCanary());
  const allowedFailures = resolveShare(settings.rollout.failureBudget, selected.length, 0);
  let failures = 0;
  let done = 0;
  const inFlight = new Set<string>();
  const report = (): void =>
    deps.progress?.({ done, total: selected.length, failed: failures, inFlight: [...inFlight] });
  const context: Omit<VmPipelineContext, 'group' | 'vm' | 'mesh' | 'groupObjects'> = {
    settings,
    istioVersion,
    cluster,
    connector: deps.connector,
    verifier: deps.verifier,
    logger: deps.logger,
    packageUpload: deps.packageUpload,
  };
  return Promise.all(
    selected.map(({ group, vm }) =>
      perGroup.get(group)!(() =>
        global(async () => {
          if (failures > allowedFailures) {
            deps.logger.warning(
              `[${vm.name}] not started: ${failures} VM(s) failed, over the failure budget of ${allowedFailures}`,
            );
            done += 1;
            report();
            return skippedVm(group, vm, 'skipped-budget');
          }
          inFlight.add(vm.name);
          report();
          const groupObjects = objectsByGroup.get(group);
          // Issue 20: the group's VMs reaching the mesh→VM check together share one Job; this one is on its way.
          deps.verifier.expect?.(group, vm);
          const result = await runVmPipeline({
            ...context,
            group,
            vm,
            mesh: meshByGroup.get(group),
            ...(groupObjects ? { groupObjects } : {}),
            ...(canaries.has(group) ? { canary: canaries.get(group)! } : {}),
          }).finally(() => deps.verifier.withdraw?.(group, vm));
          if (!isSuccess(result) && !result.outcome.startsWith('skipped')) failures += 1;
          inFlight.delete(vm.name);
          done += 1;
          report();
          return result;
        }),
      ),
    ),
  );
}

function skippedVm(
  group: GroupSpec,
  vm: VmSpec,
  outcome: 'skipped-shard' | 'skipped-budget' | 'skipped-preflight',
): VmReport {
  return {
    name: vm.name,
    group: group.name,
    namespace: group.namespace,
    address: `${vm.ssh.host}:${vm.ssh.port}`,
    ...(vm.line !== undefined ? { line: vm.line } : {}),
    outcome,
    steps: [],
    checks: [],
    files: [],
    restarted: false,
    durationMs: 0,
  };
}

/**
 * onboard and plan refuse a sidecar version (the istio-version input) Istio does not support with the istiod
 * found; verify, which installs nothing, warns. Without the input the sidecar is istiod's own version.
 */
function checkSkew(settings: RunSettings, istiodVersion: string, warnings: string[]): void {
  if (!settings.istioVersion || settings.mode === 'offboard') return;
  const verdict = checkVersionSkew(settings.istioVersion, istiodVersion);
  if (verdict.ok) return;
  if (verdict.unknown) {
    warnings.push(`version skew not checked: ${verdict.reason}`);
    return;
  }
  const error = new VersionSkewError(verdict);
  if (settings.mode === 'verify') warnings.push(error.message);
  else throw error;
}

function uniqueGroups(groups: GroupSpec[]): GroupSpec[] {
  return [...new Set(groups)];
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function hintOf(error: unknown): string | undefined {
  const hint = (error as { hint?: unknown } | undefined)?.hint;
  return typeof hint === 'string' ? hint : undefined;
}

export type { ClusterObjectRecord };
