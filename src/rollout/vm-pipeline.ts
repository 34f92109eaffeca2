// One VM's way through a run. Every step is recorded with its duration; the first failure stops the
// VM (others go on), and a VM whose checks fail after a change is rolled back to its previous state.
import type { GroupSpec, VmSpec } from '../inventory/types.js';
import {
  describePackageChange,
  type CheckResult,
  type ClusterObjectRecord,
  type DriftRecord,
  type FileChange,
  type StepName,
  type VmReport,
} from '../report/model.js';
import { packageUrlFor, type RunSettings } from '../settings.js';
import type {
  ClusterPort,
  MeshContext,
  RenderedVmFiles,
  RunLogger,
  VerifierPort,
  VerifyRequest,
  VmApplyOutcome,
  VmConnectorPort,
  InspectedVm,
  VmPort,
} from './ports.js';
import { ISTIO_PATHS } from '../vm/paths.js';
import { renderFilesForVm } from './render-vm.js';
import { istiodAddress, sidecarControlPlaneAddress } from '../render/istiod.js';
import type { GroupCanary } from './canary.js';
import {
  describeReBootstrap,
  needsReBootstrap,
  provisionedCertificateState,
  REBOOTSTRAP_MARGIN_MS,
  type ReBootstrapCause,
} from '../verify/provisioned-certificate.js';
import {
  clusterObjectDrift,
  compareVmFiles,
  describeDrift,
  plannedFileChanges,
  vmDrift,
  type FileComparison,
} from './drift.js';

export interface VmPipelineContext {
  settings: RunSettings;
  group: GroupSpec;
  vm: VmSpec;
  /** Undefined in offboard mode, which reads nothing from the mesh. */
  mesh: MeshContext | undefined;
  /** The sidecar version to install: the istio-version input, else istiod's version. */
  istioVersion: string;
  cluster: ClusterPort;
  connector: VmConnectorPort;
  verifier: VerifierPort;
  logger: RunLogger;
  packageUpload?: Buffer;
  /** verify and plan: the dry-run apply of the group's objects (what onboard would create or configure). */
  groupObjects?: ClusterObjectRecord[];
  /** onboard: the group's canary for upgrades and revision moves (canary.ts), shared by the group's VMs. */
  canary?: GroupCanary;
}

