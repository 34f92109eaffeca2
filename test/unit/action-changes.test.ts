// changed-groups-only against a real git repository with two commits.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupsChangedByPush, type PushContext } from '../../src/action-changes.js';
import { parseInventory } from '../../src/inventory/index.js';

const V1 = `groups:
  - {name: web, namespace: vm, vms: [{name: web-1, address: 10.0.0.1, user: u}]}
  - {name: db, namespace: vm, vms: [{name: db-1, address: 10.0.0.2, user: u}]}
`;
const V2 = V1.replace('10.0.0.2', '10.0.0.3');
let repo: string;
let first: string;

const git = (args: string[]) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim();
const push = (eventName: string, before?: string): PushContext => ({
  eventName,
  ...(before !== undefined ? { before } : {}),
  git: async (args) => {
    const result = spawnSync('git', args, { cwd: repo, encoding: 'utf8' });
    return { exitCode: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
  },
});

beforeAll(() => {
  repo = mkdtempSync(join(tmpdir(), 'ivo-changes-'));
  git(['init', '-q']);
  git(['config', 'user.email', 'ci@example.com']);
  git(['config', 'user.name', 'ci']);
  writeFileSync(join(repo, 'vms.yaml'), V1);
  git(['add', '.']);
  git(['commit', '-qm', 'one']);
  first = git(['rev-parse', 'HEAD']);
  writeFileSync(join(repo, 'vms.yaml'), V2);
  git(['commit', '-qam', 'two']);
});
afterAll(() => rmSync(repo, { recursive: true, force: true }));

describe('groupsChangedByPush', () => {
  it("names the groups the push changed, from the inventory at the push's before commit", async () => {
    const decision = await groupsChangedByPush(parseInventory(V2, 'vms.yaml'), repo, push('push', first));
    expect(decision).toEqual({ groups: ['db'], reason: `changed since ${first.slice(0, 12)}: db` });
  });
  it('falls back to every group, saying why, when it cannot tell', async () => {
    const inventory = parseInventory(V2, 'vms.yaml');
    expect(await groupsChangedByPush(inventory, repo, push('workflow_dispatch', first))).toMatchObject({
      groups: 'all',
      reason: "event 'workflow_dispatch' is not a push",
    });
    expect(await groupsChangedByPush(inventory, repo, push('push', '0'.repeat(40)))).toMatchObject({
      groups: 'all',
      reason: 'the push has no previous commit (new branch)',
    });
    expect((await groupsChangedByPush(inventory, repo, push('push', 'f'.repeat(40)))).reason).toBe(
      'commit ffffffffffff is not in the checkout (use fetch-depth: 2 or more)',
    );
    expect((await groupsChangedByPush(parseInventory(V2, 'new.yaml'), repo, push('push', first))).reason).toBe(
      `new.yaml did not exist at ${first.slice(0, 12)}`,
    );
  });
});
