// Fault switches of the lab. This file holds the registry (name → apply/heal, active list) and lab part
// 1's VM faults; the control plane (part 2) contributes its own definitions through startControlPlane.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';
import type { FaultDefinition, FaultTarget } from './fault-types.js';
import { findVm, type ActiveFault, type LabState, type LabVmState } from './state.js';
import { rebootVm, sshdPid, startSshd, stopSshd, VM_DISK_INODES, waitForTcp } from './vm/boot.js';
import { execInVm, vmPath, vmPids } from './vm/exec.js';
import { APP_UNIT, sudoersNoPasswd, sudoersWithPassword } from './vm/root.js';

/** A fault target with the CLI's extra `--key value` options (e.g. ssh-drop --after-bytes 0). */
export interface LabFaultTarget extends FaultTarget {
  options?: Record<string, string>;
}

/** The password the lab user needs for sudo while `sudo-password` is on. */
export const LAB_SUDO_PASSWORD = 'lab-sudo-password';
/** Events rather than states: applied, never listed as active; heal is a no-op. */
export const MOMENTARY_FAULTS = new Set(['reboot']);
export const SSH_DROP_CHAIN = 'IVO-LAB-SSH-DROP';
export const DEFAULT_SSH_DROP_BYTES = 65536;
export const DEFAULT_SLOW_RATE = '1mbit';

/** What `disk-full` fills, for docs and tests. */
export const DISK_FULL_PATHS = ['/etc', '/var', '/usr', '/home', '/opt', '/root', '/tmp'];

function vmFault(
  state: LabState,
  name: string,
  description: string,
  apply: (vm: LabVmState, target: LabFaultTarget) => Promise<void>,
  heal: (vm: LabVmState, target: LabFaultTarget) => Promise<void>,
): FaultDefinition {
  const pick = (t: FaultTarget): LabVmState => {
    if (!t.vm) throw new Error(`fault ${name} needs a VM`);
    return findVm(state, t.vm);
  };
  return {
    name,
    scope: 'vm',
    description,
    apply: (t) => apply(pick(t), t),
    heal: (t) => heal(pick(t), t),
  };
}

async function restartSshd(state: LabState, vm: LabVmState): Promise<void> {
  await stopSshd(state, vm);
  await startSshd(state, vm);
}

async function netnsIptables(vm: LabVmState, args: string[], allowFailure = false): Promise<number> {
  const r = await run(['ip', 'netns', 'exec', vm.netns, 'iptables', '-w', '5', ...args], { allowFailure });
  return r.code ?? 1;
}