class StepFailure extends Error {
  constructor(
    readonly step: StepName,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** What one VM's steps share: the report they fill, and what earlier steps found. */
interface VmRun {
  context: VmPipelineContext;
  report: VmReport;
  /** Logs a step line once, as it happens, with the VM's name to keep concurrent VMs apart. */
  say(line: string): void;
  /** Runs one recorded step: its duration and detail go into the report, a failure ends the VM. */
  step<T>(name: StepName, work: () => Promise<T>, describe?: (value: T) => string): Promise<T>;
  port?: VmPort;
  facts?: InspectedVm;
  workloadIP?: string;
  /** Asked for while connecting and inspecting, when the steps need one. */
  earlyToken?: Promise<{ token: string; expiresAt: Date }>;
  token?: string;
  files?: RenderedVmFiles;
  /** The managed files on the VM against the rendered ones (plan and verify). */
  comparisons?: FileComparison[];
  /** Set when the sidecar must restart even if nothing changed (it must register again). */
  restart?: 'always';
  /**
   * Set when the certificate the agent renews with is expired (or about to be), or not under a root of the
   * bundle this run installs: the VM is re-bootstrapped.
   */
  reBootstrap?: ReBootstrapCause;
  applied?: VmApplyOutcome;
  /** This VM is its group's canary: the group's other upgrades and revision moves wait for its outcome. */
  isCanary?: boolean;
  /** Runs `work` with the VM's timeout held (waiting for the canary is not the VM's own time). */
  withTimeoutHeld<T>(work: () => Promise<T>): Promise<T>;
}

/** One stage of a VM's way; `stop` ends the VM with the outcome the stage set. */
type VmStage = (run: VmRun) => Promise<'stop' | void>;

/** The stages each mode runs, in order. */
function stagesFor(settings: RunSettings): VmStage[] {
  switch (settings.mode) {
    case 'offboard':
      return [connect, offboard];
    case 'verify':
      return [connect, inspect, workloadAddress, render, drift, verifyOnly];
    case 'plan':
      return [connect, inspect, workloadAddress, requireDiscovery, render, reBootstrapIfNeeded, drift, plan];
    case 'onboard':
      return [
        connect,
        inspect,
        workloadAddress,
        requireDiscovery,
        awaitCanary,
        bootstrapToken,
        render,
        reBootstrapIfNeeded,
        restartIfUnregistered,
        applyStaticWorkloadEntry,
        apply,
        ...(settings.verify.enabled ? [verifyOrRollBack] : []),
        reportApplied,
      ];
  }
}

export async function runVmPipeline(context: VmPipelineContext): Promise<VmReport> {
  const { vm, group, settings, logger } = context;
  const started = Date.now();
  const report: VmReport = {
    name: vm.name,
    group: group.name,
    namespace: group.namespace,
    address: `${vm.ssh.host}:${vm.ssh.port}`,
    ...(vm.line !== undefined ? { line: vm.line } : {}),
    outcome: 'failed',
    steps: [],
    checks: [],
    files: [],
    restarted: false,
    durationMs: 0,
  };
  const say = (line: string): void => logger.info(`[${vm.name}] ${line}`);
  let timer: NodeJS.Timeout | undefined;
  let timeUp: (error: StepFailure) => void = () => undefined;
  const timeout = new Promise<never>((_, reject) => {
    timeUp = reject;
  });
  const arm = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(
      () =>
        timeUp(
          new StepFailure(
            lastStep(report),
            `timed out after ${settings.rollout.vmTimeoutSeconds}s`,
            'raise vm-timeout or check the VM',
          ),
        ),
      settings.rollout.vmTimeoutSeconds * 1000,
    );
    timer.unref();
  };
  const run: VmRun = {
    context,
    report,
    say,
    step: recordedStep(report, say),
    withTimeoutHeld: async (work) => {
      if (timer) clearTimeout(timer);
      try {
        return await work();
      } finally {
        arm();
      }
    },
  };
  const stages = stagesFor(settings);
  // The bootstrap token does not depend on the VM: ask for it while connecting and inspecting (a token
  // nobody uses is harmless: TokenRequest stores nothing and the token expires).
  if (stages.includes(bootstrapToken)) {
    run.earlyToken = context.cluster.bootstrapToken(group);
    run.earlyToken.catch(() => undefined);
  }
  try {
    const work = (async () => {
      for (const stage of stages) {
        if ((await stage(run)) === 'stop') return;
      }
    })();
    arm();
    await Promise.race([work, timeout]);
  } catch (error) {
    const failure = error instanceof StepFailure ? error : new StepFailure(lastStep(report), String(error));
    report.outcome = 'failed';
    report.error = { step: failure.step, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) };
    logger.error(`[${vm.name}] ${failure.step} failed: ${failure.message}${failure.hint ? ` — ${failure.hint}` : ''}`);
  } finally {
    if (timer) clearTimeout(timer);
    if (run.port) {
      report.counters = run.port.counters();
      await run.port.close().catch(() => undefined);
    }
    report.durationMs = Date.now() - started;
    // The group's waiting upgrades go on (or are skipped) by the canary's outcome, whatever it was.
    if (run.isCanary) context.canary?.finish(report);
  }
  // When the VM is done: its outcome, and its checks folded beneath it (the steps are already above).
  if (report.checks.length > 0) logger.group(`${vm.name}: ${report.outcome}`, describeChecks(report.checks));
  else logger.info(`[${vm.name}] ${report.outcome}`);
  return report;
}

