// The lab's control plane with Istio's real istiod: the Kubernetes API double seeded
// with what `istioctl manifest generate` renders, the lab DNS, and `pilot-discovery discovery` as a child
// process of the lab daemon (tracked by pid, stopped on `down`), with the Pod object a cluster would show for
// it (Ready while the process serves), so istiod's Service has an endpoint.
import { cpSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  blockIstiodFault,
  LAB_GATEWAY_HOSTNAME,
  type ControlPlane,
  type ControlPlaneOptions,
} from '../control-plane.js';
import type { FaultDefinition } from '../fault-types.js';
import { startKubeApi } from '../kube/index.js';
import { startLabDns } from '../dns/index.js';
import { istioBuild } from './binaries.js';
import { istioInstallObjects, istiodDeploymentArgs, istiodNamespaceOf, istiodProcessEnv } from './install.js';
import { RealIstiod, ROOT_ROTATION_STEPS, rotateRoot, writePluggedInCa, type RootRotationStep } from './istiod.js';
import { PodRunner } from '../pods/runner.js';
import { ECHO_NAMESPACE, startRealEcho } from '../mesh/real-echo.js';
import { realSidecarSources } from '../package/real-sidecar.js';
import { checkFaults } from './faults-checks.js';
import { istiodPodObject, podRunningStatus } from './istiod-pod.js';
import { DEFAULT_ISTIOD_BEHIND_ROUTER_PORT, startExtraRevision, type ExtraRevision } from './extra-revision.js';

const rootRotationStepText: Record<RootRotationStep, string> = {
  'add-root': 'a second root is trusted next to the first; istiod still signs with the first',
  'new-intermediate': "istiod signs with the new root's intermediate; both roots trusted",
  'drop-old-root': 'only the new root is trusted',
};

