// The lab's control plane, started inside the lab daemon: Kubernetes API double, lab DNS,
// istiod/CA double, mesh service and verification-Job runner. Owned by lab part 2 (see README.md).
import type { FaultDefinition } from './fault-types.js';

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
}

export interface ControlPlane {
  /** Path of the kubeconfig written into DIR (absent until the Kubernetes double exists). */
  kubeconfigPath?: string;
  /** Extra `INPUT_*` values the action needs for this lab (written to DIR/action.env). */
  actionInputs: Record<string, string>;
  faults: FaultDefinition[];
  stop(): Promise<void>;
}

export async function startControlPlane(_options: ControlPlaneOptions): Promise<ControlPlane> {
  // Lab part 2 replaces this body with the real doubles.
  return { actionInputs: {}, faults: [], stop: async () => {} };
}
