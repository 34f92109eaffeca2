// Which groups of an inventory differ from an earlier version of it: the merge-to-main workflow can
// then onboard only what a commit changed. A change to the mesh settings affects every group; a
// group's VMs carry the file- and group-level defaults already, so comparing resolved groups is enough.
import type { Inventory } from './types.js';

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([key, entry]) => entry !== undefined && key !== 'line')
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, entry]) => `${JSON.stringify(key)}:${canonical(entry)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Names of the groups of `after` that are new or differ from `before` (all of them when the mesh settings changed). */
export function changedGroups(before: Inventory | undefined, after: Inventory): string[] {
  if (!before || canonical(before.mesh) !== canonical(after.mesh)) return after.groups.map((group) => group.name);
  const previous = new Map(before.groups.map((group) => [`${group.namespace}/${group.name}`, canonical(group)]));
  return after.groups
    .filter((group) => previous.get(`${group.namespace}/${group.name}`) !== canonical(group))
    .map((group) => group.name);
}