function recordedStep(report: VmReport, say: (line: string) => void): VmRun['step'] {
  return async (name, work, describe) => {
    const stepStarted = Date.now();
    try {
      const value = await work();
      const detail = describe?.(value);
      report.steps.push({ name, status: 'ok', durationMs: Date.now() - stepStarted, ...(detail ? { detail } : {}) });
      if (detail) say(`${name}: ${detail}`);
      return value;
    } catch (error) {
      const failure =
        error instanceof StepFailure
          ? error
          : new StepFailure(name, error instanceof Error ? error.message : String(error), hintOf(error));
      report.steps.push({ name, status: 'failed', durationMs: Date.now() - stepStarted, detail: failure.message });
      throw failure;
    }
  };
}

// ---- the stages ----------------------------------------------------------------------------------

async function connect(run: VmRun): Promise<void> {
  const { vm, connector } = run.context;
  const port = await run.step(
    'connect',
    () => connector.connect(vm),
    () => `connected to ${vm.ssh.user}@${vm.ssh.host}:${vm.ssh.port}`,
  );
  run.port = port;
  if (port.learnedHostKey) run.report.learnedHostKey = port.learnedHostKey;
}

async function offboard(run: VmRun): Promise<'stop'> {
  const port = connected(run);
  await run.step(
    'offboard',
    () => port.offboard(),
    () => 'sidecar stopped, package, files and hosts block removed',
  );
  run.report.outcome = 'offboarded';
  return 'stop';
}

async function inspect(run: VmRun): Promise<void> {
  const port = connected(run);
  const mesh = meshOf(run);
  run.facts = await run.step('inspect', () => port.inspect(mesh.eastWest.address), describeFacts);
}

async function workloadAddress(run: VmRun): Promise<void> {
  const { vm } = run.context;
  const mesh = meshOf(run);
  const workloadIP = vm.internalIP ?? inspected(run).routeSourceIP;
  if (!workloadIP) {
    throw new StepFailure(
      'inspect',
      'no workload address: the inventory has no internalIP and the VM has no route to the east-west gateway ' +
        mesh.eastWest.address,
      'set internalIP for this VM in the inventory, or fix the VM routing',
    );
  }
  run.workloadIP = workloadIP;
  run.report.workloadIP = workloadIP;
  run.report.workloadIPSource = vm.internalIP ? 'inventory' : 'route-to-gateway';
}

/** verify fails a VM that drifted (onboard repairs it); a failing check fails it too. */
async function verifyOnly(run: VmRun): Promise<'stop'> {
  const { report } = run;
  await verifyStep(run);
  const drifted = report.drift ?? [];
  report.outcome = drifted.length > 0 || report.checks.some((check) => check.status === 'fail') ? 'failed' : 'verified';
  if (drifted.length > 0) {
    report.error = { step: 'drift', message: describeDrift(drifted), hint: REPAIR_HINT };
  }
  return 'stop';
}

const REPAIR_HINT = 'run onboard to repair';

/**
 * What differs from what onboard would make: the managed files and the package on the VM, the static
 * WorkloadEntry and the group's objects in the cluster (a dry-run apply: nothing is written).
 */
async function drift(run: VmRun): Promise<void> {
  const { context, report } = run;
  const { group, vm, cluster, settings } = context;
  const workloadIP = workloadAddressOf(run);
  const found = await run.step(
    'drift',
    async (): Promise<DriftRecord[]> => {
      const facts = inspected(run);
      run.comparisons = compareVmFiles(rendered(run), facts);
      const onVm = vmDrift({ comparisons: run.comparisons, facts, packageVersion: context.istioVersion });
      const objects = [...(context.groupObjects ?? [])];
      if (group.registration === 'static') {
        objects.push(await cluster.applyStaticWorkloadEntry(group, vm, workloadIP, { dryRun: true }));
      }
      return [...onVm, ...clusterObjectDrift(objects)];
    },
    (records) => (records.length === 0 ? 'none' : `${records.length} finding(s)`),
  );
  report.drift = found;
  for (const record of found) {
    if (settings.mode === 'verify') context.logger.error(`[${vm.name}] drift: ${record.detail} — ${REPAIR_HINT}`);
    else run.say(`drift: ${record.detail} (onboard repairs it)`);
  }
}

