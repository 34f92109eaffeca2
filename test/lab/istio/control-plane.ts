// The lab's control plane with Istio's real istiod (`up --istiod real`): the Kubernetes API double seeded
// with what `istioctl manifest generate` renders, the lab DNS, and `pilot-discovery discovery` as a child
// process of the lab daemon (tracked by pid, stopped on `down`). The mesh side (echo service, verification
// Job runner) and the VM sidecar are not part of this mode yet: they still speak the doubles' protocol.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { LAB_GATEWAY_HOSTNAME, type ControlPlane, type ControlPlaneOptions } from '../control-plane.js';
import type { FaultDefinition } from '../fault-types.js';
import { startKubeApi } from '../kube/index.js';
import { startLabDns } from '../dns/index.js';
import { istioBuild } from './binaries.js';
import { istioInstallObjects, istiodDeploymentArgs, istiodProcessEnv } from './install.js';
import { RealIstiod } from './istiod.js';

export async function startRealIstioControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? (() => undefined);
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const build = istioBuild();
  const install = istioInstallObjects({ trustDomain });
  const kubeconfigPath = path.join(options.dir, 'kubeconfig');
  // No rootCertPem: istiod itself publishes istio-ca-root-cert in every namespace (its namespace controller).
  const kube = await startKubeApi({
    dir: options.dir,
    seed: { gatewayIP: options.gatewayIP, trustDomain, istioVersion: build.version, istioInstall: install },
  });
  if (kube.kubeconfigPath !== kubeconfigPath)
    throw new Error(`kubeconfig at ${kube.kubeconfigPath}, not ${kubeconfigPath}`);
  const dns = await startLabDns({ records: { [LAB_GATEWAY_HOSTNAME]: [options.gatewayIP] } });
  const workDir = path.join(options.dir, 'istiod');
  mkdirSync(workDir, { recursive: true });
  const istiod = new RealIstiod({
    kubeconfigPath,
    workDir,
    host: options.gatewayIP,
    ...(options.istiodPort !== undefined ? { ports: { secureGrpc: options.istiodPort } } : {}),
    trustDomain,
    deploymentArgs: istiodDeploymentArgs(install),
    env: istiodProcessEnv(install, kubeconfigPath),
    log: (l) => log(`istiod: ${l}`),
  });
  try {
    await istiod.start();
  } catch (e) {
    await Promise.allSettled([dns.stop(), kube.stop()]);
    throw e;
  }
  log(`istiod ready (pid ${istiod.pid}, ${build.module}@${build.moduleVersion}, ${istiod.readyUrl()})`);

  const faults: FaultDefinition[] = [
    ...kube.faults,
    {
      name: 'istiod-down',
      scope: 'lab',
      description: `the real istiod (pilot-discovery) on ${options.gatewayIP}:15012 is stopped (SIGTERM by pid); heal starts it again`,
      apply: async () => istiod.stop(),
      heal: async () => istiod.start(),
    },
  ];
  return {
    kubeconfigPath,
    actionInputs: { 'INPUT_DNS-SERVERS': dns.address },
    faults,
    istiod: {
      get pid() {
        return istiod.pid;
      },
      binary: istiod.binary,
      logPath: istiod.logPath,
      cacertsDir: istiod.cacertsDir,
      ports: istiod.ports,
    },
    kube,
    async stop() {
      await istiod.stop();
      await Promise.allSettled([dns.stop(), kube.stop()]);
    },
  };
}