export function vmFaults(state: LabState): FaultDefinition[] {
  const backupDir = (vm: LabVmState): string => path.join(vm.vmDir, 'host-key-before-fault');
  return [
    vmFault(
      state,
      'sshd-down',
      "The VM's sshd stops listening (connection refused on the SSH port); open sessions stay. Heal starts it again.",
      async (vm) => stopSshd(state, vm),
      async (vm) => {
        if (!sshdPid(state, vm)) await startSshd(state, vm);
      },
    ),
    vmFault(
      state,
      'host-key-changed',
      'The VM gets a new ed25519 host key and sshd restarts; DIR/known_hosts keeps the old key, so strict host key checking fails. Heal restores the original key.',
      async (vm) => {
        const backup = backupDir(vm);
        if (!existsSync(backup)) {
          mkdirSync(backup, { recursive: true, mode: 0o700 });
          for (const f of ['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']) {
            copyFileSync(vmPath(state, vm, `/etc/ssh/${f}`), path.join(backup, f));
          }
        }
        await execInVm(state, vm, [
          '/bin/sh',
          '-c',
          `rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub && ssh-keygen -q -t ed25519 -N '' -C root@${vm.name} -f /etc/ssh/ssh_host_ed25519_key`,
        ]);
        await restartSshd(state, vm);
      },
      async (vm) => {
        const backup = backupDir(vm);
        if (!existsSync(backup)) return;
        for (const [f, mode] of [
          ['ssh_host_ed25519_key', 0o600],
          ['ssh_host_ed25519_key.pub', 0o644],
        ] as const) {
          const target = vmPath(state, vm, `/etc/ssh/${f}`);
          writeFileSync(target, readFileSync(path.join(backup, f)));
          chmodSync(target, mode);
        }
        await restartSshd(state, vm);
        rmSync(backup, { recursive: true, force: true });
      },
    ),
    vmFault(
      state,
      'sudo-password',
      `sudo asks the lab user for a password (NOPASSWD removed; password "${LAB_SUDO_PASSWORD}"), so \`sudo -n\` fails. Heal restores passwordless sudo.`,
      async (vm) => {
        const hash = (await run(['openssl', 'passwd', '-6', LAB_SUDO_PASSWORD])).stdout.trim();
        await execInVm(state, vm, ['usermod', '-p', hash, state.user]);
        const file = vmPath(state, vm, '/etc/sudoers.d/90-lab-user');
        writeFileSync(file, sudoersWithPassword(state.user));
        chmodSync(file, 0o440);
        await execInVm(state, vm, ['rm', '-rf', '/run/sudo/ts']);
      },
      async (vm) => {
        const file = vmPath(state, vm, '/etc/sudoers.d/90-lab-user');
        writeFileSync(file, sudoersNoPasswd(state.user));
        chmodSync(file, 0o440);
        await execInVm(state, vm, ['usermod', '-p', '*', state.user]);
      },
    ),
    vmFault(
      state,
      'disk-full',
      `The VM's disk is full: ${DISK_FULL_PATHS.join(' ')} (one tmpfs under the overlays) have 0 bytes and 0 inodes free: new files and directories and growing writes fail with ENOSPC, and \`df\` / \`df -i\` on them show 0 available (a write inside an already allocated page can still succeed, as on a real full disk). /run (tmpfs) and \`df /\` (the host's root, the VM has no root mount of its own) are not affected. Heal restores the disk size.`,
      async (vm) => {
        // Shrink the disk to what is in use now (bounded retries when something writes meanwhile).
        await execInVm(
          state,
          vm,
          [
            // Blocks and inodes: no new file or directory either (tmpfs directories take no blocks).
            'for i in 1 2 3 4 5 6 7 8 9 10; do',
            '  used=$(df -B1 --output=used /tmp | tail -n 1 | tr -d " ")',
            '  iused=$(df --output=iused /tmp | tail -n 1 | tr -d " ")',
            '  size=$(( (used + 4095) / 4096 * 4096 ))',
            '  if mount -o remount,size=$size,nr_inodes=$iused /tmp 2>/dev/null; then break; fi',
            'done',
            'avail=$(df -B1 --output=avail /tmp | tail -n 1 | tr -d " ")',
            // A partly used last page is filled too, so even a one-byte write fails.
            'if [ "$avail" -gt 0 ]; then head -c "$avail" /dev/zero >> /tmp/.lab-disk-full 2>/dev/null || true; fi',
            'test "$(df -B1 --output=avail /tmp | tail -n 1 | tr -d " ")" -eq 0',
          ].join('\n'),
        );
      },
      async (vm) => {
        await execInVm(
          state,
          vm,
          `mount -o remount,size=${vm.diskBytes},nr_inodes=${VM_DISK_INODES} /tmp && rm -f /tmp/.lab-disk-full`,
        );
      },
    ),
    vmFault(
      state,
      'reboot',
      'Reboots the VM: every unit is stopped (ExecStopPost runs), every other process ends, /run is emptied (tmpfs), netfilter rules are gone; then sshd and the enabled units start again. The disk (/etc, /var, …) survives. Momentary: heal does nothing.',
      async (vm) => rebootVm(state, vm),
      async () => {},
    ),
    vmFault(
      state,
      'ssh-drop',
      `SSH connections to the VM are cut (TCP reset, both ends) once the client has sent more than --after-bytes bytes on them (default ${DEFAULT_SSH_DROP_BYTES}: logins and commands work, an upload is cut mid-transfer). --after-bytes 0 cuts every open SSH connection at once (their sshd processes end) and adds no rule. Heal removes the rule.`,
      async (vm, t) => {
        const bytes = Number(t.options?.['after-bytes'] ?? DEFAULT_SSH_DROP_BYTES);
        if (!Number.isInteger(bytes) || bytes < 0) throw new Error(`ssh-drop: --after-bytes must be a number >= 0`);
        if (bytes === 0) {
          const listener = sshdPid(state, vm);
          for (const pid of await vmPids(vm)) {
            if (pid === listener) continue;
            let exe = '';
            try {
              exe = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
            } catch {
              continue;
            }
            if (/^sshd:|\/sshd$/.test(exe) || exe.startsWith('sshd')) {
              try {
                process.kill(pid, 'SIGKILL');
              } catch {
                // gone
              }
            }
          }
          return;
        }
        await netnsIptables(vm, ['-N', SSH_DROP_CHAIN], true);
        await netnsIptables(vm, ['-F', SSH_DROP_CHAIN]);
        const port = String(vm.sshPort);
        // RSTs are never matched: the resets these rules send must pass the rule of the other direction.
        const conn = [
          '!',
          '--tcp-flags',
          'RST',
          'RST',
          '-m',
          'connbytes',
          '--connbytes',
          `${bytes}:`,
          '--connbytes-dir',
          'original',
          '--connbytes-mode',
          'bytes',
        ];
        await netnsIptables(vm, [
          '-A',
          SSH_DROP_CHAIN,
          '-p',
          'tcp',
          '--dport',
          port,
          ...conn,
          '-j',
          'REJECT',
          '--reject-with',
          'tcp-reset',
        ]);
        await netnsIptables(vm, [
          '-A',
          SSH_DROP_CHAIN,
          '-p',
          'tcp',
          '--sport',
          port,
          ...conn,
          '-j',
          'REJECT',
          '--reject-with',
          'tcp-reset',
        ]);
        for (const chain of ['INPUT', 'OUTPUT']) {
          if ((await netnsIptables(vm, ['-C', chain, '-j', SSH_DROP_CHAIN], true)) !== 0) {
            await netnsIptables(vm, ['-I', chain, '1', '-j', SSH_DROP_CHAIN]);
          }
        }
      },
      async (vm) => {
        for (const chain of ['INPUT', 'OUTPUT']) {
          for (let i = 0; i < 5; i++)
            if ((await netnsIptables(vm, ['-D', chain, '-j', SSH_DROP_CHAIN], true)) !== 0) break;
        }
        await netnsIptables(vm, ['-F', SSH_DROP_CHAIN], true);
        await netnsIptables(vm, ['-X', SSH_DROP_CHAIN], true);
      },
    ),
    vmFault(
      state,
      'app-down',
      `The VM's workload application (unit ${APP_UNIT}, port ${state.appPort}) is stopped. Heal starts it.`,
      async (vm) => {
        await execInVm(state, vm, ['systemctl', 'stop', APP_UNIT]);
      },
      async (vm) => {
        await execInVm(state, vm, ['systemctl', 'start', APP_UNIT]);
        await waitForTcp(vm.ip, state.appPort);
      },
    ),
    vmFault(
      state,
      'slow-network',
      `The VM's link is rate-limited in both directions (tc tbf, --rate, default ${DEFAULT_SLOW_RATE}; packets queue up to 2 s). tc netem is not available in this kernel, so there is no fixed added latency: delay comes from queueing behind the rate limit. Heal removes the qdiscs.`,
      async (vm, t) => {
        const rate = t.options?.rate ?? DEFAULT_SLOW_RATE;
        if (!/^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps)$/.test(rate))
          throw new Error(`slow-network: bad --rate ${rate}`);
        const tbf = ['root', 'tbf', 'rate', rate, 'burst', '16kb', 'latency', '2s'];
        await run(['ip', 'netns', 'exec', vm.netns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', ...tbf]);
        await run(['tc', 'qdisc', 'replace', 'dev', vm.hostVeth, ...tbf]);
      },
      async (vm) => {
        await run(['ip', 'netns', 'exec', vm.netns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'], {
          allowFailure: true,
        });
        await run(['tc', 'qdisc', 'del', 'dev', vm.hostVeth, 'root'], { allowFailure: true });
      },
    ),
  ];
}

/** Applies/heals faults by name, for one VM or (VM scope, no --vm) every VM, and keeps the active list. */
export class FaultRegistry {
  private readonly byName = new Map<string, FaultDefinition>();

  constructor(
    definitions: FaultDefinition[],
    private readonly state: LabState,
    private readonly persist: () => void,
  ) {
    for (const d of definitions) {
      if (this.byName.has(d.name)) throw new Error(`fault ${d.name} is defined twice`);
      this.byName.set(d.name, d);
    }
  }

  list(): { name: string; scope: string; description: string }[] {
    return [...this.byName.values()].map((d) => ({ name: d.name, scope: d.scope, description: d.description }));
  }

  active(): ActiveFault[] {
    return this.state.faults;
  }

  private resolve(name: string, vm: string | undefined): { def: FaultDefinition; vms: (string | undefined)[] } {
    const def = this.byName.get(name);
    if (!def) throw new Error(`unknown fault ${name}; known: ${[...this.byName.keys()].sort().join(', ')}`);
    if (def.scope === 'lab') {
      if (vm) throw new Error(`fault ${name} applies to the whole lab; do not pass --vm`);
      return { def, vms: [undefined] };
    }
    if (vm) findVm(this.state, vm);
    return { def, vms: vm ? [vm] : this.state.vms.map((v) => v.name) };
  }

  async apply(name: string, vm?: string, options?: Record<string, string>): Promise<ActiveFault[]> {
    const { def, vms } = this.resolve(name, vm);
    await Promise.all(vms.map((v) => def.apply({ vm: v, options } as LabFaultTarget)));
    if (!MOMENTARY_FAULTS.has(name)) {
      for (const v of vms) {
        if (!this.state.faults.some((f) => f.name === name && f.vm === v)) {
          this.state.faults.push({ name, ...(v ? { vm: v } : {}), since: new Date().toISOString() });
        }
      }
      this.persist();
    }
    return this.state.faults;
  }

  async heal(name: string, vm?: string, options?: Record<string, string>): Promise<ActiveFault[]> {
    const { def, vms } = this.resolve(name, vm);
    await Promise.all(vms.map((v) => def.heal({ vm: v, options } as LabFaultTarget)));
    this.state.faults = this.state.faults.filter((f) => !(f.name === name && vms.includes(f.vm)));
    this.persist();
    return this.state.faults;
  }
}