async function requireDiscovery(run: VmRun): Promise<void> {
  if (inspected(run).reachesDiscovery) return;
  throw new StepFailure(
    'inspect',
    `the VM cannot reach the east-west gateway ${meshOf(run).eastWest.address}:15012 (istiod discovery and CA)`,
    'open port 15012 from the VM to the east-west gateway (security group / firewall), ' +
      'and check that istiod is exposed through the gateway',
  );
}

/**
 * What this run changes under a running sidecar: its version (an upgrade) and the istiod it dials (a revision
 * move: CA_ADDR, discoveryAddress and the hosts entry name istiod-REV). Undefined: nothing runs yet (a first
 * install) or neither changes.
 */
function runningSidecarChange(
  run: VmRun,
): { describe: string; controlPlane?: { from: string; to: string } } | undefined {
  const facts = inspected(run);
  const from = facts.installedVersion;
  if (!from) return undefined;
  const mesh = meshOf(run);
  const fromAddress = sidecarControlPlaneAddress(facts.caAddress);
  const toAddress = istiodAddress(mesh.istioNamespace, mesh.revision);
  const parts: string[] = [];
  if (from !== run.context.istioVersion) parts.push(`sidecar ${from} → ${run.context.istioVersion}`);
  if (fromAddress !== toAddress) parts.push(`istiod ${fromAddress} → ${toAddress}`);
  if (parts.length === 0) return undefined;
  return {
    describe: parts.join(', '),
    ...(fromAddress !== toAddress ? { controlPlane: { from: fromAddress, to: toAddress } } : {}),
  };
}

/**
 * A change under a running sidecar (an upgrade, a revision move: `runningSidecarChange`) goes through the
 * group's canary: the first such VM is it; the others wait here, before their token and apply, and are not
 * started when it failed.
 */
async function awaitCanary(run: VmRun): Promise<'stop' | void> {
  const { canary, group, vm, logger } = run.context;
  const change = runningSidecarChange(run);
  if (!change) return;
  if (change.controlPlane) {
    run.report.controlPlane = { address: change.controlPlane.to, from: change.controlPlane.from };
  }
  if (!canary) return;
  const role = canary.join(vm.name);
  if (role.canary) {
    run.isCanary = true;
    run.report.canary = { vm: vm.name, self: true };
    run.say(
      `canary of group ${group.name}: ${change.describe} first; the group's other upgrades and revision moves ` +
        'wait for its checks',
    );
    return;
  }
  run.report.canary = { vm: role.vm, self: false };
  run.say(`${change.describe} waits for the group's canary ${role.vm}`);
  // The canary verifies first: it must not wait for this VM to share a verification Job (issue 20).
  run.context.verifier.withdraw?.(group, vm);
  const started = Date.now();
  const result = await run.withTimeoutHeld(() => role.result);
  if (result.ok) {
    const detail = `canary ${role.vm} changed and verified`;
    run.report.steps.push({ name: 'canary', status: 'ok', durationMs: Date.now() - started, detail });
    run.say(`canary: ${detail}; going on`);
    // On its way to the check again: the group's VMs that waited share a verification Job.
    run.context.verifier.expect?.(group, vm);
    // The token asked for at the start may be old by now: ask for a fresh one.
    delete run.earlyToken;
    return;
  }
  const message = `not changed (${change.describe}): the group's canary ${role.vm} ${result.reason}`;
  run.report.steps.push({ name: 'canary', status: 'skipped', durationMs: Date.now() - started, detail: message });
  run.report.outcome = 'skipped-canary';
  run.report.error = {
    step: 'canary',
    message,
    hint: `fix what failed on ${role.vm} (its checks and log are in this report), then run again`,
  };
  logger.warning(`[${vm.name}] ${message}`);
  return 'stop';
}

async function bootstrapToken(run: VmRun): Promise<void> {
  const { cluster, group } = run.context;
  const token = await run.step(
    'token',
    () => run.earlyToken ?? cluster.bootstrapToken(group),
    (value) => `bootstrap token valid until ${value.expiresAt.toISOString()}`,
  );
  run.token = token.token;
  run.report.tokenExpiresAt = token.expiresAt.toISOString();
}

