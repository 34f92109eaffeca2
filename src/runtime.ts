// Builds the orchestrator's ports from the real implementations: src/cluster (client-node),
// src/vm (node-ssh) and src/verify. Nothing here runs until the rollout asks: a bad input never
// opens a connection.
import { readFile } from 'node:fs/promises';
import { createClusterClient, loadKubeConfig, type ClusterClient } from './cluster/index.js';
import type { GroupSpec, Inventory, VmSpec } from './inventory/types.js';
import type { ClusterObjectRecord } from './report/model.js';
import type { ClusterPort, RunLogger, VerifierPort, VmConnectorPort, VmFacts, VmPort } from './rollout/ports.js';
import { SECRET_INPUTS, type InputName, type RunSettings } from './settings.js';
import type { SecretRegistry } from './secrets.js';
import {
  applyVmChanges,
  asRoot,
  assertPreflight,
  connectVm,
  inspectVm,
  offboardVm,
  rollbackVm,
  type VmSession,
} from './vm/index.js';
import { meshProbeFromCluster, verifyVm } from './verify/index.js';

export interface Runtime {
  cluster: () => Promise<ClusterPort>;
  connector: VmConnectorPort;
  verifier: VerifierPort;
  packageUpload?: Buffer;
}

export async function createRuntime(
  settings: RunSettings,
  inventory: Inventory,
  context: { secrets: SecretRegistry; logger: RunLogger },
): Promise<Runtime> {
  const { secrets } = context;
  let client: ClusterClient | undefined;
  let autoRegistrationEnabled: boolean | undefined;
  const revision = settings.overrides.revision ?? inventory.mesh.revision;

  const cluster = async (): Promise<ClusterPort> => {
    const loaded = loadKubeConfig({
      ...(settings.kube.kubeconfig.trim() !== '' ? { kubeconfig: settings.kube.kubeconfig } : {}),
      ...(settings.kube.context ? { context: settings.kube.context } : {}),
    });
    for (const secret of loaded.secrets) secrets.add(secret, { perLine: false });
    const real = createClusterClient(loaded.kubeConfig, {
      ...(settings.dnsServers.length > 0 ? { dnsServers: settings.dnsServers } : {}),
      onRequest: (info) => context.logger.debug(`kube ${info.method} ${info.path}`),
    });
    client = real;
    return clusterPort(real);
  };

  const clusterPort = (real: ClusterClient): ClusterPort => ({
    server: real.server,
    async preflight({ groups, mode }) {
      const report = await real.preflight(inventory, {
        revision,
        needsAutoRegistration: groups.some((group) => group.registration === 'auto'),
        needsHealthChecks: groups.some((group) => group.registration === 'auto' && group.probe !== undefined),
        mode,
        peerAuthentication: settings.peerAuthentication,
        defaultVerifyUrl: settings.verify.enabled && !settings.verify.url,
      });
      autoRegistrationEnabled = report.autoRegistration?.enabled;
      return {
        istioVersion: report.istioVersion ?? '',
        revision: report.istiod?.revision ?? revision,
        warnings: report.warnings,
      };
    },
    async applyGroup(group, options) {
      const objects = await real.applyMeshObjects(group, options);
      return objects.map(toRecord);
    },
    async meshContext(group, options) {
      const eastWestAddress = settings.overrides.eastWestAddress ?? inventory.mesh.eastWestGateway.address;
      const clusterID = settings.overrides.clusterID ?? inventory.mesh.clusterID;
      const mesh = await real.readMeshContext({
        namespace: group.namespace,
        ...(options?.namespaceNotCreatedYet ? { namespaceNotCreatedYet: true } : {}),
        revision,
        istioNamespace: inventory.mesh.istioNamespace,
        ...(clusterID ? { clusterID } : {}),
        eastWestGateway: {
          service: inventory.mesh.eastWestGateway.service,
          namespace: inventory.mesh.eastWestGateway.namespace,
          ...(eastWestAddress ? { address: eastWestAddress } : {}),
        },
      });
      return {
        meshConfig: mesh.meshConfig,
        rootCert: mesh.rootCert,
        clusterID: mesh.clusterID,
        trustDomain: mesh.trustDomain,
        revision,
        istioNamespace: inventory.mesh.istioNamespace,
        eastWest: {
          address: mesh.eastWest.address,
          source: mesh.eastWest.source,
          ...(mesh.eastWest.hostname ? { hostname: mesh.eastWest.hostname } : {}),
          candidates: mesh.eastWest.candidates,
        },
      };
    },
    async bootstrapToken(group) {
      const token = await real.requestBootstrapToken({
        namespace: group.namespace,
        serviceAccount: group.serviceAccount,
        expirationSeconds: settings.tokenLifetimeSeconds,
      });
      secrets.add(token.token);
      return { token: token.token, expiresAt: token.expiresAt };
    },
    async applyStaticWorkloadEntry(group, vm, address) {
      return toRecord(await real.applyStaticWorkloadEntry(group, vm, address));
    },
    async hasWorkloadEntry(group, address) {
      return (
        (await real.findWorkloadEntryFor(group.namespace, { name: group.name, network: group.network }, address)) !==
        undefined
      );
    },
    async removeWorkloadEntries(group, vm, address) {
      const entries = await real.listWorkloadEntries(group.namespace, {
        name: group.name,
        network: group.network,
        vmNames: [vm.name],
      });
      const mine = entries.filter(
        (entry) => entry.name === vm.name || (address !== undefined && entry.address === address),
      );
      const removed: ClusterObjectRecord[] = [];
      for (const entry of mine) {
        if (await real.deleteWorkloadEntry(group.namespace, entry.name)) {
          removed.push({ kind: 'WorkloadEntry', namespace: group.namespace, name: entry.name, action: 'deleted' });
        }
      }
      return removed;
    },
    requestCount: () => real.requestCount,
  });

  // Trust on first use pins what it learned for the whole run: a reconnect to a VM, or another VM behind
  // the same bastion, must present the key seen first.
  const learnedHostKeys = new Map<string, Buffer>();
  const connector: VmConnectorPort = {
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
      return vmPort(vm, session, () => learned);
    },
  };

  const vmPort = (vm: VmSpec, session: VmSession, learned: () => string | undefined): VmPort => {
    // The snapshot the last apply of this run made: rollback restores exactly that one.
    let snapshotId: string | null = null;
    return {
      get learnedHostKey() {
        return learned();
      },
      async inspect(eastWestAddress) {
        const facts = await inspectVm(session, {
          eastWestAddress,
          withContents: settings.mode === 'plan',
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
        });
        snapshotId = result.snapshotId;
        return {
          // A fresh token every run is expected, not a change (it restarts nothing).
          files: Object.entries(result.files)
            .filter(([key]) => key !== 'token')
            .map(([key, state]) => ({ path: fileLabel(key), changed: state === 'changed' })),
          packageAction: result.package.action,
          restarted: result.restarted,
        };
      },
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
  };

  const verifier: VerifierPort = {
    async verify(request) {
      if (!client) throw new Error('verification needs the cluster client');
      const results = await verifyVm({
        vm: request.vm,
        group: request.group,
        workloadAddress: request.workloadIP,
        trustDomain: request.mesh.trustDomain,
        rootCertPem: request.mesh.rootCert,
        verifyUrl: settings.verify.url || defaultVerifyUrl(request.mesh.istioNamespace, revision),
        verifyClientImage: settings.verify.clientImage,
        revision,
        peerAuthentication: request.peerAuthentication,
        vmProbe: { runScript: (script, options) => request.port.runScript(script, options) },
        meshProbe: meshProbeFromCluster(client, {
          ...(autoRegistrationEnabled !== undefined ? { autoRegistrationEnabled } : {}),
          rootNamespace: inventory.mesh.istioNamespace,
        }),
        options: {
          mtlsRequests: settings.verify.requests,
          readyTimeoutMs: settings.verify.readyTimeoutSeconds * 1000,
          certExpiryThresholdMs: settings.verify.certificateMinValidityMinutes * 60_000,
        },
      });
      return results.map((result) => ({
        ...result,
        summary: secrets.scrub(result.summary),
        evidence: result.evidence.map((line) => secrets.scrub(line)),
      }));
    },
  };

  const packageUpload = settings.sidecarPackage.uploadPath
    ? await readFile(settings.sidecarPackage.uploadPath)
    : undefined;
  return { cluster, connector, verifier, ...(packageUpload ? { packageUpload } : {}) };
}

