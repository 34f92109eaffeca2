// One VM's way through a run. Every step is recorded with its duration; the first failure stops the
// VM (others go on), and a VM whose checks fail after a change is rolled back to its previous state.
import { createTwoFilesPatch } from 'diff';
import type { GroupSpec, VmSpec } from '../inventory/types.js';
import type { CheckResult, FileChange, StepName, VmReport } from '../report/model.js';
import { packageUrlFor, type RunSettings } from '../settings.js';
import type {
  ClusterPort,
  MeshContext,
  RenderedVmFiles,
  RunLogger,
  VerifierPort,
  VmConnectorPort,
  VmFacts,
  VmPort,
} from './ports.js';
import { renderFilesForVm } from './render-vm.js';

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
}

/** Managed paths on the VM, by the rendered file they hold (the token is secret: never diffed). */
export const MANAGED_FILES: Record<Exclude<keyof RenderedVmFiles, 'token'>, string> = {
  clusterEnv: '/var/lib/istio/envoy/cluster.env',
  meshYaml: '/etc/istio/config/mesh',
  rootCert: '/etc/certs/root-cert.pem',
  hosts: '/etc/hosts (istio-vm-onboard block)',
};

class StepFailure extends Error {
  constructor(
    readonly step: StepName,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export async function runVmPipeline(context: VmPipelineContext): Promise<VmReport> {
  const { vm, group, settings, logger } = context;
  const started = Date.now();
  // Each step line is logged once, as it happens; the VM's name keeps concurrent VMs apart.
  const say = (line: string): void => logger.info(`[${vm.name}] ${line}`);
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
  const step = async <T>(name: StepName, work: () => Promise<T>, describe?: (value: T) => string): Promise<T> => {
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

  let port: VmPort | undefined;
  const deadline = settings.rollout.vmTimeoutSeconds * 1000;
  let timer: NodeJS.Timeout | undefined;
  // The bootstrap token does not depend on the VM: ask for it while connecting and inspecting (a token
  // nobody uses is harmless: TokenRequest stores nothing and the token expires).
  let earlyToken: Promise<{ token: string; expiresAt: Date }> | undefined;
  if (settings.mode === 'onboard') {
    earlyToken = context.cluster.bootstrapToken(group);
    earlyToken.catch(() => undefined);
  }
  try {
    const work = (async () => {
      port = await step(
        'connect',
        () => context.connector.connect(vm),
        () => `connected to ${vm.ssh.user}@${vm.ssh.host}:${vm.ssh.port}`,
      );
      if (port.learnedHostKey) report.learnedHostKey = port.learnedHostKey;
      if (settings.mode === 'offboard') {
        await step(
          'offboard',
          () => port!.offboard(),
          () => 'sidecar stopped, package, files and hosts block removed',
        );
        report.outcome = 'offboarded';
        return;
      }
      const mesh = context.mesh!;
      const facts = await step('inspect', () => port!.inspect(mesh.eastWest.address), describeFacts);
      const workloadIP = vm.internalIP ?? facts.routeSourceIP;
      if (!workloadIP) {
        throw new StepFailure(
          'inspect',
          `no workload address: the inventory has no internalIP and the VM has no route to the east-west gateway ${mesh.eastWest.address}`,
          'set internalIP for this VM in the inventory, or fix the VM routing',
        );
      }
      report.workloadIP = workloadIP;
      report.workloadIPSource = vm.internalIP ? 'inventory' : 'route-to-gateway';
      if (settings.mode === 'verify') {
        await verifyStep(context, port, mesh, workloadIP, report);
        report.outcome = report.checks.some((check) => check.status === 'fail') ? 'failed' : 'verified';
        return;
      }
      if (!facts.reachesDiscovery) {
        throw new StepFailure(
          'inspect',
          `the VM cannot reach the east-west gateway ${mesh.eastWest.address}:15012 (istiod discovery and CA)`,
          'open port 15012 from the VM to the east-west gateway (security group / firewall), and check that istiod is exposed through the gateway',
        );
      }
      const token =
        settings.mode === 'plan'
          ? { token: '', expiresAt: new Date(0) }
          : await step(
              'token',
              () => earlyToken ?? context.cluster.bootstrapToken(group),
              (value) => `bootstrap token valid until ${value.expiresAt.toISOString()}`,
            );
      if (settings.mode !== 'plan') report.tokenExpiresAt = token.expiresAt.toISOString();
      const files = await step('render', async () =>
        renderFilesForVm({ group, vm, mesh, token: token.token, workloadIP }),
      );
      const packageVersion = context.istioVersion;
      if (settings.mode === 'plan') {
        report.files = planFileChanges(files, facts);
        const packageAction =
          facts.installedVersion === packageVersion ? 'unchanged' : facts.installedVersion ? 'upgraded' : 'installed';
        report.package = { version: packageVersion, action: packageAction };
        report.steps.push({
          name: 'plan',
          status: 'ok',
          durationMs: 0,
          detail: describePlan(report.files, packageAction),
        });
        say(`plan: ${describePlan(report.files, packageAction)}`);
        report.outcome = 'planned';
        return;
      }
      // An installed sidecar of an auto-registered group whose WorkloadEntry is gone (deleted by hand, or
      // with the CRDs) does not register again until it reconnects: restart it even if nothing changed.
      let restart: 'always' | undefined;
      if (group.registration === 'auto' && facts.installedVersion) {
        const registered = await context.cluster.hasWorkloadEntry(group, workloadIP).catch(() => true);
        if (!registered) {
          restart = 'always';
          say(
            `no WorkloadEntry with address ${workloadIP} in ${group.namespace}: the sidecar will be restarted so that it registers again`,
          );
        }
      }
      // A static entry must exist before the sidecar connects: a proxy whose ISTIO_META_WORKLOAD_ENTRY names
      // a missing entry is refused by istiod (pilot/pkg/autoregistration/controller.go, OnConnect).
      if (group.registration === 'static') {
        await step(
          'apply',
          () => context.cluster.applyStaticWorkloadEntry(group, vm, workloadIP),
          (object) => `WorkloadEntry ${object.name}: ${object.action}`,
        );
      }
      const sha256 = settings.sidecarPackage.sha256[facts.arch] ?? settings.sidecarPackage.sha256['*'];
      const applied = await step(
        'apply',
        () =>
          port!.apply({
            files,
            package: {
              version: packageVersion,
              format: facts.packageFormat,
              ...(context.packageUpload
                ? { upload: context.packageUpload }
                : {
                    url: packageUrlFor(
                      settings.sidecarPackage.urlTemplate,
                      packageVersion,
                      facts.packageFormat,
                      facts.arch,
                    ),
                  }),
              ...(sha256 ? { sha256 } : {}),
            },
            ...(restart ? { restart } : {}),
          }),
        (outcome) =>
          `package ${outcome.packageAction}; ${outcome.files.filter((file) => file.changed).length} file(s) changed; ${outcome.restarted ? 'sidecar restarted' : 'no restart'}`,
      );
      report.files = applied.files.map((file) => ({ path: file.path, changed: file.changed }));
      report.package = { version: packageVersion, action: applied.packageAction };
      report.restarted = applied.restarted;
      const changed = applied.packageAction !== 'unchanged' || applied.files.some((file) => file.changed);
      if (settings.verify.enabled) {
        await verifyStep(context, port!, mesh, workloadIP, report);
        const failed = report.checks.filter((check) => check.status === 'fail');
        if (failed.length > 0) {
          const reason = `checks failed: ${failed.map((check) => check.name).join(', ')}`;
          if (changed) {
            const restored = await step(
              'rollback',
              () => port!.rollback(reason),
              (value) =>
                value
                  ? 'previous files and package restored, sidecar restarted'
                  : 'first install: sidecar stopped and marked failed on the VM',
            );
            report.outcome = restored ? 'rolled-back' : 'failed';
          } else {
            report.outcome = 'failed';
          }
          report.error = { step: 'verify', message: reason, ...(failed[0]?.hint ? { hint: failed[0].hint } : {}) };
          return;
        }
      }
      report.outcome = applied.packageAction === 'installed' ? 'installed' : changed ? 'updated' : 'unchanged';
    })();
    await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new StepFailure(
                lastStep(report),
                `timed out after ${settings.rollout.vmTimeoutSeconds}s`,
                'raise vm-timeout or check the VM',
              ),
            ),
          deadline,
        );
        timer.unref();
      }),
    ]);
  } catch (error) {
    const failure = error instanceof StepFailure ? error : new StepFailure(lastStep(report), String(error));
    report.outcome = 'failed';
    report.error = { step: failure.step, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) };
    logger.error(`[${vm.name}] ${failure.step} failed: ${failure.message}${failure.hint ? ` — ${failure.hint}` : ''}`);
  } finally {
    if (timer) clearTimeout(timer);
    if (port) {
      report.counters = port.counters();
      await port.close().catch(() => undefined);
    }
    report.durationMs = Date.now() - started;
  }
  // When the VM is done: its outcome, and its checks folded beneath it (the steps are already above).
  if (report.checks.length > 0) logger.group(`${vm.name}: ${report.outcome}`, describeChecks(report.checks));
  else logger.info(`[${vm.name}] ${report.outcome}`);
  return report;
}

