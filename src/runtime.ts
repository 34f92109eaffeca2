// Wires the orchestrator's ports to their adapters: src/cluster/port.ts (client-node),
// src/vm/port.ts (SSH) and the verifier below (src/verify). Nothing here runs until the rollout asks:
// a bad input never opens a connection.
import { readFile } from 'node:fs/promises';
import { connectClusterPort, runRevision, type ClusterAdapter } from './cluster/port.js';
import type { GroupSpec, Inventory } from './inventory/types.js';
import type { ClusterPort, RunLogger, VerifierPort, VmConnectorPort } from './rollout/ports.js';
import { SECRET_INPUTS, type InputName, type RunSettings } from './settings.js';
import type { SecretRegistry } from './secrets.js';
import { createVmConnector } from './vm/port.js';
import {
  groupJobRunner,
  meshProbeFromCluster,
  verificationGroupKey,
  VerificationJobBatcher,
  verifyVm,
} from './verify/index.js';

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
  let cluster: ClusterAdapter | undefined;
  const connectCluster = async (): Promise<ClusterPort> => {
    cluster = connectClusterPort(settings, inventory, context);
    return cluster.port;
  };
  const verifier = createVerifier(settings, inventory, context.secrets, () => cluster);
  const packageUpload = settings.sidecarPackage.uploadPath
    ? await readFile(settings.sidecarPackage.uploadPath)
    : undefined;
  return {
    cluster: connectCluster,
    connector: createVmConnector(settings),
    verifier,
    ...(packageUpload ? { packageUpload } : {}),
  };
}

/** The checks of src/verify, on the cluster client the run connected (verify runs after the cluster steps). */
function createVerifier(
  settings: RunSettings,
  inventory: Inventory,
  secrets: SecretRegistry,
  cluster: () => ClusterAdapter | undefined,
): VerifierPort {
  const revision = runRevision(settings, inventory);
  // Issue 20: the VMs of a group reaching the mesh→VM check together share one verification Job.
  const jobs = new VerificationJobBatcher(
    groupJobRunner(() => {
      const connected = cluster();
      if (!connected) throw new Error('verification needs the cluster client');
      return connected.client;
    }),
  );
  return {
    expect: (group, vm) => jobs.expect(verificationGroupKey(group), vm.name),
    withdraw: (group, vm) => jobs.withdraw(verificationGroupKey(group), vm.name),
    async verify(request) {
      const connected = cluster();
      if (!connected) throw new Error('verification needs the cluster client');
      const client = connected.client;
      const autoRegistrationEnabled = connected.autoRegistrationEnabled();
      const results = await verifyVm({
        verificationJobs: jobs,
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
      }).finally(() => jobs.withdraw(verificationGroupKey(request.group), request.vm.name));
      return results.map((result) => ({
        ...result,
        summary: secrets.scrub(result.summary),
        evidence: result.evidence.map((line) => secrets.scrub(line)),
      }));
    },
  };
}

/** A mesh service every VM can call through its sidecar by a name that only DNS capture resolves. */
export function defaultVerifyUrl(istioNamespace: string, revision: string): string {
  const istiod = revision && revision !== 'default' ? `istiod-${revision}` : 'istiod';
  return `http://${istiod}.${istioNamespace}.svc.cluster.local:15014/version`;
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
