// Acting inside a lab VM from the host: run a command in the VM's network + mount + UTS namespaces,
// or reach a file as the VM sees it. Other lab parts and tests import these.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import { run, type RunOptions, type RunResult } from '../exec.js';
import { findVm, isSameProcess, type LabState, type LabVmState } from '../state.js';

const VM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function vmOf(state: LabState, vm: string | LabVmState): LabVmState {
  return typeof vm === 'string' ? findVm(state, vm) : vm;
}

function assertAnchor(vm: LabVmState): void {
  if (!vm.anchorPid || !isSameProcess(vm.anchorPid, vm.anchorStartTime)) {
    throw new Error(
      `VM ${vm.name} is not running (its anchor process ${vm.anchorPid} is gone); run \`lab down\` and \`up\` again`,
    );
  }
}

/** `nsenter` argv prefix that enters the VM's namespaces. */
export function nsenterPrefix(vm: LabVmState): string[] {
  assertAnchor(vm);
  return [
    'nsenter',
    `--net=/run/netns/${vm.netns}`,
    `--mount=/proc/${vm.anchorPid}/ns/mnt`,
    `--uts=/proc/${vm.anchorPid}/ns/uts`,
    '--',
  ];
}

/**
 * Runs a command as root inside a VM (argv, or a string for `/bin/sh -c`). Environment is a clean
 * root environment, like `sudo -i` would give. Rejects on non-zero exit unless `allowFailure`.
 */
export function execInVm(
  state: LabState,
  vm: string | LabVmState,
  command: string | string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const v = vmOf(state, vm);
  const argv = typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
  return run([...nsenterPrefix(v), ...argv], {
    ...options,
    cwd: '/',
    env: { PATH: VM_PATH, HOME: '/root', LANG: 'C.UTF-8', ...(options.env ?? {}) },
  });
}

/**
 * Starts a long-running process inside a VM, detached from the caller (own session), output appended
 * to `logFile` (a host path). Returns the child; its pid is the process's pid (nsenter execs it).
 */
export function spawnInVm(state: LabState, vm: string | LabVmState, argv: string[], logFile?: string): ChildProcess {
  const v = vmOf(state, vm);
  const fd = logFile ? openSync(logFile, 'a') : 'ignore';
  const [file, ...args] = [...nsenterPrefix(v), ...argv];
  const child = spawn(file as string, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    cwd: '/',
    env: { PATH: VM_PATH, HOME: '/root', LANG: 'C.UTF-8' },
  });
  if (typeof fd === 'number') closeSync(fd);
  child.unref();
  return child;
}

/** Host path under which a VM's file `vmPath` (absolute) is seen as the VM sees it. */
export function vmPath(state: LabState, vm: string | LabVmState, p: string): string {
  const v = vmOf(state, vm);
  assertAnchor(v);
  if (!p.startsWith('/')) throw new Error(`vmPath needs an absolute path, got ${p}`);
  return `/proc/${v.anchorPid}/root${p}`;
}

/** Pids of every process in the VM's network namespace (`ip netns pids`). */
export async function vmPids(vm: LabVmState): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', vm.netns], { allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Where host programs copied into a VM live (inside the VM's own disk). */
export const VM_HOST_PROGRAMS = '/usr/local/lib/lab-vm/host';

/**
 * Copies a program (or script) of the host into a VM and returns its path there. A VM sees none of the
 * host's /tmp and /root, where a checkout (and so .istio/ or a Go build) may live; a copy works from any
 * folder. Copied again only when the host file changed (size or mtime).
 */
export function programInVm(state: LabState, vm: string | LabVmState, hostFile: string): string {
  const inVm = `${VM_HOST_PROGRAMS}/${path.basename(hostFile)}`;
  const target = vmPath(state, vm, inVm);
  const source = statSync(hostFile);
  let current: { size: number; mtimeMs: number } | undefined;
  try {
    current = statSync(target);
  } catch {
    current = undefined;
  }
  if (!current || current.size !== source.size || current.mtimeMs < source.mtimeMs) {
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(hostFile, target);
    chmodSync(target, source.mode & 0o777);
  }
  return inVm;
}
