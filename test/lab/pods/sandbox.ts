// One running Pod of the lab's Pod runner (what a kubelet and its container runtime do for a Pod, with the
// host's programs as "images"): its own network namespace on the lab bridge with the pod IP, and an anchor
// process (`sleep infinity`) holding the pod's own mount + UTS namespaces, in which
// - /etc, /var and /usr are overlays of the host's (upper layers on a tmpfs that dies with the pod), /run and
//   /tmp are fresh tmpfs mounts;
// - every volumeMount of every container is a bind mount of the volume's host directory (emptyDir,
//   projected ServiceAccount token / ConfigMap / downwardAPI, configMap) at its mountPath;
// - the container image `…/proxyv2:…` is Istio's proxy image: its entrypoint /usr/local/bin/pilot-agent is
//   the real pilot-agent built from the pinned module and /usr/local/bin/envoy the lab's Envoy stand-in,
//   /var/lib/istio/envoy/envoy_bootstrap_tmpl.json Istio's bootstrap template (the proxyv2 image's layout,
//   tools/packaging/common in the module); any other container must name its command (host programs).
// Processes enter the pod with nsenter and drop to the container's user with setpriv. Everything is
// registered (netns, veth, anchor pid) in the lab state before it is made, so `lab down` removes it by pid
// and name-of-what-it-made even when the daemon died.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run, sleep } from '../exec.js';
import { bridgeName, gatewayIP } from '../net/addresses.js';
import { processStartTime, isSameProcess } from '../state.js';

export interface LabPodState {
  namespace: string;
  name: string;
  /** Slot in the lab's pod address range (net/addresses.ts). */
  slot: number;
  netns: string;
  hostVeth: string;
  ip: string;
  /** Host directory of the pod (volumes, boot script, container logs). */
  dir: string;
  anchorPid?: number;
  anchorStartTime?: number;
}

const READY_MARK = 'ivo-lab-pod-ready';

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Mount points a pod may use: inside its own overlays and tmpfs mounts, never on the host's trees. */
const PRIVATE_TREES = ['/etc/', '/var/', '/usr/', '/run/'];

