// The rollout's VmConnectorPort and VmPort (src/rollout/ports.ts) over SSH: one session per VM, the
// VM layer's scripts run over it, files named by VM_FILES (src/vm/paths.ts) in what the rollout sees.
import type { InspectedVm, VmConnectorPort, VmPort } from '../rollout/ports.js';
import type { VmSpec } from '../inventory/types.js';
import type { RunSettings } from '../settings.js';
import { MANAGED_FILES, VM_FILES, vmFile, type VmFileKey } from './paths.js';
import { applyVmChanges } from './scripts/apply.js';
import { assertPreflight, inspectVm, type VmFacts } from './scripts/inspect.js';
import { offboardVm } from './scripts/offboard.js';
import { rollbackVm } from './scripts/rollback.js';
import { asRoot, VmScriptError } from './scripts/protocol.js';
import type { VmSession } from './session.js';
import { connectVm } from './ssh-session.js';

export function createVmConnector(settings: RunSettings): VmConnectorPort {
  // Trust on first use pins what it learned for the whole run: a reconnect to a VM, or another VM behind
  // the same bastion, must present the key seen first.
  const learnedHostKeys = new Map<string, Buffer>();
  return {
    async connect(vm) {
      let learned: string | undefined;
      const session = await connectVm({
        vm,
        privateKey: settings.ssh.privateKey,
        ...(settings.ssh.passphrase ? { passphrase: settings.ssh.passphrase } : {}),
        knownHosts: settings.ssh.knownHosts,
        trustOnFirstUse: settings.ssh.trustOnFirstUse,
        learnedHostKeys,
        readyTimeoutMs: settings.ssh.connectTimeoutSeconds * 1000,
        onLearnedHostKey: (line: string) => {
          learned = line;
        },
      });
      return vmPort(settings, vm, session, () => learned);
    },
  };
}

function vmPort(settings: RunSettings, vm: VmSpec, session: VmSession, learned: () => string | undefined): VmPort {
  // The snapshot the last apply of this run made: rollback restores exactly that one.
  let snapshotId: string | null = null;
  return {
    get learnedHostKey() {
      return learned();
    },
    async inspect(eastWestAddress) {
      const facts = await inspectVm(session, {
        eastWestAddress,
        withContents: settings.mode === 'plan' || settings.mode === 'verify',
        downloads: settings.sidecarPackage.uploadPath === '',
        needsRouteSource: vm.internalIP === undefined,
      });
      // verify diagnoses 15012 itself (sidecar-ready, xds-connected, with the cause from the agent's log):
      // a blocked port or a down istiod is what its checks report, not a reason to skip them.
      assertPreflight(
        settings.mode === 'verify'
          ? { ...facts, problems: facts.problems.filter((problem) => problem.code !== 'east-west-unreachable') }
          : facts,
      );
      return toFacts(facts);
    },
    async apply(request) {
      snapshotId = null;
      const result = await applyVmChanges(session, {
        files: {
          clusterEnv: request.files.clusterEnv,
          meshYaml: request.files.meshYaml,
          rootCert: request.files.rootCert,
          token: request.files.token,
        },
        hostsEntries: request.files.hosts,
        package: request.package,
        sshPort: vm.ssh.port,
        ...(request.restart ? { restartPolicy: request.restart } : {}),
        ...(request.reBootstrap ? { reBootstrap: true } : {}),
        ...(request.uploadTimeoutSeconds ? { uploadTimeoutSeconds: request.uploadTimeoutSeconds } : {}),
      }).catch((error: unknown) => {
        // An apply that failed after keeping the previous state (e.g. dpkg refused the new package): that
        // state is what a rollback restores, and only that one.
        if (error instanceof VmScriptError) snapshotId = error.output?.get('snapshot') ?? null;
        throw error;
      });
      snapshotId = result.snapshotId;
      return {
        // A fresh token every run is expected, not a change (it restarts nothing).
        files: (Object.entries(result.files) as [VmFileKey, 'changed' | 'unchanged'][])
          .filter(([key]) => !vmFile(key).secret)
          .map(([key, state]) => ({ path: vmFile(key).label, changed: state === 'changed' })),
        packageAction: result.package.action,
        restarted: result.restarted,
        reBootstrapped: result.reBootstrapped,
      };
    },
    madeRollbackPoint: () => snapshotId !== null,
    async rollback(reason) {
      const result = await rollbackVm(session, { reason, ...(snapshotId ? { expectSnapshotId: snapshotId } : {}) });
      return result.action === 'rolled-back';
    },
    async offboard() {
      await offboardVm(session);
    },
    // The checks read root-only files (logs, the installed root cert): run them like the VM layer's scripts.
    runScript: (script, options) => session.exec(asRoot(script), { timeoutMs: options.timeoutMs }),
    counters: () => ({
      sshConnections: session.counters.connections,
      execRoundTrips: session.counters.execRoundTrips,
      bytesUploaded: session.counters.bytesUploaded,
    }),
    close: () => session.close(),
  };
}

/** What the rollout needs of inspect's facts; the current files (plan and verify) and their hashes by label. */
function toFacts(facts: VmFacts): InspectedVm {
  const contentOf = (key: VmFileKey): string | null | undefined =>
    key === 'hosts' ? facts.hostsBlock : facts.contents?.[key as keyof NonNullable<VmFacts['contents']>];
  return {
    arch: facts.arch ?? facts.machine,
    packageFormat: facts.packageFormat ?? 'deb',
    ...(facts.sidecar.installedVersion ? { installedVersion: facts.sidecar.installedVersion } : {}),
    ...(facts.sidecar.caAddress ? { caAddress: facts.sidecar.caAddress } : {}),
    ...(facts.routeSourceIP ? { routeSourceIP: facts.routeSourceIP } : {}),
    reachesDiscovery: facts.eastWest.reachable !== false,
    ...(facts.provisionedCertificate ? { provisionedCertificate: facts.provisionedCertificate } : {}),
    ...(facts.clockMs !== null ? { clockMs: facts.clockMs } : {}),
    currentFiles: Object.fromEntries(
      VM_FILES.filter((file) => file.rendered !== undefined && !file.secret).map((file) => [
        file.label,
        contentOf(file.key) ?? undefined,
      ]),
    ),
    fileHashes: Object.fromEntries(MANAGED_FILES.map((file) => [file.label, facts.fileHashes[file.key] ?? undefined])),
  };
}
