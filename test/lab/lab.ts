// `up` and `down` of a lab: network, VM roots and boots, the sidecar package, the files in DIR, and the
// detached daemon (control plane, package server, faults). Used by cli.ts and directly by tests.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleForVm } from './bundle.js';
import { controlRequest } from './control.js';
import { mapLimit, run, sleep } from './exec.js';
import { inventoryYaml, knownHostsLine, writeLabFile } from './files.js';
import { bridgeName, gatewayIP, subnet } from './net/addresses.js';
import { allocateLabIndex, releaseLabIndex } from './net/index-alloc.js';
import { createNetwork, destroyNetwork, forwardGuardRule, planVmNetworks } from './net/network.js';
import { buildSidecarPackage, packageFileName } from './package/build.js';
import { PACKAGE_PORT, packageUrlPath } from './package/server.js';
import {
  isSameProcess,
  processStartTime,
  readState,
  statePath,
  tryReadState,
  writeState,
  type LabState,
} from './state.js';
import { bootServices, killVmProcesses, startAnchor } from './vm/boot.js';
import { destroyPod } from './pods/sandbox.js';
import { istioBuild } from './istio/binaries.js';
import { installCommand, missingRequirements } from '../../scripts/machine/requirements.mjs';
import { buildVmSeed, OVERLAID_DIRS, pickLabUid, systemIdRange } from './vm/root.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DEFAULT_DISK_BYTES = 2 * 1024 * 1024 * 1024;

export interface UpOptions {
  dir: string;
  vms: number;
  sshPort?: number;
  packageSizeMb?: number;
  istioVersion?: string;
  arch?: 'amd64' | 'arm64';
  appPort?: number;
  /** The Node 24 binary the VMs' programs run on (default: this process's); a test moves it to odd paths. */
  nodePath?: string;
  /** Install Istio into this namespace instead of istio-system. */
  istioNamespace?: string;
  /** A second istiod, of this revision (istiod-REV), next to the default one: for revision moves. */
  extraRevision?: string | undefined;
  /**
   * More versions of the sidecar package to serve (built from the same sources with that Version), e.g. to
   * upgrade to; `depends` adds packages the version declares it needs (a VM without them refuses it).
   */
  extraVersions?: Array<{ version: string; depends?: string[] }>;
  /** Parallel VM set-ups (default 8). */
  concurrency?: number;
  log?: (line: string) => void;
}

/** The real istiod's release as x.y.0 (its build says e.g. 1.31-dev-eed52ebb; a package needs x.y.z). */
function realIstioRelease(): string {
  const m = /^(\d+)\.(\d+)/.exec(istioBuild().version);
  if (!m) throw new Error(`cannot read major.minor from the real Istio build's version '${istioBuild().version}'`);
  return `${m[1]}.${m[2]}.0`;
}

function defaultLog(line: string): void {
  process.stderr.write(`[lab] ${line}\n`);
}

/** Refuses to start (before anything is made) on a machine without root or the lab's programs. */
export function assertMachineReady(): void {
  if (process.getuid?.() !== 0) throw new Error('the lab needs root (network and mount namespaces)');
  const missing = missingRequirements();
  if (missing.length > 0) {
    throw new Error(
      `the lab needs ${missing.map((r) => r.program).join(', ')}: run \`npm run setup\` as root (it runs: ${installCommand(missing)})`,
    );
  }
}

function ensureDirAllowed(dir: string): void {
  for (const d of OVERLAID_DIRS) {
    if (dir === `/${d}` || dir.startsWith(`/${d}/`)) {
      throw new Error(
        `--dir ${dir} is inside /${d}, which every lab VM overlays; use a directory under ${'/tmp'} or /work`,
      );
    }
  }
}

export function daemonPidFile(dir: string): string {
  return path.join(dir, 'daemon.pid');
}

function spawnDaemon(state: LabState): number {
  const fd = openSync(state.files.log, 'a');
  const child = spawn(
    state.nodePath,
    ['--import', path.join(HERE, 'register-ts.mjs'), path.join(HERE, 'daemon.ts'), '--dir', state.dir],
    { detached: true, stdio: ['ignore', fd, fd], cwd: path.resolve(HERE, '..', '..') },
  );
  closeSync(fd);
  child.unref();
  if (!child.pid) throw new Error('could not start the lab daemon');
  writeFileSync(daemonPidFile(state.dir), `${child.pid} ${processStartTime(child.pid) ?? 0}\n`);
  return child.pid;
}