/** The files as istioctl would write them; a plan renders them without a token (it writes nothing). */
async function render(run: VmRun): Promise<void> {
  const { group, vm } = run.context;
  const mesh = meshOf(run);
  const workloadIP = workloadAddressOf(run);
  const token = run.token ?? '';
  run.files = await run.step('render', async () => renderFilesForVm({ group, vm, mesh, token, workloadIP }));
}

async function plan(run: VmRun): Promise<'stop'> {
  const { report, context } = run;
  const facts = inspected(run);
  const packageVersion = context.istioVersion;
  report.files = plannedFileChanges(run.comparisons ?? compareVmFiles(rendered(run), facts));
  const packageAction =
    facts.installedVersion === packageVersion ? 'unchanged' : facts.installedVersion ? 'upgraded' : 'installed';
  report.package = {
    version: packageVersion,
    action: packageAction,
    ...(facts.installedVersion ? { from: facts.installedVersion } : {}),
  };
  const reBootstrap = run.reBootstrap
    ? `; would re-bootstrap: ${describeReBootstrap(run.reBootstrap)} ` +
      '(fresh token, certificate and key removed, sidecar restarted)'
    : '';
  // A revision move goes through the group's canary like an upgrade (awaitCanary): say so before it happens.
  const move = runningSidecarChange(run)?.controlPlane;
  if (move) report.controlPlane = { address: move.to, from: move.from };
  const moveText = move ? `; would move the sidecar from ${move.from} to ${move.to} (revision move, canary first)` : '';
  report.steps.push({
    name: 'plan',
    status: 'ok',
    durationMs: 0,
    detail: describePlan(report.files, report.package) + reBootstrap + moveText,
  });
  run.say(`plan: ${describePlan(report.files, report.package)}${reBootstrap}${moveText}`);
  report.outcome = 'planned';
  return 'stop';
}

// A VM off longer than its certificate's lifetime cannot renew with it: the agent presents the certificate in
// /etc/certs once it exists, or, with that expired, a bootstrap token just as old (see
// src/verify/provisioned-certificate.ts). It is judged by the VM's clock (the agent's), and counts as expired
// a little before its end: the new token must be what the restarted agent uses. A certificate under a root
// the rendered bundle no longer holds (a root rotation's last step) is refused by istiod just the same.
async function reBootstrapIfNeeded(run: VmRun): Promise<void> {
  const facts = inspected(run);
  if (!facts.installedVersion) return;
  const state = provisionedCertificateState(
    facts.provisionedCertificate,
    new Date(facts.clockMs ?? Date.now()),
    REBOOTSTRAP_MARGIN_MS,
    // The roots this run gives the VM: a certificate under none of them is refused by istiod.
    run.files?.rootCert ?? meshOf(run).rootCert,
  );
  if (!needsReBootstrap(state)) return;
  run.reBootstrap = state;
  run.report.reBootstrap = {
    certificateNotAfter: state.notAfter.toISOString(),
    cause: state.state === 'untrusted' ? 'untrusted-root' : 'expired',
    done: false,
  };
  if (run.context.settings.mode === 'onboard')
    run.say(`${describeReBootstrap(state)}: the VM will be re-bootstrapped (fresh token, certificate removed)`);
}

// An installed sidecar of an auto-registered group whose WorkloadEntry is gone (deleted by hand) does not
// register again until it reconnects: istiod creates the entry in OnConnect, and for proxies already connected
// only when their WorkloadGroup is added (pilot/pkg/autoregistration/controller.go: registerWorkload,
// setupAutoRecreate). Restart it even if nothing changed. (When this run re-created the WorkloadGroup, istiod
// re-registers the connected proxies itself and the restart is only redundant.)
async function restartIfUnregistered(run: VmRun): Promise<void> {
  const { group, cluster } = run.context;
  if (group.registration !== 'auto' || !inspected(run).installedVersion) return;
  const workloadIP = workloadAddressOf(run);
  const registered = await cluster.hasWorkloadEntry(group, workloadIP).catch(() => true);
  if (registered) return;
  run.restart = 'always';
  run.say(
    `no WorkloadEntry with address ${workloadIP} in ${group.namespace}: ` +
      'the sidecar will be restarted so that it registers again',
  );
}

