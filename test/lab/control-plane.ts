// The lab's control plane, started inside the lab daemon: Kubernetes API double, lab DNS,
// istiod/CA double, mesh service and verification-Job runner. Owned by lab part 2 (see README.md).
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { FaultDefinition, FaultTarget } from './fault-types.js';
import { startKubeApi, type KubeApiDouble } from './kube/index.js';
import { startLabDns, type LabDns } from './dns/index.js';
import { MeshCa } from './istiod/ca.js';
import { IstiodServer } from './istiod/server.js';
import { istiodKubeOverRest } from './istiod/kube-access.js';
import { kubeRestFromKubeconfig } from './istiod/kube-rest.js';
import { EchoService } from './mesh/echo.js';
import { startJobRunner } from './mesh/job-runner.js';
import { PATHS } from './sidecar/config.js';
import { tryReadState } from './state.js';
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
  /** istiod port (default 15012; tests on loopback may use 0). */
  istiodPort?: number;
  /** Port of the echo mesh service endpoint on the gateway address (default 8080). */
  echoPort?: number;
  /** VM root for VM-file faults: default `/proc/<anchorPid>/root` from DIR/state.json. */
  vmRoot?: (vm: string) => string;
  log?: (line: string) => void;
  /**
   * `double` (default): the istiod/CA double of istiod/. `real`: Istio's own istiod built from the pinned
   * module (test/lab/istio/control-plane.ts) — opt-in while the VM sidecar and mesh side are doubles.
   */
  istiod?: 'double' | 'real';
  /** With `istiod: 'real'`: the namespace Istio is installed into (default istio-system). */
  istioNamespace?: string;
  /** `istiod: 'real'`: every change of the Pod runner's running pods (the daemon keeps them in state.json). */
  onPodsChanged?: (pods: LabPodState[]) => void;
}

export interface ControlPlaneParts {
  kube: KubeApiDouble;
  dns: LabDns;
  ca: MeshCa;
  istiod: IstiodServer;
  echo: EchoService;
}

export interface ControlPlane {
  /** Path of the kubeconfig written into DIR (absent until the Kubernetes double exists). */
  kubeconfigPath?: string;
  /** Extra `INPUT_*` values the action needs for this lab (written to DIR/action.env). */
  actionInputs: Record<string, string>;
  faults: FaultDefinition[];
  /** The running doubles (for lab tests). */
  parts?: ControlPlaneParts;
  /** The real istiod process (`istiod: 'real'`). */
  istiod?: RealIstiodInfo;
  /** The Kubernetes API double (both modes). */
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
export const ECHO_URL = 'http://echo.mesh-test.svc.cluster.local:8080/';

/** A VIP for a mesh service: inside the lab subnet (.250+), never answered on the wire. */
export function meshVip(gatewayIP: string, n = 0): string {
  const parts = gatewayIP.split('.');
  if (parts.length !== 4) return gatewayIP;
  return [...parts.slice(0, 3), String(250 + n)].join('.');
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  if (options.istiod === 'real') return startRealIstioControlPlane(options);
  const log = options.log ?? (() => undefined);
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const ca = new MeshCa({ trustDomain });
  const kube = await startKubeApi({
    dir: options.dir,
    seed: { gatewayIP: options.gatewayIP, rootCertPem: ca.rootCertPem, trustDomain },
  });
  const dns = await startLabDns({ records: { [LAB_GATEWAY_HOSTNAME]: [options.gatewayIP] } });
  const echo = new EchoService({
    ca,
    host: options.gatewayIP,
    port: options.echoPort ?? 8080,
    vip: meshVip(options.gatewayIP),
  });
  const istiod = new IstiodServer({
    host: options.gatewayIP,
    port: options.istiodPort ?? 15012,
    ca,
    kube: istiodKubeOverRest(kubeRestFromKubeconfig(kube.kubeconfigPath)),
    services: () => (echo.boundPort ? [echo.registryEntry] : []),
    log: (l) => log(`istiod: ${l}`),
  });
  const stopJobs = startJobRunner(kube, { ca, services: () => (echo.boundPort ? [echo.registryEntry] : []) });
  try {
    await echo.start();
    await istiod.start();
  } catch (e) {
    stopJobs();
    await Promise.allSettled([echo.stop(), istiod.stop(), dns.stop(), kube.stop()]);
    throw e;
  }

  const vmRoot =
    options.vmRoot ??
    ((vm: string) => {
      const st = tryReadState(options.dir)?.vms.find((v) => v.name === vm);
      if (!st) throw new Error(`no VM ${vm} in ${options.dir}/state.json`);
      return `/proc/${st.anchorPid}/root`;
    });
  const targets = (t: FaultTarget): LabVm[] => {
    if (!t.vm) return options.vms;
    const vm = options.vms.find((v) => v.name === t.vm);
    if (!vm) throw new Error(`no VM named ${t.vm} (have: ${options.vms.map((v) => v.name).join(', ')})`);
    return [vm];
  };
  const vmFlag = (name: string, flag: string, description: string): FaultDefinition => ({
    name,
    scope: 'vm',
    description,
    async apply(t) {
      for (const vm of targets(t)) {
        const p = vmRoot(vm.name) + flag;
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, `${name}\n`);
      }
    },
    async heal(t) {
      for (const vm of targets(t)) rmSync(vmRoot(vm.name) + flag, { force: true });
    },
  });
  const block15012 = blockIstiodFault(options, () => istiod.boundPort);
  let unrelatedRoot: string | undefined;

