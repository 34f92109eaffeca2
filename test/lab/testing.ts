// Helpers for lab tests: drive the real CLI (`node --import register-ts.mjs cli.ts …`, as `npm run lab`
// does), reach VMs with the real OpenSSH client, read state. Each test uses its own DIR under os.tmpdir().
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from './exec.js';
import { findVm, readState, type LabState } from './state.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');

/** Node 24 (the one npm/npx put first on PATH), for the CLI and its daemon. */
export function node24(): string {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= 24) return process.execPath;
  return path.join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
}

export function labCli(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run([node24(), '--import', path.join(HERE, 'register-ts.mjs'), path.join(HERE, 'cli.ts'), ...args], {
    cwd: REPO_ROOT,
    timeoutMs,
    allowFailure: true,
  });
}

export function newLabDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `ivo-${prefix}-`));
}

/** `up` through the CLI; throws with the CLI's output when it fails. */
export async function upLab(dir: string, vms: number, extra: string[] = []): Promise<LabState> {
  const r = await labCli(['up', '--vms', String(vms), '--dir', dir, ...extra], 180_000);
  if (r.code !== 0) throw new Error(`lab up failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return readState(dir);
}

/** `down` through the CLI; a test's DIR (only lab.log is left in it) is removed when down succeeded. */
export async function downLab(dir: string): Promise<RunResult> {
  const r = await labCli(['down', '--dir', dir], 120_000);
  if (r.code === 0) rmSync(dir, { recursive: true, force: true });
  return r;
}

export async function faultCli(
  dir: string,
  verb: 'fault' | 'heal',
  name: string,
  vm?: string,
  extra: string[] = [],
): Promise<void> {
  const r = await labCli([verb, name, ...(vm ? ['--vm', vm] : []), '--dir', dir, ...extra]);
  if (r.code !== 0) throw new Error(`lab ${verb} ${name} failed:\n${r.stdout}\n${r.stderr}`);
}

export function sshArgs(state: LabState, vmName: string, extraOptions: string[] = []): string[] {
  const vm = findVm(state, vmName);
  return [
    'ssh',
    '-i',
    state.files.privateKey,
    '-o',
    // OpenSSH splits this option's value on spaces (several files): quote a path that has some.
    `UserKnownHostsFile="${state.files.knownHosts}"`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
    '-o',
    'LogLevel=ERROR',
    '-p',
    String(vm.sshPort),
    ...extraOptions,
    `${state.user}@${vm.ip}`,
  ];
}

/** Runs `command` on a VM over the real ssh client as the lab user. Never rejects. */
export function ssh(
  state: LabState,
  vmName: string,
  command: string,
  options: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<RunResult> {
  return run([...sshArgs(state, vmName), command], {
    allowFailure: true,
    timeoutMs: options.timeoutMs ?? 30_000,
    input: options.input,
  });
}

/** True when the process is gone or a zombie. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}
