// The lab's control plane, started inside the lab daemon: Istio's real istiod built from the pinned module,
// with the lab's Kubernetes API, DNS, Pod runner and mesh echo (test/lab/istio/control-plane.ts), plus the
// types and the 15012 block shared by its faults. Owned by lab part 2 (see README.md).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { FaultDefinition, FaultTarget } from './fault-types.js';
import type { KubeApiDouble } from './kube/index.js';
import { startRealIstioControlPlane } from './istio/control-plane.js';
import type { IstiodPorts } from './istio/istiod.js';
import type { LabPodState } from './pods/sandbox.js';

const run = promisify(execFile);

export interface LabVm {
  name: string;
  /** Address on the lab bridge, e.g. 10.233.0.11. */
  ip: string;
  /** Network namespace name, e.g. ivo0vm1. */
  netns: string;
  sshPort: number;
}

export interface ControlPlaneOptions {
  /** The lab's state directory (DIR of `npm run lab -- up --dir DIR`). */
  dir: string;
  labIndex: number;
  /** Bridge address on the host side: the east-west gateway address. */
  gatewayIP: string;
  vms: LabVm[];
  /** Mesh trust domain (default cluster.local). */
  trustDomain?: string;
  /** istiod's secure gRPC port (default 15012; tests on loopback may use 0). */
  istiodPort?: number;
  log?: (line: string) => void;
  /** The namespace Istio is installed into (default istio-system). */
  istioNamespace?: string;
  /**
   * A second istiod of this revision next to the default one (`up --extra-revision`), on its own address
   * with the same plugged-in CA; the east-west address's 15012 then routes by SNI (istiod-sni-router.ts).
   */
  extraRevision?: string;
  /** Every change of the Pod runner's running pods (the daemon keeps them in state.json). */
  onPodsChanged?: (pods: LabPodState[]) => void;
}

export interface ControlPlane {
  /** Path of the kubeconfig written into DIR (absent until the Kubernetes double exists). */
  kubeconfigPath?: string;
  /** Extra `INPUT_*` values the action needs for this lab (written to DIR/action.env). */
  actionInputs: Record<string, string>;
  faults: FaultDefinition[];
  /** The real istiod process. */
  istiod?: RealIstiodInfo;
  /** The second istiod (`extraRevision`): its revision, address and process. */
  extraIstiod?: RealIstiodInfo & { revision: string; address: string };
  /** The lab's Kubernetes API (the daemon serves its request log and user rules). */
  kube?: KubeApiDouble;
  stop(): Promise<void>;
}

export interface RealIstiodInfo {
  readonly pid: number | undefined;
  binary: string;
  logPath: string;
  cacertsDir: string;
  ports: IstiodPorts;
}

export const LAB_GATEWAY_HOSTNAME = 'eastwest.lab.example';

/** The lab's control plane: Istio's real istiod (test/lab/istio/control-plane.ts), the only one there is. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  return startRealIstioControlPlane(options);
}

/**
 * `block-15012`: an iptables DROP in each VM's netns OUTPUT chain to the gateway's istiod port, so connects
 * time out instead of being refused. `unblockAll` removes every rule it added (the control plane's stop).
 */
export function blockIstiodFault(
  options: Pick<ControlPlaneOptions, 'vms' | 'gatewayIP'>,
  port: () => number,
): { fault: FaultDefinition; unblockAll(): Promise<void> } {
  const blocked = new Map<string, number>();
  const rule = (op: '-I' | '-D', vm: LabVm, p: number) =>
    run(
      'ip',
      ['netns', 'exec', vm.netns, 'iptables', '-w', '5', op, 'OUTPUT', '-p', 'tcp', '-d', options.gatewayIP].concat([
        '--dport',
        String(p),
        '-j',
        'DROP',
      ]),
      { timeout: 15_000 },
    );
  const targets = (t: FaultTarget): LabVm[] => {
    if (!t.vm) return options.vms;
    const vm = options.vms.find((v) => v.name === t.vm);
    if (!vm) throw new Error(`no VM named ${t.vm} (have: ${options.vms.map((v) => v.name).join(', ')})`);
    return [vm];
  };
  const unblock = async (vm: LabVm): Promise<void> => {
    const p = blocked.get(vm.name);
    if (p === undefined) return;
    await rule('-D', vm, p).catch(() => undefined);
    blocked.delete(vm.name);
  };
  return {
    fault: {
      name: 'block-15012',
      scope: 'vm',
      description: 'iptables DROP in the VM netns OUTPUT to gateway:15012 (connects time out, not refused)',
      async apply(t) {
        for (const vm of targets(t)) {
          if (blocked.has(vm.name)) continue;
          const p = port();
          await rule('-I', vm, p);
          blocked.set(vm.name, p);
        }
      },
      async heal(t) {
        for (const vm of targets(t)) await unblock(vm);
      },
    },
    async unblockAll() {
      for (const vm of options.vms) await unblock(vm);
    },
  };
}
