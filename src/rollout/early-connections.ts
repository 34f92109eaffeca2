// SSH logins for the VMs that will start first, opened while the cluster side (namespace,
// ServiceAccount, WorkloadGroup, mesh values such as the root certificate, which istiod may still be
// publishing into a new namespace) is being prepared. Only after the cluster preflight passed: a run
// that cannot talk to the cluster or lacks permissions still opens no connection. A login changes
// nothing on a VM; connections nobody took are closed.
import type { GroupSpec, VmSpec } from '../inventory/types.js';
import { resolveShare, type RunSettings } from '../settings.js';
import type { VmConnectorPort, VmPort } from './ports.js';

export interface EarlyConnections {
  /** Hands out an early connection once (its failure included), else connects now. */
  connector: VmConnectorPort;
  /** Closes the early connections nobody took (after the VMs ran, or when the cluster side failed). */
  discardUnused(): Promise<void>;
}

/**
 * The VMs the rollout starts at once: in selection order, at most the per-group share
 * (max-unavailable) of each group, and at most `concurrency` in all.
 */
export function firstWave(
  selected: readonly { group: GroupSpec; vm: VmSpec }[],
  rollout: Pick<RunSettings['rollout'], 'concurrency' | 'maxUnavailable'>,
): VmSpec[] {
  const perGroup = new Map<GroupSpec, number>();
  const wave: VmSpec[] = [];
  for (const { group, vm } of selected) {
    if (wave.length >= rollout.concurrency) break;
    const used = perGroup.get(group) ?? 0;
    if (used >= resolveShare(rollout.maxUnavailable, group.vms.length)) continue;
    perGroup.set(group, used + 1);
    wave.push(vm);
  }
  return wave;
}

export function openEarlyConnections(connector: VmConnectorPort, vms: readonly VmSpec[]): EarlyConnections {
  const pending = new Map<VmSpec, Promise<VmPort>>();
  for (const vm of vms) {
    const connection = connector.connect(vm);
    // Settled by whoever takes it; until then a failure must not count as unhandled.
    connection.catch(() => undefined);
    pending.set(vm, connection);
  }
  return {
    connector: {
      connect(vm) {
        const early = pending.get(vm);
        if (!early) return connector.connect(vm);
        pending.delete(vm);
        return early;
      },
    },
    async discardUnused() {
      const unused = [...pending.values()];
      pending.clear();
      await Promise.all(unused.map((connection) => connection.then((port) => port.close()).catch(() => undefined)));
    },
  };
}