// A static entry must exist before the sidecar connects: a proxy whose ISTIO_META_WORKLOAD_ENTRY names
// a missing entry is refused by istiod (pilot/pkg/autoregistration/controller.go, OnConnect).
async function applyStaticWorkloadEntry(run: VmRun): Promise<void> {
  const { group, vm, cluster } = run.context;
  if (group.registration !== 'static') return;
  const workloadIP = workloadAddressOf(run);
  await run.step(
    'apply',
    () => cluster.applyStaticWorkloadEntry(group, vm, workloadIP),
    (object) => `WorkloadEntry ${object.name}: ${object.action}`,
  );
}

async function apply(run: VmRun): Promise<'stop' | void> {
  const { settings, istioVersion: packageVersion, packageUpload } = run.context;
  const port = connected(run);
  const facts = inspected(run);
  const files = rendered(run);
  const sha256 = settings.sidecarPackage.sha256[facts.arch] ?? settings.sidecarPackage.sha256['*'];
  const source = packageUpload
    ? { upload: packageUpload }
    : {
        url: packageUrlFor(settings.sidecarPackage.urlTemplate, packageVersion, facts.packageFormat, facts.arch),
      };
  const from = facts.installedVersion ? { from: facts.installedVersion } : {};
  let applied: VmApplyOutcome;
  try {
    applied = await run.step(
      'apply',
      () =>
        port.apply({
          files,
          package: { version: packageVersion, format: facts.packageFormat, ...source, ...(sha256 ? { sha256 } : {}) },
          ...(run.restart ? { restart: run.restart } : {}),
          ...(run.reBootstrap ? { reBootstrap: true } : {}),
          uploadTimeoutSeconds: run.context.settings.rollout.vmTimeoutSeconds,
        }),
      (outcome) =>
        `package ${outcome.packageAction}` +
        (outcome.packageAction === 'unchanged'
          ? ''
          : ` ${describePackageChange({ version: packageVersion, ...from })}`) +
        `; ${outcome.files.filter((file) => file.changed).length} file(s) changed; ` +
        (outcome.restarted ? 'sidecar restarted' : 'no restart'),
    );
  } catch (error) {
    // An upgrade whose apply failed after the VM's state was kept (dpkg refused the new version, a file
    // could not be placed): put that state back and check the VM on it, as after failing checks.
    if (!facts.installedVersion || !port.madeRollbackPoint?.()) throw error;
    const failure = error instanceof StepFailure ? error : new StepFailure('apply', messageOf(error), hintOf(error));
    run.context.logger.error(
      `[${run.context.vm.name}] apply failed: ${failure.message}${failure.hint ? ` — ${failure.hint}` : ''}`,
    );
    run.report.package = { version: packageVersion, action: 'upgraded', ...from };
    const restored = await run.step(
      'rollback',
      () => port.rollback(`apply failed: ${failure.message}`),
      (value) => (value ? 'previous files and package restored, sidecar restarted' : 'nothing to restore'),
    );
    run.report.outcome = restored ? await verifyAfterRollback(run) : 'failed';
    run.report.error = { step: 'apply', message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) };
    return 'stop';
  }
  run.applied = applied;
  if (run.reBootstrap && applied.reBootstrapped) {
    run.report.reBootstrap = {
      certificateNotAfter: run.reBootstrap.notAfter.toISOString(),
      cause: run.reBootstrap.state === 'untrusted' ? 'untrusted-root' : 'expired',
      done: true,
    };
    run.say(`re-bootstrapped: ${describeReBootstrap(run.reBootstrap)}`);
  }
  run.report.files = applied.files.map((file) => ({ path: file.path, changed: file.changed }));
  run.report.package = {
    version: packageVersion,
    action: applied.packageAction,
    ...from,
  };
  run.report.restarted = applied.restarted;
}

