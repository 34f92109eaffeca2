import { describe, expect, it } from '@jest/globals';
import { changedGroups } from '../../src/inventory/changes.js';
import { parseInventory } from '../../src/inventory/index.js';

const base = `defaults: {user: ops}
groups:
  - name: web
    namespace: vm
    vms: [{name: web-1, address: 10.0.0.1}]
  - name: db
    namespace: vm
    vms: [{name: db-1, address: 10.0.0.2}]
`;
const inv = (text: string) => parseInventory(text, 'inventory.yaml');

describe('changedGroups', () => {
  it('names only the groups whose resolved content changed', () => {
    expect(changedGroups(inv(base), inv(base))).toEqual([]);
    expect(changedGroups(inv(base), inv(base.replace('10.0.0.2', '10.0.0.3')))).toEqual(['db']);
    expect(
      changedGroups(inv(base), inv(base.replace('- name: web\n', '# a comment moves every line\n  - name: web\n'))),
    ).toEqual([]);
  });
  it('treats a new group, a default that reaches VMs, and mesh changes as changes', () => {
    expect(
      changedGroups(
        inv(base),
        inv(`${base}  - name: cache\n    namespace: vm\n    vms: [{name: c-1, address: 10.0.0.9}]\n`),
      ),
    ).toEqual(['cache']);
    expect(changedGroups(inv(base), inv(base.replace('user: ops', 'user: admin')))).toEqual(['web', 'db']);
    expect(changedGroups(inv(base), inv(`mesh: {revision: canary}\n${base}`))).toEqual(['web', 'db']);
    expect(changedGroups(undefined, inv(base))).toEqual(['web', 'db']);
  });
});
