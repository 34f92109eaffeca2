// `down` leaves nothing behind: no netns, veth, bridge, mount, process, host rule or lab index; it is
// safe to run twice and works when the daemon has died.
import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { controlRequest } from './control.js';
import { run } from './exec.js';
import type { LabState } from './state.js';
import { downLab, labCli, newLabDir, processGone, ssh, upLab } from './testing.js';

const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await downLab(dir);
}, 120_000);

interface Footprint {
  pids: number[];
  names: string[];
}

async function footprint(state: LabState): Promise<Footprint> {
  const reply = await controlRequest(state.files.controlSocket, { op: 'status' });
  if (!reply.ok) throw new Error(reply.error);
  const status = reply.result as { daemonPid: number; vms: { processes: { pid: number }[] }[] };
  const pids = [status.daemonPid, ...status.vms.flatMap((v) => v.processes.map((p) => p.pid))];
  const names = [state.bridge, ...state.vms.flatMap((v) => [v.netns, v.hostVeth])];
  return { pids, names };
}

async function expectNothingLeft(state: LabState, fp: Footprint): Promise<void> {
  const netns = (await run(['ip', 'netns', 'list'])).stdout;
  const links = (await run(['ip', '-o', 'link'])).stdout;
  for (const vm of state.vms) {
    expect(netns).not.toMatch(new RegExp(`^${vm.netns}\\b`, 'm'));
    expect(links).not.toMatch(new RegExp(`: ${vm.hostVeth}[@:]`));
  }
  expect(links).not.toMatch(new RegExp(`: ${state.bridge}[@:]`));
  const mounts = readFileSync('/proc/mounts', 'utf8');
  expect(mounts).not.toContain(state.dir);
  for (const name of fp.names) expect(mounts).not.toContain(`/${name} `);
  // Mount namespaces of the VMs are gone with their processes.
  for (const pid of fp.pids) expect(processGone(pid)).toBe(true);
  const rules = (await run(['iptables', '-S', 'FORWARD'])).stdout;
  expect(rules).not.toContain(`ivo-lab-${state.labIndex}"`);
  expect(existsSync(`/run/ivo-lab/${state.labIndex}`)).toBe(false);
  expect(existsSync(`${state.dir}/state.json`)).toBe(false);
  expect(existsSync(`${state.dir}/id_ed25519`)).toBe(false);
}

describe('lab down', () => {
  it('removes every namespace, link, mount and process of the lab, and is safe to run twice', async () => {
    const dir = newLabDir('down');
    dirs.push(dir);
    const state = await upLab(dir, 2);
    // Something started over SSH (a VM process the lab did not start itself) must go too.
    const bg = await ssh(state, 'vm1', 'nohup sleep 600 >/dev/null 2>&1 & echo $!');
    expect(bg.code).toBe(0);
    const fp = await footprint(state);
    expect(fp.pids.length).toBeGreaterThanOrEqual(1 + 2 * 4);
    const sleepPid = fp.pids.find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep\u0000600');
      } catch {
        return false;
      }
    });
    expect(sleepPid).toBeDefined();

    const first = await downLab(dir);
    expect(first.code).toBe(0);
    await expectNothingLeft(state, fp);

    const second = await downLab(dir);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('nothing (more) to remove');
  }, 180_000);

  it('cleans up when the daemon has died', async () => {
    const dir = newLabDir('down-dead');
    dirs.push(dir);
    const state = await upLab(dir, 1);
    const fp = await footprint(state);
    const daemonPid = fp.pids[0] as number;
    process.kill(daemonPid, 'SIGKILL');
    for (let i = 0; i < 100 && !processGone(daemonPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(processGone(daemonPid)).toBe(true);
    const r = await downLab(dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/daemon did not answer shutdown/);
    await expectNothingLeft(state, fp);
  }, 180_000);

  it('a failed up cleans up after itself and says why', async () => {
    const dir = newLabDir('down-bad');
    dirs.push(dir);
    // sshd refuses a port outside 1..65535 (`sshd -t`), after the network and the VM's anchor exist:
    // up must fail with sshd's reason and remove what it made.
    const r = await labCli(['up', '--vms', '1', '--dir', dir, '--ssh-port', '70000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Bad port|port/i);
    expect(r.stderr).toContain('cleaning up what was made');
    const k = Number(/lab (\d+): setting up/.exec(r.stderr)?.[1]);
    expect(Number.isInteger(k)).toBe(true);
    expect(existsSync(`${dir}/state.json`)).toBe(false);
    // The index may already be reused by a parallel lab, but then it is not ours.
    const owner = existsSync(`/run/ivo-lab/${k}/owner`) ? readFileSync(`/run/ivo-lab/${k}/owner`, 'utf8').trim() : '';
    expect(owner).not.toBe(dir);
    if (!owner) {
      expect((await run(['ip', 'netns', 'list'])).stdout).not.toMatch(new RegExp(`^ivo${k}vm1\\b`, 'm'));
    }
  }, 180_000);
});
