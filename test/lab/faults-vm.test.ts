// Every VM fault of lab part 1 shows its effect, and its heal brings the VM back. No Istio is involved (sshd,
// host keys, sudoers, the disk, a reboot of the lab app, the link): it stays on the default lab; the same faults
// against the real control plane are in action-faults.test.ts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { controlRequest } from './control.js';
import { run } from './exec.js';
import { LAB_SUDO_PASSWORD } from './faults.js';
import type { LabState } from './state.js';
import { downLab, faultCli, labCli, newLabDir, ssh, sshArgs, upLab } from './testing.js';

const dir = newLabDir('faults');
let state: LabState;

beforeAll(async () => {
  state = await upLab(dir, 2);
}, 180_000);

afterAll(async () => {
  const r = await downLab(dir);
  expect(r.code).toBe(0);
}, 120_000);

async function activeFaults(): Promise<string[]> {
  const reply = await controlRequest(state.files.controlSocket, { op: 'status' });
  if (!reply.ok) throw new Error(reply.error);
  return (reply.result as { faults: { name: string; vm?: string }[] }).faults.map((f) => `${f.name}@${f.vm ?? ''}`);
}

async function expectHealthy(vm: string): Promise<void> {
  const r = await ssh(state, vm, 'sudo -n true && hostname');
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe(vm);
}

