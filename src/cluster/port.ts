// The rollout's ClusterPort (src/rollout/ports.ts) on the real client: kubeconfig loaded when the
// rollout first asks, the inventory's and the inputs' mesh settings applied, every credential and
// bootstrap token registered as a secret before anything can print it.
import type { Inventory } from '../inventory/types.js';
import type { ClusterObjectRecord } from '../report/model.js';
import type { ClusterPort, RunLogger } from '../rollout/ports.js';
import type { SecretRegistry } from '../secrets.js';
import type { RunSettings } from '../settings.js';
import { createClusterClient, type ClusterClient } from './client.js';
import { loadKubeConfig } from './credentials.js';
import { sharedPerServiceAccount } from './group-tokens.js';

/** The port, the client behind it (verification reads through it too) and what preflight learned. */
export interface ClusterAdapter {
  port: ClusterPort;
  client: ClusterClient;
  /** Whether istiod auto-registers VMs, once preflight has read it. */
  autoRegistrationEnabled(): boolean | undefined;
}

/** The revision a run targets: the input's override, else the inventory's. */
export function runRevision(settings: RunSettings, inventory: Inventory): string {
  return settings.overrides.revision ?? inventory.mesh.revision;
}

export function connectClusterPort(
  settings: RunSettings,
  inventory: Inventory,
  context: { secrets: SecretRegistry; logger: RunLogger },
): ClusterAdapter {
  const { secrets } = context;
  const loaded = loadKubeConfig({
    ...(settings.kube.kubeconfig.trim() !== '' ? { kubeconfig: settings.kube.kubeconfig } : {}),
    ...(settings.kube.context ? { context: settings.kube.context } : {}),
  });
  for (const secret of loaded.secrets) secrets.add(secret, { perLine: false });
  const real = createClusterClient(loaded.kubeConfig, {
    ...(settings.dnsServers.length > 0 ? { dnsServers: settings.dnsServers } : {}),
    onRequest: (info) => context.logger.debug(`kube ${info.method} ${info.path}`),
  });
  const revision = runRevision(settings, inventory);
  let autoRegistrationEnabled: boolean | undefined;

  const port: ClusterPort = {
    server: real.server,
    close: () => real.close(),
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
    bootstrapToken: sharedPerServiceAccount(
      async (group) => {
        const token = await real.requestBootstrapToken({
          namespace: group.namespace,
          serviceAccount: group.serviceAccount,
          expirationSeconds: settings.tokenLifetimeSeconds,
        });
        secrets.add(token.token);
        return { token: token.token, expiresAt: token.expiresAt };
      },
      { lifetimeSeconds: settings.tokenLifetimeSeconds },
    ),
    async applyStaticWorkloadEntry(group, vm, address, options) {
      return toRecord(
        await real.applyStaticWorkloadEntry(group, vm, address, options?.dryRun ? { dryRun: true } : undefined),
      );
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
  };
  return { port, client: real, autoRegistrationEnabled: () => autoRegistrationEnabled };
}

function toRecord(object: {
  kind: string;
  namespace: string;
  name: string;
  action: ClusterObjectRecord['action'];
  drift?: string[];
}): ClusterObjectRecord {
  return {
    kind: object.kind,
    ...(object.namespace ? { namespace: object.namespace } : {}),
    name: object.name,
    action: object.action,
    ...(object.drift && object.drift.length > 0 ? { drift: object.drift } : {}),
  };
}