export async function startRealIstioControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? (() => undefined);
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const build = istioBuild();
  const install = istioInstallObjects({
    trustDomain,
    ...(options.istioNamespace ? { istioNamespace: options.istioNamespace } : {}),
  });
  const istioNamespace = istiodNamespaceOf(install);
  const kubeconfigPath = path.join(options.dir, 'kubeconfig');
  // No rootCertPem: istiod itself publishes istio-ca-root-cert in every namespace (its namespace controller).
  const kube = await startKubeApi({
    dir: options.dir,
    seed: { gatewayIP: options.gatewayIP, trustDomain, istioVersion: build.version, istioInstall: install },
  });
  if (kube.kubeconfigPath !== kubeconfigPath)
    throw new Error(`kubeconfig at ${kube.kubeconfigPath}, not ${kubeconfigPath}`);
  const dns = await startLabDns({ records: { [LAB_GATEWAY_HOSTNAME]: [options.gatewayIP] } });
  const istiodDeploymentNow = () => kube.store.mustGet('deployments.apps', istioNamespace, 'istiod');
  const workDir = path.join(options.dir, 'istiod');
  mkdirSync(workDir, { recursive: true });
  const istiod = new RealIstiod({
    kubeconfigPath,
    workDir,
    host: options.gatewayIP,
    // With a second revision the east-west address's 15012 is the SNI router's (extra-revision.ts).
    ...(options.extraRevision
      ? { ports: { secureGrpc: DEFAULT_ISTIOD_BEHIND_ROUTER_PORT } }
      : options.istiodPort !== undefined
        ? { ports: { secureGrpc: options.istiodPort } }
        : {}),
    trustDomain,
    // What the Deployment in the cluster says now (the action reads the same object).
    deploymentArgs: () => istiodDeploymentArgs([istiodDeploymentNow()]),
    env: () => istiodProcessEnv([istiodDeploymentNow()], kubeconfigPath),
    log: (l) => log(`istiod: ${l}`),
  });
  try {
    await istiod.start();
  } catch (e) {
    await Promise.allSettled([dns.stop(), kube.stop()]);
    throw e;
  }
  log(`istiod ready (pid ${istiod.pid}, ${build.module}@${build.moduleVersion}, ${istiod.readyUrl()})`);
  // The Pod a cluster would run for the Deployment: istiod's own Service gets its endpoint from it
  // (EndpointSlice controller), so istiod's DNS name table and a sidecar's routes know istiod.<its namespace>.svc.
  const istiodPod = istiodPodObject(istiodDeploymentNow());
  kube.store.create('pods', istiodPod, { manager: 'kubelet' });
  const setIstiodPodReady = (ready: boolean) =>
    kube.store.patchStatus(
      'pods',
      istioNamespace,
      istiodPod.metadata.name,
      podRunningStatus(options.gatewayIP, ready),
      'kubelet',
    );
  setIstiodPodReady(true);

  let extra: ExtraRevision | undefined;
  if (options.extraRevision) {
    try {
      extra = await startExtraRevision({
        revision: options.extraRevision,
        kube,
        kubeconfigPath,
        dir: options.dir,
        labIndex: options.labIndex,
        gatewayIP: options.gatewayIP,
        routerPort: options.istiodPort ?? 15012,
        istioNamespace,
        trustDomain,
        defaultIstiod: istiod,
        log,
      });
    } catch (e) {
      await istiod.stop();
      await Promise.allSettled([dns.stop(), kube.stop()]);
      throw e;
    }
  }

  // The Pod runner (kubelet + Job controller + admission): the verification Jobs' pods, injected by this istiod.
  const sidecar = realSidecarSources();
  const pods = new PodRunner({
    api: kube,
    labIndex: options.labIndex,
    dir: options.dir,
    gatewayIP: options.gatewayIP,
    proxyImage: {
      pilotAgent: sidecar.pilotAgent,
      envoy: sidecar.envoy,
      bootstrapTemplate: path.join(sidecar.packagingDir, 'envoy_bootstrap.json'),
    },
    // A cluster's DNS + kube-proxy would bring istiod.<namespace>.svc to istiod; in the lab it listens on the
    // east-west address (the same line `render` writes for VMs).
    hosts: [`${options.gatewayIP} istiod.${istioNamespace}.svc`, ...(extra ? [`${extra.address} ${extra.host}`] : [])],
    serviceAddress: (ns, name) =>
      ns !== istioNamespace
        ? undefined
        : name === 'istiod'
          ? options.gatewayIP
          : extra && name === `istiod-${extra.revision}`
            ? extra.address
            : undefined,
    ...(options.onPodsChanged ? { onPodsChanged: options.onPodsChanged } : {}),
    nodePath: process.execPath,
    log,
  });
  pods.startJobController();
  // The mesh service echo.mesh-test as a mesh workload (Deployment + Service, its pod injected and run here).
  try {
    const echo = await startRealEcho(kube, pods);
    log(`echo.${ECHO_NAMESPACE}: pod ${echo.state.name} at ${echo.state.ip}`);
  } catch (e) {
    await pods.stop();
    await extra?.stop();
    await istiod.stop();
    await Promise.allSettled([dns.stop(), kube.stop()]);
    throw e;
  }

  /** Changes the Deployment's env (as `kubectl set env` would) and rolls istiod out with it. */
  const rollOut = async (change: () => void): Promise<void> => {
    change();
    await istiod.stop();
    await istiod.start();
  };
  const block15012 = blockIstiodFault(options, () => istiod.ports.secureGrpc);
  const originalCa = `${istiod.cacertsDir}.original`;
  const beforeRotation = `${istiod.cacertsDir}.before-rotation`;
  const faults: FaultDefinition[] = [
    ...checkFaults({ options, kube, istioNamespace, rollOut }),
    block15012.fault,
    // The double's own autoregistration-off only edits the Deployment; here the process follows it.
    ...kube.faults.filter((f) => f.name !== 'autoregistration-off'),
    ...(extra?.faults ?? []),
    {
      name: 'wrong-root-cert',
      scope: 'lab',
      description:
        'the plugged-in CA is re-keyed (new root in etc/cacerts) and istiod restarted: it publishes the new root; VMs keep the old one',
      apply: async () => {
        if (existsSync(originalCa)) return;
        await istiod.stop();
        renameSync(istiod.cacertsDir, originalCa);
        await writePluggedInCa(istiod.cacertsDir, trustDomain);
        await istiod.start();
      },
      heal: async () => {
        if (!existsSync(originalCa)) return;
        await istiod.stop();
        rmSync(istiod.cacertsDir, { recursive: true, force: true });
        renameSync(originalCa, istiod.cacertsDir);
        await istiod.start();
      },
    },
    ...ROOT_ROTATION_STEPS.map((step, i): FaultDefinition => ({
      name: `root-rotation-${step}`,
      scope: 'lab',
      description:
        `step ${i + 1} of 3 of a mesh root rotation with the plugged-in CA (${rootRotationStepText[step]}), then istiod ` +
        'restarted as after updating the cacerts Secret; heal restores the CA from before the rotation',
      apply: async () => {
        if (!existsSync(beforeRotation)) cpSync(istiod.cacertsDir, beforeRotation, { recursive: true });
        await istiod.stop();
        await rotateRoot(istiod.cacertsDir, step, trustDomain);
        await istiod.start();
      },
      heal: async () => {
        if (!existsSync(beforeRotation)) return;
        await istiod.stop();
        rmSync(istiod.cacertsDir, { recursive: true, force: true });
        renameSync(beforeRotation, istiod.cacertsDir);
        await istiod.start();
      },
    })),
    {
      name: 'autoregistration-off',
      scope: 'lab',
      description:
        'istiod Deployment env PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false and the real istiod restarted with it',
      apply: async () => rollOut(() => kube.setAutoregistration(false)),
      heal: async () => rollOut(() => kube.setAutoregistration(true)),
    },
    {
      name: 'istiod-down',
      scope: 'lab',
      description: `the real istiod (pilot-discovery) on ${options.gatewayIP}:15012 is stopped (SIGTERM by pid); heal starts it again`,
      apply: async () => {
        await istiod.stop();
        setIstiodPodReady(false);
      },
      heal: async () => {
        await istiod.start();
        setIstiodPodReady(true);
      },
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
    ...(extra
      ? {
          extraIstiod: {
            revision: extra.revision,
            address: extra.address,
            get pid() {
              return extra.istiod.pid;
            },
            binary: extra.istiod.binary,
            logPath: extra.istiod.logPath,
            cacertsDir: extra.istiod.cacertsDir,
            ports: extra.istiod.ports,
          },
        }
      : {}),
    kube,
    async stop() {
      await block15012.unblockAll();
      await pods.stop();
      await extra?.stop();
      await istiod.stop();
      await Promise.allSettled([dns.stop(), kube.stop()]);
    },
  };
}