/** Checks after a change; a VM that fails them is rolled back when this run changed it. */
async function verifyOrRollBack(run: VmRun): Promise<'stop' | void> {
  const { report } = run;
  await verifyStep(run);
  const failed = report.checks.filter((check) => check.status === 'fail');
  if (failed.length === 0) return;
  const reason = `checks failed: ${failed.map((check) => check.name).join(', ')}`;
  if (changedByApply(run)) {
    const port = connected(run);
    const restored = await run.step(
      'rollback',
      () => port.rollback(reason),
      (value) =>
        value
          ? 'previous files and package restored, sidecar restarted'
          : 'first install: sidecar stopped and marked failed on the VM',
    );
    report.outcome = !restored
      ? 'failed'
      : changedItsClusterEnv(run)
        ? notCheckedAfterRollback(run)
        : await verifyAfterRollback(run);
  } else {
    report.outcome = 'failed';
  }
  report.error = { step: 'verify', message: reason, ...(failed[0]?.hint ? { hint: failed[0].hint } : {}) };
  return 'stop';
}

/** Whether this run's apply rewrote cluster.env: the VM's address, labels, identity or mesh settings. */
function changedItsClusterEnv(run: VmRun): boolean {
  return appliedOutcome(run).files.some((file) => file.changed && file.path === ISTIO_PATHS.clusterEnv);
}

/**
 * A rollback that put back another cluster.env: the VM runs as the previous inventory described it (another
 * address, labels or identity), which this run's checks would not describe — so they are not run again; a
 * `verify` with the previous inventory tells whether it is healthy there.
 */
function notCheckedAfterRollback(run: VmRun): 'rolled-back' {
  const detail =
    `not checked again: the rolled-back change rewrote ${ISTIO_PATHS.clusterEnv}, so the VM runs as the ` +
    'previous inventory described it; run verify with that inventory to check it';
  run.report.steps.push({ name: 'verify-after-rollback', status: 'skipped', durationMs: 0, detail });
  run.say(`verify-after-rollback: ${detail}`);
  return 'rolled-back';
}

/**
 * A rolled-back VM runs its previous files and package again: its checks run once more, to say whether it is
 * healthy there (rolled-back) or not (rolled-back-unhealthy: it needs a person).
 */
async function verifyAfterRollback(run: VmRun): Promise<'rolled-back' | 'rolled-back-unhealthy'> {
  const { context, report } = run;
  const previous = inspected(run).installedVersion;
  const started = Date.now();
  const checks = await context.verifier.verify(verifyRequest(run));
  const failed = checks.filter((check) => check.status === 'fail');
  const healthy = failed.length === 0;
  report.afterRollback = { healthy, ...(previous ? { version: previous } : {}), checks };
  const on = previous ? ` on ${previous}` : '';
  const detail = healthy
    ? `healthy again${on}: ${checks.length}/${checks.length} checks passed`
    : `still unhealthy${on}: ${failed.map((check) => check.name).join(', ')} failed`;
  report.steps.push({
    name: 'verify-after-rollback',
    status: healthy ? 'ok' : 'failed',
    durationMs: Date.now() - started,
    detail,
  });
  if (healthy) run.say(`verify-after-rollback: ${detail}`);
  else {
    context.logger.error(`[${context.vm.name}] after the rollback the VM is ${detail} — it needs a look`);
    for (const check of failed) {
      context.logger.error(
        `[${context.vm.name}] after rollback ${check.name}: ${check.summary}${check.hint ? ` — ${check.hint}` : ''}`,
      );
    }
  }
  return healthy ? 'rolled-back' : 'rolled-back-unhealthy';
}

async function reportApplied(run: VmRun): Promise<'stop'> {
  const applied = appliedOutcome(run);
  run.report.outcome =
    applied.packageAction === 'installed' ? 'installed' : changedByApply(run) ? 'updated' : 'unchanged';
  return 'stop';
}