async function waitForDaemon(state: LabState, pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (processStartTime(pid) === undefined) {
      throw new Error(`the lab daemon exited during start-up; see ${state.files.log}:\n${tail(state.files.log)}`);
    }
    if (existsSync(state.files.controlSocket)) {
      try {
        const reply = await controlRequest(state.files.controlSocket, { op: 'status' }, 5000);
        if (reply.ok && (reply.result as { phase?: string }).phase === 'ready') return;
        last = reply.ok ? `phase ${(reply.result as { phase?: string }).phase}` : reply.error;
      } catch (e) {
        last = (e as Error).message;
      }
    }
    await sleep(100);
  }
  throw new Error(`the lab daemon was not ready within ${timeoutMs} ms (${last}); see ${state.files.log}`);
}

function tail(file: string, bytes = 3000): string {
  try {
    return readFileSync(file, 'utf8').slice(-bytes);
  } catch {
    return '';
  }
}

export async function labUp(options: UpOptions): Promise<LabState> {
  const log = options.log ?? defaultLog;
  const dir = path.resolve(options.dir);
  ensureDirAllowed(dir);
  assertMachineReady();
  if (!Number.isInteger(options.vms) || options.vms < 1 || options.vms > 200)
    throw new Error(`--vms must be 1..200, got ${options.vms}`);
  mkdirSync(dir, { recursive: true });
  const previous = tryReadState(dir);
  if (previous)
    throw new Error(
      `a lab is already up in ${dir} (lab ${previous.labIndex}); run \`npm run lab -- down --dir ${dir}\` first`,
    );
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const k = allocateLabIndex(dir);
  log(`lab ${k}: setting up ${options.vms} VMs in ${dir}`);
  const sshPort = options.sshPort ?? 22;
  // istiod is the pinned build (e.g. 1.31-dev-eed52ebb): the package is labelled with that minor version,
  // which Istio's skew rule accepts (src/rollout/version-skew.ts).
  const version = options.istioVersion ?? realIstioRelease();
  for (const extra of options.extraVersions ?? []) {
    if (!/^\d+\.\d+\.\d+$/.test(extra.version) || extra.version === version)
      throw new Error(`--extra-versions: '${extra.version}' must be a release like 1.24.1 other than ${version}`);
    for (const dep of extra.depends ?? [])
      if (!/^[a-z0-9][a-z0-9+.-]+$/.test(dep)) throw new Error(`--extra-depends: '${dep}' is not a package name`);
  }
  const arch = options.arch ?? 'amd64';
  const gw = gatewayIP(k);
  const nets = planVmNetworks(k, options.vms);
  const fileName = packageFileName(arch);
  const state: LabState = {
    version: 1,
    dir,
    labIndex: k,
    gatewayIP: gw,
    bridge: bridgeName(k),
    subnet: subnet(k),
    hostIptablesRules: [forwardGuardRule(k)],
    user: 'lab',
    appPort: options.appPort ?? 8080,
    istioVersion: version,
    nodePath: options.nodePath ?? process.execPath,
    istiod: {
      mode: 'real',
      ...(options.istioNamespace ? { istioNamespace: options.istioNamespace } : {}),
      ...(options.extraRevision ? { extraRevision: options.extraRevision } : {}),
    },
    files: {
      inventory: path.join(dir, 'inventory.yaml'),
      privateKey: path.join(dir, 'id_ed25519'),
      knownHosts: path.join(dir, 'known_hosts'),
      actionEnv: path.join(dir, 'action.env'),
      log: path.join(dir, 'lab.log'),
      controlSocket: path.join(dir, 'control.sock'),
    },
    package: {
      path: path.join(dir, 'package', fileName),
      sha256: '',
      sizeBytes: 0,
      version,
      arch,
      url: `http://${gw}:${PACKAGE_PORT}${packageUrlPath(version, fileName)}`,
      urlTemplate: `http://${gw}:${PACKAGE_PORT}/releases/{version}/{format}/istio-sidecar.{format}`,
    },
    vms: nets.map((n) => ({
      name: `vm${n.index}`,
      index: n.index,
      ip: n.ip,
      netns: n.netns,
      hostVeth: n.hostVeth,
      sshPort,
      vmDir: path.join(dir, 'vms', `vm${n.index}`),
      anchorPid: 0,
      anchorStartTime: 0,
      hostKeyFingerprint: '',
      diskBytes: DEFAULT_DISK_BYTES,
    })),
    phase: 'starting',
    actionInputs: {},
    faults: [],
    timings,
  };
  writeState(state);
  writeFileSync(state.files.log, `${new Date().toISOString()} lab ${k} up: ${options.vms} VMs in ${dir}\n`, {
    flag: 'a',
  });
  try {
    const binDir = path.join(dir, 'bin');
    mkdirSync(binDir, { recursive: true });
    const keyTask = (async () => {
      rmSync(state.files.privateKey, { force: true });
      rmSync(`${state.files.privateKey}.pub`, { force: true });
      await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `ivo-lab-${k}`, '-f', state.files.privateKey]);
      chmodSync(state.files.privateKey, 0o600);
    })();
    const bundleTask = Promise.all([
      bundleForVm(path.join(HERE, 'vm', 'systemctl-standin.ts'), path.join(binDir, 'systemctl.mjs')),
      bundleForVm(path.join(HERE, 'vm', 'workload-app.ts'), path.join(binDir, 'workload-app.mjs')),
    ]);
    const packageTask = (async () => {
      const t = Date.now();
      const built = await buildSidecarPackage({
        outDir: path.join(dir, 'package'),
        version,
        arch,
        sizeMb: options.packageSizeMb,
      });
      Object.assign(state.package, {
        path: built.path,
        sha256: built.sha256,
        sizeBytes: built.sizeBytes,
      });
      // Each extra version: the same build with another Version (and its own dependencies), in its own folder.
      const extras: NonNullable<LabState['package']['extra']> = [];
      for (const extra of options.extraVersions ?? []) {
        const other = await buildSidecarPackage({
          outDir: path.join(dir, 'package', extra.version),
          version: extra.version,
          arch,
          sizeMb: options.packageSizeMb,
          ...(extra.depends ? { depends: extra.depends } : {}),
        });
        extras.push({
          version: extra.version,
          path: other.path,
          sha256: other.sha256,
          sizeBytes: other.sizeBytes,
          url: `http://${gw}:${PACKAGE_PORT}${packageUrlPath(extra.version, other.fileName)}`,
          depends: extra.depends ?? [],
        });
      }
      if (extras.length > 0) state.package.extra = extras;
      timings.packageMs = Date.now() - t;
    })();
    const netTask = (async () => {
      const t = Date.now();
      await createNetwork(k, nets);
      timings.networkMs = Date.now() - t;
    })();
    await Promise.all([keyTask, bundleTask, netTask]);
    const authorizedKey = readFileSync(`${state.files.privateKey}.pub`, 'utf8');
    const uid = pickLabUid();
    const tVms = Date.now();
    const hostKeys = await mapLimit(state.vms, options.concurrency ?? 8, async (vm) => {
      mkdirSync(vm.vmDir, { recursive: true });
      const seedDir = path.join(vm.vmDir, 'seed');
      rmSync(seedDir, { recursive: true, force: true });
      const { hostPublicKey } = await buildVmSeed({
        name: vm.name,
        ip: vm.ip,
        gatewayIP: gw,
        sshPort: vm.sshPort,
        user: state.user,
        uid,
        authorizedKey,
        systemctlBundle: path.join(binDir, 'systemctl.mjs'),
        appBundle: path.join(binDir, 'workload-app.mjs'),
        appPort: state.appPort,
        seedDir,
        systemIds: systemIdRange(k, vm.index),
      });
      const fp = await run([
        'ssh-keygen',
        '-lf',
        path.join(seedDir, 'upper', 'etc', 'ssh', 'ssh_host_ed25519_key.pub'),
      ]);
      vm.hostKeyFingerprint = fp.stdout.trim().split(/\s+/)[1] ?? '';
      const anchor = await startAnchor(vm, seedDir, state.nodePath);
      vm.anchorPid = anchor.pid;
      vm.anchorStartTime = anchor.startTime;
      writeState(state);
      await bootServices(state, vm);
      return hostPublicKey;
    });
    timings.vmsMs = Date.now() - tVms;
    await packageTask;
    writeLabFile(
      state.files.knownHosts,
      state.vms.map((vm, i) => knownHostsLine(vm.ip, vm.sshPort, hostKeys[i] as string)).join('\n') + '\n',
    );
    writeLabFile(state.files.inventory, inventoryYaml(state));
    writeState(state);
    const tDaemon = Date.now();
    const pid = spawnDaemon(state);
    await waitForDaemon(state, pid, 90_000);
    timings.daemonMs = Date.now() - tDaemon;
    // The daemon owns state.json from now on (one writer); the last timings are only returned and logged.
    const ready = readState(dir);
    timings.totalMs = Date.now() - t0;
    log(
      `lab ${k} up: ${options.vms} VMs in ${Date.now() - t0} ms (network ${timings.networkMs} ms, VMs ${timings.vmsMs} ms, package ${timings.packageMs} ms, daemon ${timings.daemonMs} ms)`,
    );
    return { ...ready, timings: { ...ready.timings, ...timings } };
  } catch (e) {
    log(`up failed: ${(e as Error).message}`);
    log('cleaning up what was made');
    try {
      await labDown(dir, { log });
    } catch (downError) {
      log(`cleanup after failed up also failed: ${(downError as Error).message}`);
    }
    throw e;
  }
}

