// Which VMs this run touches: the group filter, then a stable shard so a GitHub matrix can spread a
// big inventory over several jobs. A VM's shard depends only on its name, so adding or removing other
// VMs never moves it to another job.
import { createHash } from 'node:crypto';
import { listVms, type GroupSpec, type Inventory, type VmSpec } from '../inventory/types.js';
import type { RunSettings } from '../settings.js';

export interface VmSelection {
  selected: { group: GroupSpec; vm: VmSpec }[];
  /** VMs of the chosen groups that belong to another shard. */
  otherShards: { group: GroupSpec; vm: VmSpec }[];
}

export class SelectionError extends Error {}

export function shardOf(vmName: string, count: number): number {
  const digest = createHash('sha256').update(vmName).digest();
  return (digest.readUInt32BE(0) % count) + 1;
}

export function selectVms(inventory: Inventory, rollout: RunSettings['rollout']): VmSelection {
  const known = new Set(inventory.groups.map((group) => group.name));
  const unknown = rollout.groups.filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new SelectionError(
      `input 'groups': no group named ${unknown.map((name) => `'${name}'`).join(', ')} in ` +
        `${inventory.source} (groups: ${[...known].join(', ')})`,
    );
  }
  const chosen = listVms(inventory).filter(
    ({ group }) => rollout.groups.length === 0 || rollout.groups.includes(group.name),
  );
  const shard = rollout.shard;
  if (!shard) return { selected: chosen, otherShards: [] };
  return {
    selected: chosen.filter(({ vm }) => shardOf(vm.name, shard.count) === shard.index),
    otherShards: chosen.filter(({ vm }) => shardOf(vm.name, shard.count) !== shard.index),
  };
}
