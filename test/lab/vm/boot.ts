// Booting a lab VM: the anchor process that owns the VM's mount + UTS namespaces (inside its netns),
// its disk (a tmpfs holding the overlay upper layers, /root and /tmp), a fresh tmpfs /run, then the
// real OpenSSH sshd and the enabled units (systemctl stand-in). Also the "reboot" of a VM.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sleep } from '../exec.js';
import { processStartTime, type LabState, type LabVmState } from '../state.js';
import { execInVm, spawnInVm, vmPath, vmPids } from './exec.js';
import { APP_UNIT, LAB_VM_NODE, OVERLAID_DIRS } from './root.js';

const READY_MARK = 'ivo-lab-vm-ready';
export const RUN_TMPFS_SIZE = '64m';
/** Inodes of a VM disk (tmpfs nr_inodes); `disk-full` lowers it to what is in use, heal restores it. */
export const VM_DISK_INODES = 1048576;

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Commands (sh) that give a VM a fresh, empty /run with what sshd and the stand-in need. */
export function freshRunCommands(): string {
  return [
    `mount -t tmpfs -o size=${RUN_TMPFS_SIZE},mode=0755,nosuid,nodev ivo-vm-run /run`,
    'mkdir -p /run/sshd /run/lock /run/systemd-standin /run/user',
    'chmod 0755 /run/sshd; chmod 1777 /run/lock',
  ].join('\n');
}

export function bootScript(vm: LabVmState, seedDir: string, diskDir: string, hostNodePath: string): string {
  const lines = [
    '#!/bin/sh',
    `# First process of lab VM ${vm.name}: runs in netns ${vm.netns} inside fresh mount + UTS namespaces.`,
    'set -eu',
    `DISK=${shq(diskDir)}`,
    `mount -t tmpfs -o size=${vm.diskBytes},nr_inodes=${VM_DISK_INODES},mode=0755 ivo-vm-disk "$DISK"`,
    `cp -a ${shq(seedDir)}/. "$DISK/"`,
    ...OVERLAID_DIRS.map(
      (d) => `mount -t overlay ivo-vm-${d} -o "lowerdir=/${d},upperdir=$DISK/upper/${d},workdir=$DISK/work/${d}" /${d}`,
    ),
    // The runner's Node, before /tmp is covered (a checkout under /tmp would be hidden from then on).
    `: > ${LAB_VM_NODE}`,
    `mount --bind ${shq(hostNodePath)} ${LAB_VM_NODE}`,
    `mount -o remount,bind,ro ${LAB_VM_NODE}`,
    'mount --bind "$DISK/root" /root',
    'mount --bind "$DISK/tmp" /tmp',
    freshRunCommands(),
    `hostname ${shq(vm.name)}`,
    // Units the host has enabled are not this VM's: start from an empty /etc/systemd/system.
    'rm -rf /etc/systemd/system',
    'mkdir -p /etc/systemd/system/multi-user.target.wants',
    `ln -s /lib/systemd/system/${APP_UNIT} /etc/systemd/system/multi-user.target.wants/${APP_UNIT}`,
    'mkdir -p /var/log/journal-standin /var/lib/lab-vm',
    `echo ${READY_MARK}`,
    'exec sleep infinity',
    '',
  ];
  return lines.join('\n');
}

/** Starts the VM's anchor; resolves with its pid and start time once the VM's filesystems are mounted. */
export async function startAnchor(
  vm: LabVmState,
  seedDir: string,
  hostNodePath: string,
): Promise<{ pid: number; startTime: number }> {
  const diskDir = path.join(vm.vmDir, 'disk');
  mkdirSync(diskDir, { recursive: true });
  const script = path.join(vm.vmDir, 'boot.sh');
  writeFileSync(script, bootScript(vm, seedDir, diskDir, hostNodePath), { mode: 0o755 });
  const logFile = path.join(vm.vmDir, 'boot.log');
  const fd = openSync(logFile, 'w');
  const child = spawn(
    'ip',
    ['netns', 'exec', vm.netns, 'unshare', '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', script],
    { detached: true, stdio: ['ignore', fd, fd], cwd: '/' },
  );
  closeSync(fd);
  child.unref();
  const pid = child.pid;
  if (!pid) throw new Error(`VM ${vm.name}: could not start its anchor process`);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const log = readFileSync(logFile, 'utf8');
    if (log.includes(READY_MARK)) {
      const startTime = processStartTime(pid);
      if (startTime === undefined) break;
      return { pid, startTime };
    }
    if (child.exitCode !== null || processStartTime(pid) === undefined) break;
    await sleep(20);
  }
  throw new Error(
    `VM ${vm.name}: boot failed or timed out (20 s); boot log ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-2000)}`,
  );
}