export interface DownOptions {
  log?: (line: string) => void;
}

export interface DownReport {
  alreadyDown: boolean;
  killed: number[];
  problems: string[];
}

async function stopDaemon(state: LabState | undefined, dir: string, log: (l: string) => void): Promise<number[]> {
  const killed: number[] = [];
  let pid = state?.daemon?.pid;
  let startTime = state?.daemon?.startTime;
  try {
    const [p, s] = readFileSync(daemonPidFile(dir), 'utf8').trim().split(/\s+/).map(Number);
    if (!pid && p) {
      pid = p;
      startTime = s;
    }
  } catch {
    // no pid file
  }
  const socket = path.join(dir, 'control.sock');
  if (existsSync(socket)) {
    try {
      await controlRequest(socket, { op: 'shutdown' }, 15_000);
    } catch (e) {
      log(`daemon did not answer shutdown (${(e as Error).message}); stopping it by pid`);
    }
  }
  if (!pid || !startTime) return killed;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && isSameProcess(pid, startTime)) await sleep(50);
  if (isSameProcess(pid, startTime)) {
    process.kill(pid, 'SIGTERM');
    const d2 = Date.now() + 5000;
    while (Date.now() < d2 && isSameProcess(pid, startTime)) await sleep(50);
    if (isSameProcess(pid, startTime)) process.kill(pid, 'SIGKILL');
    killed.push(pid);
  }
  // Children the daemon started (its process group, since it runs detached), started after it.
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child) || child === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${child}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pgid = Number(rest[2]);
      const started = Number(rest[19]);
      if (pgid === pid && started >= startTime && child !== pid) {
        process.kill(child, 'SIGKILL');
        killed.push(child);
      }
    } catch {
      // gone
    }
  }
  return killed;
}