  const faults: FaultDefinition[] = [
    ...kube.faults,
    {
      name: 'istiod-down',
      scope: 'lab',
      description: `istiod (CA + xDS) on ${options.gatewayIP}:15012 stops: connections are refused`,
      apply: async () => istiod.stop(),
      heal: async () => {
        await istiod.start();
      },
    },
    block15012.fault,
    {
      name: 'wrong-root-cert',
      scope: 'lab',
      description: "istio-ca-root-cert configmaps carry a root that does not sign istiod's certificate (CA re-keyed)",
      apply: async () => {
        unrelatedRoot ??= MeshCa.makeUnrelatedRootPem(trustDomain);
        kube.setRootCert(unrelatedRoot);
      },
      heal: async () => kube.setRootCert(ca.rootCertPem),
    },
    {
      name: 'wrong-trust-domain',
      scope: 'lab',
      description: 'the CA issues certificates for trust domain corp.example (mesh config says cluster.local)',
      apply: async () => {
        ca.trustDomain = 'corp.example';
      },
      heal: async () => {
        ca.trustDomain = trustDomain;
      },
    },
    {
      name: 'token-rejected',
      scope: 'lab',
      description: 'istiod\'s token review says "not authenticated" for every bootstrap token',
      apply: async () => {
        istiod.tokenRejected = true;
      },
      heal: async () => {
        istiod.tokenRejected = false;
      },
    },
    vmFlag(
      'sidecar-crash-loop',
      PATHS.crashLoopFlag,
      'the sidecar simulator exits right after it starts (the unit restarts it, it exits again)',
    ),
    {
      name: 'mesh-service-down',
      scope: 'lab',
      description: 'the mesh service echo.mesh-test stops (its endpoint refuses connections)',
      apply: async () => echo.stop(),
      heal: async () => echo.start(),
    },
    vmFlag(
      'dns-capture-broken',
      PATHS.dnsBrokenFlag,
      "the sidecar's DNS proxy stops answering mesh names (forwards them upstream)",
    ),
    vmFlag(
      'plaintext-accepted',
      PATHS.plaintextFlag,
      'the VM sidecar accepts plaintext on its inbound listener even under STRICT',
    ),
  ];

  return {
    kubeconfigPath: kube.kubeconfigPath,
    actionInputs: {
      'INPUT_DNS-SERVERS': dns.address,
      'INPUT_VERIFY-URL': ECHO_URL,
    },
    faults,
    parts: { kube, dns, ca, istiod, echo },
    kube,
    async stop() {
      stopJobs();
      await block15012.unblockAll();
      await Promise.allSettled([istiod.stop(), echo.stop()]);
      await Promise.allSettled([dns.stop(), kube.stop()]);
    },
  };
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