/** A mesh service every VM can call through its sidecar by a name that only DNS capture resolves. */
export function defaultVerifyUrl(istioNamespace: string, revision: string): string {
  const istiod = revision && revision !== 'default' ? `istiod-${revision}` : 'istiod';
  return `http://${istiod}.${istioNamespace}.svc.cluster.local:15014/version`;
}

function toRecord(object: {
  kind: string;
  namespace: string;
  name: string;
  action: ClusterObjectRecord['action'];
}): ClusterObjectRecord {
  return {
    kind: object.kind,
    ...(object.namespace ? { namespace: object.namespace } : {}),
    name: object.name,
    action: object.action,
  };
}

const FILE_LABELS: Record<string, string> = {
  rootCert: '/etc/certs/root-cert.pem',
  clusterEnv: '/var/lib/istio/envoy/cluster.env',
  meshConfig: '/etc/istio/config/mesh',
  token: '/var/lib/istio/tokens/istio-token',
  dropIn: '/etc/systemd/system/istio.service.d/10-istio-vm-onboard.conf',
  hosts: '/etc/hosts (istio-vm-onboard block)',
};

function fileLabel(key: string): string {
  return FILE_LABELS[key] ?? key;
}

function toFacts(facts: Awaited<ReturnType<typeof inspectVm>>): VmFacts {
  return {
    arch: facts.arch ?? facts.machine,
    packageFormat: facts.packageFormat ?? 'deb',
    ...(facts.sidecar.installedVersion ? { installedVersion: facts.sidecar.installedVersion } : {}),
    ...(facts.routeSourceIP ? { routeSourceIP: facts.routeSourceIP } : {}),
    reachesDiscovery: facts.eastWest.reachable !== false,
    currentFiles: {
      [fileLabel('clusterEnv')]: facts.contents?.clusterEnv ?? undefined,
      [fileLabel('meshConfig')]: facts.contents?.meshConfig ?? undefined,
      [fileLabel('rootCert')]: facts.contents?.rootCert ?? undefined,
      [fileLabel('hosts')]: facts.hostsBlock ?? undefined,
    },
  };
}

/** Inputs for the report: secrets replaced by ***, empty ones left out. */
export function redactInputs(inputs: Record<InputName, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(inputs)
      .filter(([, value]) => value !== '')
      .map(([name, value]) => [
        name,
        (SECRET_INPUTS as readonly string[]).includes(name)
          ? '***'
          : name === 'inventory' && value.includes('\n')
            ? '<inline>'
            : value,
      ]),
  );
}

export type { GroupSpec };