/** Removes everything `up` made in and for DIR. Safe to run twice and after the daemon died. */
export async function labDown(dirArg: string, options: DownOptions = {}): Promise<DownReport> {
  const log = options.log ?? defaultLog;
  const dir = path.resolve(dirArg);
  const state = tryReadState(dir);
  if (!state) {
    const killed = existsSync(daemonPidFile(dir)) ? await stopDaemon(undefined, dir, log) : [];
    rmSync(daemonPidFile(dir), { force: true });
    log(`no lab state in ${dir}: nothing (more) to remove`);
    return { alreadyDown: true, killed, problems: [] };
  }
  state.phase = 'stopping';
  const killed = await stopDaemon(state, dir, log);
  const problems: string[] = [];
  // Pods of the Pod runner the daemon did not remove (it died, or was killed): by pid, then netns and veth.
  for (const pod of tryReadState(dir)?.pods ?? state.pods ?? []) {
    const r = await destroyPod(pod);
    killed.push(...r.killed);
    problems.push(...r.problems);
  }
  for (const vm of state.vms) {
    try {
      if (existsSync(`/run/netns/${vm.netns}`)) killed.push(...(await killVmProcesses(vm)));
      else if (vm.anchorPid && isSameProcess(vm.anchorPid, vm.anchorStartTime)) {
        process.kill(vm.anchorPid, 'SIGKILL');
        killed.push(vm.anchorPid);
      }
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  problems.push(
    ...(await destroyNetwork(
      state.labIndex,
      state.vms.map((v) => v.netns),
      state.hostIptablesRules,
    )),
  );
  for (const vm of state.vms) {
    if (existsSync(`/sys/class/net/${vm.hostVeth}`)) {
      const r = await run(['ip', 'link', 'del', vm.hostVeth], { allowFailure: true });
      // The kernel removes a veth with its peer's namespace, asynchronously: gone meanwhile is fine.
      if (r.code !== 0 && existsSync(`/sys/class/net/${vm.hostVeth}`))
        problems.push(`ip link del ${vm.hostVeth}: ${r.stderr.trim()}`);
    }
  }
  releaseLabIndex(state.labIndex, dir);
  for (const name of [
    'vms',
    'bin',
    'package',
    'control.sock',
    'daemon.pid',
    'id_ed25519',
    'id_ed25519.pub',
    'action.env',
    'known_hosts',
    'inventory.yaml',
    'kubeconfig',
    'istiod',
    'pods',
  ]) {
    rmSync(path.join(dir, name), { recursive: true, force: true });
  }
  if (problems.length === 0) rmSync(statePath(dir), { force: true });
  else writeState(state);
  writeFileSync(
    state.files.log,
    `${new Date().toISOString()} lab ${state.labIndex} down (${killed.length} processes ended)${problems.length ? `; problems: ${problems.join('; ')}` : ''}\n`,
    { flag: 'a' },
  );
  log(
    `lab ${state.labIndex} down: ${killed.length} processes ended${problems.length ? `, problems: ${problems.join('; ')}` : ''}`,
  );
  return { alreadyDown: false, killed, problems };
}