async function verifyStep(
  context: VmPipelineContext,
  port: VmPort,
  mesh: MeshContext,
  workloadIP: string,
  report: VmReport,
): Promise<void> {
  const started = Date.now();
  const checks: CheckResult[] = await context.verifier.verify({
    vm: context.vm,
    group: context.group,
    port,
    mesh,
    workloadIP,
    peerAuthentication: context.settings.peerAuthentication,
  });
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

function planFileChanges(files: RenderedVmFiles, facts: VmFacts): FileChange[] {
  return (Object.keys(MANAGED_FILES) as (keyof typeof MANAGED_FILES)[]).map((key) => {
    const path = MANAGED_FILES[key];
    const before = facts.currentFiles[path] ?? '';
    const after = files[key];
    const changed = before !== after;
    return {
      path,
      changed,
      ...(changed
        ? {
            diff: createTwoFilesPatch(`${path} (on the VM)`, `${path} (planned)`, before, after, '', '', {
              context: 2,
            }),
          }
        : {}),
    };
  });
}

function describePlan(files: FileChange[], packageAction: string): string {
  const changed = files.filter((file) => file.changed).map((file) => file.path);
  return `package would be ${packageAction === 'unchanged' ? 'left as is' : packageAction}; ${
    changed.length === 0 ? 'no file would change' : `would change ${changed.join(', ')}`
  }`;
}

function describeFacts(facts: VmFacts): string {
  return `${facts.packageFormat}/${facts.arch}, sidecar ${facts.installedVersion ? `v${facts.installedVersion} installed` : 'not installed'}, route source ${facts.routeSourceIP ?? 'unknown'}, 15012 ${facts.reachesDiscovery ? 'reachable' : 'NOT reachable'}`;
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

function hintOf(error: unknown): string | undefined {
  const hint = (error as { hint?: unknown } | undefined)?.hint;
  return typeof hint === 'string' ? hint : undefined;
}
