// The lab works from a checkout in any folder: its Node under the host's /tmp (which every VM covers with
// its own /tmp) and in a path with spaces, and a lab directory with spaces too. Before the VMs got the
// runner's Node bind-mounted at a fixed path, the systemctl stand-in failed with "node: not found".
import { afterAll, describe, expect, it } from '@jest/globals';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from './exec.js';
import type { LabState } from './state.js';
import { downLab, node24, ssh, upLab } from './testing.js';

const outer = mkdtempSync(path.join(os.tmpdir(), 'ivo any folder '));
const dir = path.join(outer, 'lab dir');
let state: LabState | undefined;

afterAll(async () => {
  if (state) await downLab(dir);
  rmSync(outer, { recursive: true, force: true });
}, 120_000);

describe('a checkout under /tmp, in a path with spaces', () => {
  it('boots VMs whose programs run on a Node that lives there', async () => {
    const nodeDir = path.join(outer, 'a b', 'node_modules', 'node', 'bin');
    mkdirSync(nodeDir, { recursive: true });
    const nodePath = path.join(nodeDir, 'node');
    copyFileSync(node24(), nodePath);
    mkdirSync(dir);
    state = await upLab(dir, 1, ['--node-path', nodePath]);
    expect(state.nodePath).toBe(nodePath);
    // The systemctl stand-in and the workload app are Node programs inside the VM.
    const active = await ssh(state, 'vm1', 'systemctl is-active lab-app.service');
    expect([active.code, active.stdout.trim()]).toEqual([0, 'active']);
    const version = await ssh(state, 'vm1', '/usr/local/lib/lab-vm/node --version');
    expect(version.stdout.trim()).toBe(process.version.startsWith('v24') ? process.version : version.stdout.trim());
    expect(version.stdout.trim()).toMatch(/^v2[4-9]\./);
  }, 240_000);

  it('a program the clean-up needs but the machine lacks does not stop the clean-up (exit 127, as in a shell)', async () => {
    const r = await run(['ivo-no-such-program', '--flag'], { allowFailure: true });
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('ENOENT');
    await expect(run(['ivo-no-such-program'])).rejects.toThrow(/ENOENT/);
  });
});
