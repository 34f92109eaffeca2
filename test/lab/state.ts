// The lab's state file (DIR/state.json): everything `down`, `status`, faults and tests need to find
// what `up` made. Written atomically; read by other lab parts and by tests.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LabPodState } from './pods/sandbox.js';

export interface LabVmState {
  /** VM name, e.g. vm1 (also its hostname). */
  name: string;
  /** 1-based VM number inside the lab. */
  index: number;
  /** Address on the lab bridge, e.g. 10.233.0.11. */
  ip: string;
  /** Network namespace, e.g. ivo0vm1 (`/run/netns/<netns>`). */
  netns: string;
  /** Host side of the VM's veth pair. */
  hostVeth: string;
  sshPort: number;
  /** Host directory with the VM's seed files, boot script and logs. */
  vmDir: string;
  /**
   * The VM's anchor process (`sleep infinity` holding the VM's mount + UTS namespaces). Its
   * `/proc/<pid>/ns/{mnt,uts}` are the VM's namespaces and `/proc/<pid>/root/...` is the VM's view of files.
   */
  anchorPid: number;
  /** Start time (clock ticks since boot, /proc/<pid>/stat field 22) to guard against pid reuse. */
  anchorStartTime: number;
  /** `ssh-keygen -lf` fingerprint of the host key that is in known_hosts. */
  hostKeyFingerprint: string;
  /** VM disk size in bytes (tmpfs under the VM's /etc /var /usr /home /opt /root /tmp overlays). */
  diskBytes: number;
}

export interface LabPackageState {
  /** Host path of the built .deb. */
  path: string;
  sha256: string;
  sizeBytes: number;
  version: string;
  arch: string;
  /** Concrete URL of this build, reachable from the VMs. */
  url: string;
  /** Istio-style template with literal {version}/{format}/{arch} placeholders. */
  urlTemplate: string;
  /** More versions of the same package served next to it (`up --extra-versions`), e.g. for an upgrade. */
  extra?: LabExtraPackage[];
}

/** Another version of the lab's sidecar package, served at its own release URL. */
export interface LabExtraPackage {
  version: string;
  path: string;
  sha256: string;
  sizeBytes: number;
  url: string;
  /** Packages this version depends on beyond the base ones (`--extra-depends`). */
  depends: string[];
}

export interface ActiveFault {
  name: string;
  vm?: string;
  since: string;
}

export interface LabState {
  version: 1;
  dir: string;
  labIndex: number;
  /** Bridge address: the runner side of the lab and the east-west gateway address. */
  gatewayIP: string;
  bridge: string;
  /** e.g. 10.233.0.0/24 */
  subnet: string;
  /** Host iptables rule specs (`-D` form without the `-D`) that `down` removes. */
  hostIptablesRules: string[][];
  user: string;
  appPort: number;
  istioVersion: string;
  /** Which istiod the control plane runs; for the real one, its process (a child of the daemon). */
  istiod?: {
    /** Always `real`: Istio's istiod built from the pinned module (the double is retired, ADR 0007). */
    mode: 'real';
    pid?: number;
    binary?: string;
    logPath?: string;
    /** The namespace Istio is installed into (`up --istio-namespace`, ); default istio-system. */
    istioNamespace?: string;
    /** A second istiod's revision (`up --extra-revision`): istiod-REV runs next to the default istiod. */
    extraRevision?: string;
    /** The second istiod's process, when there is one. */
    extra?: { revision: string; pid?: number; logPath: string; address: string };
  };
  /** Absolute path of the Node 24 binary that VM-side scripts (systemctl stand-in, workload app) run on. */
  nodePath: string;
  files: {
    inventory: string;
    privateKey: string;
    knownHosts: string;
    actionEnv: string;
    log: string;
    controlSocket: string;
    kubeconfig?: string;
  };
  package: LabPackageState;
  vms: LabVmState[];
  /**
   * Pods the Pod runner (pods/runner.ts) has running: registered before their netns is made,
   * removed once it is gone; `down` removes what is left (by pid, then the netns and veth).
   */
  pods?: LabPodState[];
  daemon?: { pid: number; startTime: number };
  phase: 'starting' | 'ready' | 'stopping';
  /** Values the daemon wrote into action.env (control plane included). */
  actionInputs: Record<string, string>;
  faults: ActiveFault[];
  timings: Record<string, number>;
}

export function statePath(dir: string): string {
  return path.join(dir, 'state.json');
}

export function readState(dir: string): LabState {
  return JSON.parse(readFileSync(statePath(dir), 'utf8')) as LabState;
}

export function tryReadState(dir: string): LabState | undefined {
  try {
    return readState(dir);
  } catch {
    return undefined;
  }
}

export function writeState(state: LabState): void {
  const file = statePath(state.dir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, file);
}

export function findVm(state: LabState, name: string): LabVmState {
  const vm = state.vms.find((v) => v.name === name);
  if (!vm)
    throw new Error(`no VM named ${name} in lab ${state.dir} (have: ${state.vms.map((v) => v.name).join(', ')})`);
  return vm;
}

/** Start time of a process (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 is rest[19].
    return Number(rest[19]);
  } catch {
    return undefined;
  }
}

/** True when `pid` is still the process that had `startTime`. */
export function isSameProcess(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime;
}