export function privateMountPath(p: string): string {
  const resolved = p.replace(/^\/var\/run\//, '/run/');
  if (!path.isAbsolute(resolved) || path.normalize(resolved) !== resolved.replace(/\/$/, ''))
    throw new Error(`mountPath ${JSON.stringify(p)} is not a clean absolute path`);
  if (!PRIVATE_TREES.some((t) => `${resolved}/`.startsWith(t)))
    throw new Error(`mountPath ${p} is outside the lab pod's private trees (${PRIVATE_TREES.join(' ')})`);
  return resolved;
}

export interface SandboxFiles {
  /** Host files bind-mounted read-only at a path of the pod (the proxy image's programs). */
  binds: Array<{ from: string; to: string }>;
  /** Volume host directory → mountPath (already checked by privateMountPath). */
  mounts: Array<{ from: string; to: string; readOnly: boolean }>;
  /** /etc/hosts of the pod. */
  hosts: string;
  hostname: string;
}

export function sandboxScript(diskDir: string, files: SandboxFiles): string {
  const lines = [
    '#!/bin/sh',
    'set -eu',
    `DISK=${shq(diskDir)}`,
    'mount -t tmpfs -o size=256m,mode=0755 ivo-pod-disk "$DISK"',
    ...['etc', 'var', 'usr'].flatMap((d) => [
      `mkdir -p "$DISK/upper/${d}" "$DISK/work/${d}"`,
      `mount -t overlay ivo-pod-${d} -o "lowerdir=/${d},upperdir=$DISK/upper/${d},workdir=$DISK/work/${d}" /${d}`,
    ]),
    'mount -t tmpfs -o size=64m,mode=0755,nosuid,nodev ivo-pod-run /run',
    `printf '%s' ${shq(files.hosts)} > /etc/hosts`,
    ': > /etc/resolv.conf',
    `hostname ${shq(files.hostname)}`,
    ...files.binds.flatMap((b) => [
      `mkdir -p ${shq(path.dirname(b.to))}`,
      `: > ${shq(b.to)}`,
      `mount --bind ${shq(b.from)} ${shq(b.to)}`,
      `mount -o remount,bind,ro ${shq(b.to)}`,
    ]),
    ...files.mounts.flatMap((m) => [
      `mkdir -p ${shq(m.to)}`,
      `mount --bind ${shq(m.from)} ${shq(m.to)}`,
      ...(m.readOnly ? [`mount -o remount,bind,ro ${shq(m.to)}`] : []),
    ]),
    // Last: the lab's DIR (and so every source above) may be under the host's /tmp.
    'mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev ivo-pod-tmp /tmp',
    `echo ${READY_MARK}`,
    'exec sleep infinity',
    '',
  ];
  return lines.join('\n');
}

/** Pids of every process in a network namespace (`ip netns pids`). */
async function netnsPids(netns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', netns], { allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/**
 * Ends every process of a pod (by pid: those in its netns, and its anchor when it is still the same
 * process), deletes its netns and host veth and its host directory. Tolerates "already gone"; returns
 * the pids it ended and what it could not remove.
 */
export async function destroyPod(p: LabPodState): Promise<{ killed: number[]; problems: string[] }> {
  const killed: number[] = [];
  const problems: string[] = [];
  if (p.anchorPid && p.anchorStartTime && isSameProcess(p.anchorPid, p.anchorStartTime)) {
    // The anchor first: its mount namespace goes with the last process in it.
    try {
      process.kill(p.anchorPid, 'SIGKILL');
      killed.push(p.anchorPid);
    } catch {
      /* gone */
    }
  }
  for (let round = 0; round < 50; round++) {
    const pids = (await netnsPids(p.netns)).filter((x) => x !== process.pid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        /* gone */
      }
    }
    await sleep(20);
  }
  const left = await netnsPids(p.netns);
  if (left.length) problems.push(`pod ${p.namespace}/${p.name}: processes ${left.join(', ')} survive SIGKILL`);
  if (await exists(`/run/netns/${p.netns}`)) {
    const r = await run(['ip', 'netns', 'del', p.netns], { allowFailure: true });
    if (r.code !== 0) problems.push(`ip netns del ${p.netns}: ${r.stderr.trim()}`);
  }
  if (await exists(`/sys/class/net/${p.hostVeth}`)) {
    const r = await run(['ip', 'link', 'del', p.hostVeth], { allowFailure: true });
    if (r.code !== 0 && (await exists(`/sys/class/net/${p.hostVeth}`)))
      problems.push(`ip link del ${p.hostVeth}: ${r.stderr.trim()}`);
  }
  try {
    // The tmpfs "disk" lived in the pod's own mount namespace: on the host the directory is plain.
    rmSync(p.dir, { recursive: true, force: true });
  } catch (e) {
    problems.push(`rm ${p.dir}: ${(e as Error).message}`);
  }
  return { killed, problems };
}

async function exists(p: string): Promise<boolean> {
  return existsSync(p);
}

/** Network of a pod: netns, veth (eth0 inside) on the lab bridge, the pod IP, default route via the gateway. */
export async function createPodNetwork(labIndex: number, p: LabPodState): Promise<void> {
  await run(['ip', 'netns', 'add', p.netns]);
  await run(['ip', '-batch', '-'], {
    input:
      [
        `link add ${p.hostVeth} type veth peer name eth0 netns ${p.netns}`,
        `link set ${p.hostVeth} master ${bridgeName(labIndex)}`,
        `link set ${p.hostVeth} up`,
      ].join('\n') + '\n',
  });
  await run(['ip', '-n', p.netns, '-batch', '-'], {
    input:
      [
        'link set lo up',
        `addr add ${p.ip}/24 dev eth0`,
        'link set eth0 up',
        `route add default via ${gatewayIP(labIndex)}`,
      ].join('\n') + '\n',
  });
}

/** Starts the pod's anchor (mounts as in sandboxScript); resolves once the mounts are in place. */
export async function startPodAnchor(p: LabPodState, files: SandboxFiles): Promise<{ pid: number; startTime: number }> {
  const diskDir = path.join(p.dir, 'disk');
  mkdirSync(diskDir, { recursive: true });
  const script = path.join(p.dir, 'pod.sh');
  writeFileSync(script, sandboxScript(diskDir, files), { mode: 0o755 });
  const logFile = path.join(p.dir, 'anchor.log');
  const fd = openSync(logFile, 'w');
  const child = spawn(
    'ip',
    ['netns', 'exec', p.netns, 'unshare', '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', script],
    { detached: true, stdio: ['ignore', fd, fd], cwd: '/' },
  );
  closeSync(fd);
  child.unref();
  const pid = child.pid;
  if (!pid) throw new Error(`pod ${p.namespace}/${p.name}: could not start its anchor`);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (readFileSync(logFile, 'utf8').includes(READY_MARK)) {
      const startTime = processStartTime(pid);
      if (startTime !== undefined) return { pid, startTime };
      break;
    }
    if (child.exitCode !== null || processStartTime(pid) === undefined) break;
    await sleep(20);
  }
  throw new Error(
    `pod ${p.namespace}/${p.name}: sandbox failed or timed out (20 s): ${readFileSync(logFile, 'utf8').slice(-1500)}`,
  );
}

export interface ContainerProcessOptions {
  uid: number;
  gid: number;
  env: Record<string, string>;
  cwd: string;
}

/** Starts a process in the pod (its netns, mount and UTS namespaces) as uid:gid with exactly `env`. */
export function spawnInPod(p: LabPodState, argv: string[], o: ContainerProcessOptions): ChildProcess {
  if (!p.anchorPid) throw new Error(`pod ${p.namespace}/${p.name} has no sandbox`);
  const full = [
    'nsenter',
    `--net=/run/netns/${p.netns}`,
    `--mount=/proc/${p.anchorPid}/ns/mnt`,
    `--uts=/proc/${p.anchorPid}/ns/uts`,
    // No --wd: nsenter resolves it before entering the mount namespace (the host's path). setns(2) into a mount
    // namespace leaves the process at that namespace's root; another directory is entered by a shell.
    '--',
    'setpriv',
    `--reuid=${o.uid}`,
    `--regid=${o.gid}`,
    '--clear-groups',
    '--',
    ...(o.cwd === '/' ? argv : ['/bin/sh', '-c', 'cd "$0" && exec "$@"', o.cwd, ...argv]),
  ];
  return spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: o.env, cwd: '/' });
}