describe('VM faults', () => {
  it('sshd-down: connection refused, then sshd is back', async () => {
    await faultCli(dir, 'fault', 'sshd-down', 'vm1');
    expect(await activeFaults()).toContain('sshd-down@vm1');
    const r = await ssh(state, 'vm1', 'true');
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('Connection refused');
    await expectHealthy('vm2'); // the other VM is untouched
    await faultCli(dir, 'heal', 'sshd-down', 'vm1');
    expect(await activeFaults()).not.toContain('sshd-down@vm1');
    await expectHealthy('vm1');
  });

  it('host-key-changed: strict host key checking fails against known_hosts, then the old key is back', async () => {
    await faultCli(dir, 'fault', 'host-key-changed', 'vm1');
    const r = await ssh(state, 'vm1', 'true');
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    const scan = await run(['ssh-keyscan', '-t', 'ed25519', state.vms[0]?.ip as string], { allowFailure: true });
    expect(readFileSync(state.files.knownHosts, 'utf8')).not.toContain(scan.stdout.trim().split(' ')[2] as string);
    await faultCli(dir, 'heal', 'host-key-changed', 'vm1');
    await expectHealthy('vm1');
  });

  it('sudo-password: sudo -n fails, the password works, heal restores NOPASSWD', async () => {
    await faultCli(dir, 'fault', 'sudo-password', 'vm2');
    const r = await ssh(state, 'vm2', 'sudo -n true');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('a password is required');
    const withPassword = await ssh(state, 'vm2', 'sudo -S -p "" true && echo root-ok', {
      input: `${LAB_SUDO_PASSWORD}\n`,
    });
    expect(withPassword.stdout.trim()).toBe('root-ok');
    await faultCli(dir, 'heal', 'sudo-password', 'vm2');
    await expectHealthy('vm2');
  });

  it('disk-full: writes to the VM disk fail with ENOSPC and df shows 0 available; heal frees it', async () => {
    await faultCli(dir, 'fault', 'disk-full', 'vm1');
    const r = await ssh(
      state,
      'vm1',
      [
        'df -B1 --output=avail /tmp /var/lib /etc | tail -n +2 | tr -d " "',
        'df --output=iavail /tmp | tail -n 1 | tr -d " "',
        'echo data > /tmp/new-file || true',
        'sudo mkdir -p /var/lib/istio/envoy || true',
        'head -c 100000 /dev/zero | sudo tee -a /etc/hosts >/dev/null || true',
      ].join('; '),
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 4)).toEqual(['0', '0', '0', '0']);
    expect((r.stdout + r.stderr).match(/No space left on device/g)?.length).toBeGreaterThanOrEqual(3);
    await faultCli(dir, 'heal', 'disk-full', 'vm1');
    const after = await ssh(
      state,
      'vm1',
      'echo data > /tmp/x && sudo mkdir -p /var/lib/istio-test && df -B1 --output=avail /tmp | tail -1',
    );
    expect(after.code).toBe(0);
    expect(Number(after.stdout.trim())).toBeGreaterThan(1024 * 1024 * 1024);
  });

  it('reboot: /run is emptied and services restart with new pids, the disk survives, enabled units come back', async () => {
    const before = await ssh(
      state,
      'vm2',
      'echo keep | sudo tee /etc/reboot-marker >/dev/null; sudo touch /run/lost-on-reboot; systemctl show -p MainPID --value lab-app; cat /run/sshd.pid',
    );
    const [appPid, sshdPid] = before.stdout.trim().split('\n');
    await faultCli(dir, 'fault', 'reboot', 'vm2');
    expect(await activeFaults()).not.toContain('reboot@vm2'); // an event, not a state
    const after = await ssh(
      state,
      'vm2',
      'cat /etc/reboot-marker; test -e /run/lost-on-reboot && echo run-kept || echo run-cleared; systemctl is-active lab-app; systemctl show -p MainPID --value lab-app; cat /run/sshd.pid',
    );
    const [marker, run1, active, newAppPid, newSshdPid] = after.stdout.trim().split('\n');
    expect([marker, run1, active]).toEqual(['keep', 'run-cleared', 'active']);
    expect(newAppPid).not.toBe(appPid);
    expect(newSshdPid).not.toBe(sshdPid);
    const app = await run(['curl', '-sS', '--max-time', '5', `http://${state.vms[1]?.ip}:8080/`]);
    expect(app.stdout).toBe('vm2\n');
    await faultCli(dir, 'heal', 'reboot', 'vm2'); // no-op, accepted
    await expectHealthy('vm2');
  });

  it('ssh-drop: logins work but an upload is cut mid-transfer; --after-bytes 0 cuts open sessions at once; heal', async () => {
    const payload = randomBytes(2 * 1024 * 1024);
    await faultCli(dir, 'fault', 'ssh-drop', 'vm1');
    await expectHealthy('vm1');
    const cut = await ssh(state, 'vm1', 'cat > /tmp/upload; wc -c < /tmp/upload', { input: payload });
    expect(cut.code).toBe(255); // ssh: connection lost
    expect(cut.stdout).not.toContain(String(payload.length));
    await faultCli(dir, 'heal', 'ssh-drop', 'vm1');
    const ok = await ssh(state, 'vm1', 'cat > /tmp/upload; wc -c < /tmp/upload', { input: payload });
    expect(ok.stdout.trim()).toBe(String(payload.length));

    // At once: an open session dies.
    const session = run([...sshArgs(state, 'vm1'), 'sleep 30; echo finished'], {
      allowFailure: true,
      timeoutMs: 60_000,
    });
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    await faultCli(dir, 'fault', 'ssh-drop', 'vm1', ['--after-bytes', '0']);
    const ended = await session;
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(ended.code).toBe(255);
    expect(ended.stdout).not.toContain('finished');
    await faultCli(dir, 'heal', 'ssh-drop', 'vm1');
    await expectHealthy('vm1');
  }, 120_000);

  it('app-down: the workload port refuses connections, heal brings the app back', async () => {
    await faultCli(dir, 'fault', 'app-down', 'vm2');
    const down = await run(['curl', '-sS', '--max-time', '5', `http://${state.vms[1]?.ip}:8080/`], {
      allowFailure: true,
    });
    expect(down.code).toBe(7); // curl: failed to connect
    const status = await ssh(state, 'vm2', 'systemctl is-active lab-app');
    expect(status.stdout.trim()).toBe('inactive');
    await faultCli(dir, 'heal', 'app-down', 'vm2');
    const up = await run(['curl', '-sS', '--max-time', '5', `http://${state.vms[1]?.ip}:8080/`]);
    expect(up.stdout).toBe('vm2\n');
  });

  it('slow-network: a transfer from the VM is rate-limited, heal restores full speed', async () => {
    const transfer = async (): Promise<number> => {
      const t0 = Date.now();
      const r = await ssh(state, 'vm2', 'head -c 600000 /dev/urandom', { timeoutMs: 60_000 });
      expect(r.stdout.length).toBeGreaterThan(0);
      return Date.now() - t0;
    };
    const fast = await transfer();
    await faultCli(dir, 'fault', 'slow-network', 'vm2', ['--rate', '2mbit']);
    const slow = await transfer(); // 600 kB at 2 Mbit/s: about 2.4 s
    expect(slow).toBeGreaterThan(1800);
    expect(slow).toBeGreaterThan(fast * 3);
    await faultCli(dir, 'heal', 'slow-network', 'vm2');
    const healed = await transfer();
    expect(healed).toBeLessThan(1500);
  }, 120_000);

  it('rejects unknown faults and unknown VMs with a clear message', async () => {
    const r = await labCli(['fault', 'no-such-fault', '--vm', 'vm1', '--dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown fault no-such-fault');
    const v = await labCli(['fault', 'app-down', '--vm', 'vm9', '--dir', dir]);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain('no VM named vm9');
  });
});