/** Waits (bounded) until an SSH server answers with its banner at ip:port. */
export async function waitForSshBanner(ip: string, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      const banner = await new Promise<string>((resolve, reject) => {
        const socket = net.connect({ host: ip, port, timeout: 2000 });
        let data = '';
        socket.on('data', (b) => {
          data += b.toString();
          if (data.includes('\n')) {
            socket.destroy();
            resolve(data);
          }
        });
        socket.on('timeout', () => {
          socket.destroy();
          reject(new Error('timeout'));
        });
        socket.on('error', reject);
        socket.on('close', () => reject(new Error('closed before banner')));
      });
      if (banner.startsWith('SSH-2.0-')) return;
      lastError = `unexpected banner ${JSON.stringify(banner.slice(0, 40))}`;
    } catch (e) {
      lastError = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`sshd at ${ip}:${port} did not answer within ${timeoutMs} ms (${lastError})`);
}

/** Starts the VM's sshd (Debian's real /usr/sbin/sshd) and waits for its banner. */
export async function startSshd(state: LabState, vm: LabVmState): Promise<number> {
  await execInVm(state, vm, ['/usr/sbin/sshd', '-t', '-f', '/etc/ssh/sshd_config']);
  const child = spawnInVm(state, vm, [
    '/usr/sbin/sshd',
    '-D',
    '-f',
    '/etc/ssh/sshd_config',
    '-E',
    '/var/log/sshd-lab.log',
  ]);
  if (!child.pid) throw new Error(`VM ${vm.name}: sshd did not start`);
  await waitForSshBanner(vm.ip, vm.sshPort);
  return child.pid;
}

/** Pid of the VM's listening sshd, from its pid file, or undefined when sshd is not running. */
export function sshdPid(state: LabState, vm: LabVmState): number | undefined {
  try {
    const pid = Number(readFileSync(vmPath(state, vm, '/run/sshd.pid'), 'utf8').trim());
    return pid > 0 && processStartTime(pid) !== undefined ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops the VM's listening sshd (open sessions stay, as with `systemctl stop ssh`). */
export async function stopSshd(state: LabState, vm: LabVmState): Promise<void> {
  const pid = sshdPid(state, vm);
  if (!pid) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && processStartTime(pid) !== undefined) await sleep(20);
  if (processStartTime(pid) !== undefined) process.kill(pid, 'SIGKILL');
}

/** Starts the VM's enabled units (what multi-user.target would start). */
export async function startEnabledUnits(state: LabState, vm: LabVmState): Promise<void> {
  await execInVm(state, vm, ['systemctl', '__boot'], { timeoutMs: 90_000 });
}

/** Waits (bounded) until something accepts TCP connections at ip:port. */
export async function waitForTcp(ip: string, port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host: ip, port, timeout: 1000 });
        socket.on('connect', () => {
          socket.destroy();
          resolve();
        });
        socket.on('timeout', () => {
          socket.destroy();
          reject(new Error('timeout'));
        });
        socket.on('error', reject);
      });
      return;
    } catch (e) {
      lastError = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`nothing listens on ${ip}:${port} after ${timeoutMs} ms (${lastError})`);
}

/** Boots a VM whose anchor is running: sshd, then the enabled units; returns when the app listens. */
export async function bootServices(state: LabState, vm: LabVmState): Promise<void> {
  await startSshd(state, vm);
  await startEnabledUnits(state, vm);
  await waitForTcp(vm.ip, state.appPort);
}

/**
 * "Reboot": stop every unit (ExecStopPost runs), end every other process of the VM (by pid, from the
 * VM's netns), forget the netfilter rules, give it an empty /run, then start sshd and the enabled units.
 * The VM's disk (/etc, /var, …, /tmp) survives, as on a real machine.
 */
export async function rebootVm(state: LabState, vm: LabVmState): Promise<void> {
  await execInVm(state, vm, ['systemctl', '__shutdown'], { timeoutMs: 60_000, allowFailure: true });
  await killVmProcesses(vm, [vm.anchorPid]);
  await execInVm(
    state,
    vm,
    [
      'umount -l /run',
      freshRunCommands(),
      'for t in filter nat mangle raw; do iptables -t $t -F; iptables -t $t -X; done 2>/dev/null || true',
      `hostname ${shq(vm.name)}`,
    ].join('\n'),
  );
  await bootServices(state, vm);
}

/** SIGKILLs every process in the VM's netns except `keep`, bounded retries until none is left. */
export async function killVmProcesses(vm: LabVmState, keep: number[] = []): Promise<number[]> {
  const killed: number[] = [];
  for (let round = 0; round < 50; round++) {
    const pids = (await vmPids(vm)).filter((p) => !keep.includes(p) && p !== process.pid);
    if (pids.length === 0) return killed;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // already gone
      }
    }
    await sleep(20);
  }
  const left = (await vmPids(vm)).filter((p) => !keep.includes(p));
  if (left.length) throw new Error(`VM ${vm.name}: processes ${left.join(', ')} survive SIGKILL`);
  return killed;
}
