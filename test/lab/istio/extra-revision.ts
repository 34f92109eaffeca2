// A second istiod revision in the lab, as an operator installs one for a canary upgrade of the control plane:
// `istioctl manifest generate --set revision=REV` (istiod-REV Deployment and Service, the istio-REV mesh
// ConfigMap, istio-sidecar-injector-REV and its webhook) applied next to the default install, and Istio's real
// istiod run with that Deployment's args and env. It shares the default istiod's plugged-in CA (both read the
// same cacerts Secret in a cluster), listens on its own address on the lab bridge (its Service's endpoint, so
// pods and the injection webhook reach it there), and the east-west address's 15012 becomes the gateway's
// SNI passthrough (istiod-sni-router.ts) with a route for istiod-REV.<ns>.svc, as
// samples/multicluster/expose-istiod-rev.yaml.tmpl adds one.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FaultDefinition } from '../fault-types.js';
import type { KubeApiDouble, KubeObject } from '../kube/index.js';
import { bridgeName, extraIstiodIP } from '../net/addresses.js';
import { istioInstallObjects, istiodDeploymentArgs, istiodDeploymentName, istiodProcessEnv } from './install.js';
import { RealIstiod } from './istiod.js';
import { istiodPodObject, podRunningStatus } from './istiod-pod.js';
import { startIstiodSniRouter, type IstiodSniRouter, type SniRoute } from './istiod-sni-router.js';

const run = promisify(execFile);

/** Where the default istiod's 15012 listens when the router takes the east-west address's 15012. */
export const DEFAULT_ISTIOD_BEHIND_ROUTER_PORT = 15112;

export interface ExtraRevisionOptions {
  revision: string;
  kube: KubeApiDouble;
  kubeconfigPath: string;
  /** The lab's state directory. */
  dir: string;
  labIndex: number;
  gatewayIP: string;
  /** The east-west address's port for istiod (15012). */
  routerPort: number;
  istioNamespace: string;
  trustDomain: string;
  /** The default istiod: its CA is shared; the router's fallback is its secure gRPC port. */
  defaultIstiod: RealIstiod;
  log: (line: string) => void;
}

export interface ExtraRevision {
  revision: string;
  istiod: RealIstiod;
  /** The address it listens on (its Pod's IP). */
  address: string;
  /** istiod-REV.<ns>.svc */
  host: string;
  router: IstiodSniRouter;
  faults: FaultDefinition[];
  stop(): Promise<void>;
}

export async function startExtraRevision(o: ExtraRevisionOptions): Promise<ExtraRevision> {
  const address = extraIstiodIP(o.labIndex);
  const deploymentName = istiodDeploymentName(o.revision);
  const host = `${deploymentName}.${o.istioNamespace}.svc`;
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanUp = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    await run('ip', ['addr', 'replace', `${address}/32`, 'dev', bridgeName(o.labIndex)], { timeout: 15_000 });
    cleanups.push(() =>
      run('ip', ['addr', 'del', `${address}/32`, 'dev', bridgeName(o.labIndex)], { timeout: 15_000 }),
    );

    const install = istioInstallObjects({
      trustDomain: o.trustDomain,
      istioNamespace: o.istioNamespace,
      revision: o.revision,
    });
    const left = o.kube.installIstio(install);
    o.log(`revision ${o.revision}: installed ${install.length - left.length} objects (left out: ${left.length})`);
    const deploymentNow = (): KubeObject => o.kube.store.mustGet('deployments.apps', o.istioNamespace, deploymentName);

    const workDir = path.join(o.dir, deploymentName);
    mkdirSync(path.join(workDir, 'etc'), { recursive: true });
    const istiod = new RealIstiod({
      kubeconfigPath: o.kubeconfigPath,
      workDir,
      host: address,
      trustDomain: o.trustDomain,
      deploymentArgs: () => istiodDeploymentArgs([deploymentNow()]),
      env: () => istiodProcessEnv([deploymentNow()], o.kubeconfigPath),
      log: (l) => o.log(`${deploymentName}: ${l}`),
    });
    // One mesh CA: the revision signs with the default istiod's plugged-in CA (the cacerts Secret both mount).
    cpSync(o.defaultIstiod.cacertsDir, istiod.cacertsDir, { recursive: true });
    await istiod.start();
    cleanups.push(() => istiod.stop());
    o.log(`${deploymentName} ready (pid ${istiod.pid}, ${istiod.readyUrl()})`);

    const pod = istiodPodObject(deploymentNow());
    o.kube.store.create('pods', pod, { manager: 'kubelet' });
    const setReady = (ready: boolean) =>
      o.kube.store.patchStatus(
        'pods',
        o.istioNamespace,
        pod.metadata.name,
        podRunningStatus(address, ready),
        'kubelet',
      );
    setReady(true);

    const revisionRoute: SniRoute = { sni: host, host: address, port: istiod.ports.secureGrpc };
    const router = await startIstiodSniRouter({
      listenHost: o.gatewayIP,
      listenPort: o.routerPort,
      routes: [revisionRoute],
      fallback: { host: o.gatewayIP, port: o.defaultIstiod.ports.secureGrpc },
      log: o.log,
    });
    cleanups.push(() => router.stop());

    const faults: FaultDefinition[] = [
      {
        name: 'revision-unexposed',
        scope: 'lab',
        description:
          `the east-west gateway has no route for ${host} (expose-istiod-rev not applied): its 15012 sends that ` +
          'SNI to the default istiod, as the catch-all expose-istiod route does',
        apply: async () => router.setRoutes([]),
        heal: async () => router.setRoutes([revisionRoute]),
      },
      {
        name: 'revision-istiod-down',
        scope: 'lab',
        description: `${deploymentName} (the real istiod of revision ${o.revision}) is stopped; heal starts it again`,
        apply: async () => {
          await istiod.stop();
          setReady(false);
        },
        heal: async () => {
          await istiod.start();
          setReady(true);
        },
      },
    ];
    return { revision: o.revision, istiod, address, host, router, faults, stop: cleanUp };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
