// `changed-groups-only: true` on a push: onboard only the groups this push changed in the inventory.
// The inventory as it was before the push is read with `git show <before>:<path>` (the checkout needs
// `fetch-depth: 2` or more); anything unclear (not a push, a new branch, a shallow clone, an
// unparsable old file) falls back to every group, and says why.
import { relative } from 'node:path';
import { changedGroups } from './inventory/changes.js';
import { INLINE_SOURCE, parseInventory } from './inventory/index.js';
import type { Inventory } from './inventory/types.js';

export interface PushContext {
  eventName: string;
  /** The push's `before` SHA (github.context.payload.before). */
  before?: string;
  /** Runs git in the workspace and returns its exit code and output. */
  git(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

export type ChangedGroupsDecision = { groups: string[]; reason: string } | { groups: 'all'; reason: string };

export async function groupsChangedByPush(
  inventory: Inventory,
  workspace: string,
  push: PushContext,
): Promise<ChangedGroupsDecision> {
  if (push.eventName !== 'push') return { groups: 'all', reason: `event '${push.eventName}' is not a push` };
  if (inventory.source === INLINE_SOURCE)
    return { groups: 'all', reason: 'the inventory is inline, not a file in the repository' };
  if (!push.before || /^0+$/.test(push.before))
    return { groups: 'all', reason: 'the push has no previous commit (new branch)' };
  const path = relative(
    workspace,
    inventory.source.startsWith('/') ? inventory.source : `${workspace}/${inventory.source}`,
  );
  const commit = await push.git(['cat-file', '-e', `${push.before}^{commit}`]);
  if (commit.exitCode !== 0) {
    return {
      groups: 'all',
      reason: `commit ${push.before.slice(0, 12)} is not in the checkout (use fetch-depth: 2 or more)`,
    };
  }
  const shown = await push.git(['show', `${push.before}:${path}`]);
  if (shown.exitCode !== 0) {
    if (/does not exist in|exists on disk, but not in/.test(shown.stderr)) {
      return { groups: 'all', reason: `${path} did not exist at ${push.before.slice(0, 12)}` };
    }
    return {
      groups: 'all',
      reason: `cannot read ${path} at ${push.before.slice(0, 12)}: ${shown.stderr.trim().split('\n')[0] ?? ''}`,
    };
  }
  let previous: Inventory;
  try {
    previous = parseInventory(shown.stdout, `${path}@${push.before.slice(0, 12)}`);
  } catch {
    return { groups: 'all', reason: `the inventory at ${push.before.slice(0, 12)} was not valid` };
  }
  const groups = changedGroups(previous, inventory);
  return {
    groups,
    reason:
      groups.length === 0
        ? `no group changed since ${push.before.slice(0, 12)}`
        : `changed since ${push.before.slice(0, 12)}: ${groups.join(', ')}`,
  };
}
