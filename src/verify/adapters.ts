// Adapters from the real side-effect interfaces to the verification ports: `VmSession` (src/vm) →
// VmProbe, `ClusterClient` (src/cluster) → MeshProbe. The orchestrator builds a VerifyContext with these.
import type { ClusterClient } from '../cluster/index.js';
import { verificationJobName } from '../cluster/verification-job.js';
import type { GroupJobRunner } from './job-batcher.js';
import type { VmSession } from '../vm/session.js';
import type { MeshProbe, VmProbe, WorkloadEntryView } from './ports.js';

type ClusterForVerify = Pick<
  ClusterClient,
  'findWorkloadEntryFor' | 'runVerificationJob' | 'getPeerAuthenticationMode'
>;
type WorkloadEntryInfo = NonNullable<Awaited<ReturnType<ClusterClient['findWorkloadEntryFor']>>>;

export function vmProbeFromSession(session: Pick<VmSession, 'exec'>): VmProbe {
  return { runScript: (script, { timeoutMs }) => session.exec(script, { timeoutMs }) };
}

export function workloadEntryViewOf(info: WorkloadEntryInfo): WorkloadEntryView {
  const annotations: Record<string, string> = {};
  if (info.autoRegistered && info.group) annotations['istio.io/autoRegistrationGroup'] = info.group;
  if (info.controller) annotations['istio.io/workloadController'] = info.controller;
  if (info.disconnectedAt) annotations['istio.io/disconnectedAt'] = info.disconnectedAt;
  const view: WorkloadEntryView = {
    metadata: { name: info.name, namespace: info.namespace, annotations },
    spec: {
      address: info.address,
      labels: info.labels,
      ...(info.serviceAccount ? { serviceAccount: info.serviceAccount } : {}),
    },
  };
  if (info.healthy) {
    view.status = {
      conditions: [
        { type: 'Healthy', status: info.healthy, ...(info.healthMessage ? { message: info.healthMessage } : {}) },
      ],
    };
  }
  return view;
}

export interface MeshProbeExtras {
  /** From the preflight report (`autoRegistration.enabled`), when it was read. */
  autoRegistrationEnabled?: boolean;
  /** Mesh root namespace for PeerAuthentication (default istio-system). */
  rootNamespace?: string;
  workloadGroupExists?: MeshProbe['workloadGroupExists'];
}

export function meshProbeFromCluster(client: ClusterForVerify, extras: MeshProbeExtras = {}): MeshProbe {
  const probe: MeshProbe = {
    workloadEntryFor: async ({ namespace, address, group, vmName, network }) => {
      const ref = vmName
        ? { name: group, vmNames: [vmName], ...(network ? { network } : {}) }
        : network
          ? { name: group, network }
          : group;
      const info = await client.findWorkloadEntryFor(namespace, ref, address);
      return info ? workloadEntryViewOf(info) : undefined;
    },
    runVerificationJob: (spec) => client.runVerificationJob(spec),
    peerAuthenticationMode: async ({ namespace, labels }) =>
      (await client.getPeerAuthenticationMode(namespace, labels, extras.rootNamespace)).mode,
  };
  if (extras.autoRegistrationEnabled !== undefined) {
    const enabled = extras.autoRegistrationEnabled;
    probe.autoRegistrationEnabled = async () => enabled;
  }
  if (extras.workloadGroupExists) probe.workloadGroupExists = extras.workloadGroupExists;
  return probe;
}

/**
 * Issue 20: the batcher's runner on the cluster client — one VM: its own Job (named as its ServiceEntry, as
 * before); several: one Job `ivo-verify-<group>-<random>` calling them all, each through its own ServiceEntry.
 */
export function groupJobRunner(
  client: () => Pick<ClusterClient, 'runVerificationJob' | 'runGroupVerificationJob'>,
): GroupJobRunner {
  return async (group, specs) => {
    const [first] = specs;
    if (!first) return [];
    if (specs.length === 1) return [await client().runVerificationJob(first)];
    const groupName = group.slice(group.indexOf('/') + 1);
    return client().runGroupVerificationJob(
      { namespace: first.namespace, name: verificationJobName(groupName), targets: specs },
      Math.max(...specs.map((spec) => spec.timeoutMs)),
    );
  };
}