// ---- what earlier stages left (each stage runs only after the ones it reads) ----------------------

function connected(run: VmRun): VmPort {
  if (!run.port) throw new Error('internal: no connection to the VM');
  return run.port;
}

function meshOf(run: VmRun): MeshContext {
  if (!run.context.mesh) throw new Error('internal: no mesh values for this group');
  return run.context.mesh;
}

function inspected(run: VmRun): InspectedVm {
  if (!run.facts) throw new Error('internal: the VM was not inspected');
  return run.facts;
}

function workloadAddressOf(run: VmRun): string {
  if (!run.workloadIP) throw new Error('internal: no workload address');
  return run.workloadIP;
}

function rendered(run: VmRun): RenderedVmFiles {
  if (!run.files) throw new Error('internal: the files were not rendered');
  return run.files;
}

function appliedOutcome(run: VmRun): VmApplyOutcome {
  if (!run.applied) throw new Error('internal: nothing was applied');
  return run.applied;
}

function changedByApply(run: VmRun): boolean {
  const applied = appliedOutcome(run);
  return (
    applied.packageAction !== 'unchanged' || applied.files.some((file) => file.changed) || !!applied.reBootstrapped
  );
}

function verifyRequest(run: VmRun): VerifyRequest {
  const { context } = run;
  return {
    vm: context.vm,
    group: context.group,
    port: connected(run),
    mesh: meshOf(run),
    workloadIP: workloadAddressOf(run),
    peerAuthentication: context.settings.peerAuthentication,
  };
}

async function verifyStep(run: VmRun): Promise<void> {
  const { context, report } = run;
  const started = Date.now();
  const checks: CheckResult[] = await context.verifier.verify(verifyRequest(run));
  report.checks = checks;
  const failed = checks.filter((check) => check.status === 'fail');
  report.steps.push({
    name: 'verify',
    status: failed.length > 0 ? 'failed' : 'ok',
    durationMs: Date.now() - started,
    detail: `${checks.filter((check) => check.status === 'pass').length}/${checks.length} checks passed`,
  });
  for (const check of failed) {
    context.logger.error(`[${context.vm.name}] ${check.name}: ${check.summary}${check.hint ? ` — ${check.hint}` : ''}`);
  }
}

function describePlan(files: FileChange[], pkg: NonNullable<VmReport['package']>): string {
  const changed = files.filter((file) => file.changed).map((file) => file.path);
  const what =
    pkg.action === 'unchanged'
      ? 'left as is'
      : pkg.action === 'upgraded'
        ? `upgraded ${describePackageChange(pkg)}`
        : `${pkg.action} (${pkg.version})`;
  return `package would be ${what}; ${
    changed.length === 0 ? 'no file would change' : `would change ${changed.join(', ')}`
  }`;
}

function describeFacts(facts: InspectedVm): string {
  const sidecar = facts.installedVersion ? `v${facts.installedVersion} installed` : 'not installed';
  return (
    `${facts.packageFormat}/${facts.arch}, sidecar ${sidecar}, route source ${facts.routeSourceIP ?? 'unknown'}, ` +
    `15012 ${facts.reachesDiscovery ? 'reachable' : 'NOT reachable'}`
  );
}

function describeChecks(checks: CheckResult[]): string[] {
  return checks.flatMap((check) => [
    `${check.status === 'pass' ? '✓' : check.status === 'fail' ? '✗' : '–'} ${check.name}: ${check.summary}`,
    ...(check.status === 'fail' ? check.evidence.map((line) => `    ${line}`) : []),
    ...(check.hint && check.status === 'fail' ? [`    hint: ${check.hint}`] : []),
  ]);
}

function lastStep(report: VmReport): StepName {
  return report.steps.at(-1)?.name ?? 'connect';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function hintOf(error: unknown): string | undefined {
  const hint = (error as { hint?: unknown } | undefined)?.hint;
  return typeof hint === 'string' ? hint : undefined;
}
