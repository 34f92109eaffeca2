// The istio-system objects of the lab's cluster, as Istio installs them: `istioctl manifest generate`
// (the real istioctl built from the pinned module) renders its own charts — CRDs, the `istio` mesh
// ConfigMap, `istio-sidecar-injector`, the istiod Deployment/Service/ServiceAccount, webhooks.
// The lab's istiod process then runs with the Deployment's own env and args (plus the addresses the lab
// gives it), so what the action reads from the Deployment is what the running istiod does.
import { execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { istioBuild } from './binaries.js';
import type { KubeObject } from '../kube/index.js';

export interface IstioInstallOptions {
  trustDomain?: string;
  clusterName?: string;
  network?: string;
  autoregistration?: boolean;
  healthChecks?: boolean;
  /** The Istio namespace (`values.global.istioNamespace`; default istio-system). */
  istioNamespace?: string;
  /** A revision (`--set revision=…`): istiod-REV, istio-REV, istio-sidecar-injector-REV and its webhook. */
  revision?: string;
}

/** The istiod Deployment's name for a revision, as Istio's chart names it. */
export function istiodDeploymentName(revision?: string): string {
  return revision ? `istiod-${revision}` : 'istiod';
}

/** `istioctl manifest generate` with the lab's values; returns the objects it renders. */
export function istioInstallObjects(o: IstioInstallOptions = {}): KubeObject[] {
  const build = istioBuild();
  const set = (kv: string) => ['--set', kv];
  const args = [
    'manifest',
    'generate',
    ...set('profile=minimal'),
    ...set('hub=docker.io/istio'),
    ...set(`tag=${build.version}`),
    ...set(`meshConfig.trustDomain=${o.trustDomain ?? 'cluster.local'}`),
    ...set(`values.global.multiCluster.clusterName=${o.clusterName ?? 'Kubernetes'}`),
    ...set(`values.global.network=${o.network ?? ''}`),
    ...set(`values.pilot.env.PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=${String(o.autoregistration ?? true)}`),
    ...set(`values.pilot.env.PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS=${String(o.healthChecks ?? true)}`),
    ...(o.istioNamespace ? set(`values.global.istioNamespace=${o.istioNamespace}`) : []),
    ...(o.revision ? set(`revision=${o.revision}`) : []),
  ];
  const text = execFileSync(build.istioctl, args, {
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', KUBECONFIG: '/dev/null' },
  });
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    const o2 = doc.toJS() as KubeObject | null;
    if (o2 && typeof o2 === 'object' && o2.kind && o2.metadata?.name) objects.push(o2);
  }
  const name = istiodDeploymentName(o.revision);
  if (!objects.some((x) => x.kind === 'Deployment' && x.metadata.name === name))
    throw new Error(`istioctl manifest generate rendered no ${name} Deployment`);
  return objects;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath?: string } };
}

/** The istiod Deployment among the objects (app=istiod; a revision's is istiod-REV). */
function istiodDeploymentIn(objects: KubeObject[]): KubeObject | undefined {
  return objects.find((x) => x.kind === 'Deployment' && x.metadata.labels?.app === 'istiod');
}

/** The namespace of the installed istiod Deployment. */
export function istiodNamespaceOf(objects: KubeObject[]): string {
  const d = istiodDeploymentIn(objects);
  if (!d?.metadata.namespace) throw new Error('no istiod Deployment (with a namespace) in the install objects');
  return d.metadata.namespace;
}

/** The istiod container of the Deployment `istioInstallObjects` rendered. */
function istiodContainer(objects: KubeObject[]): { args: string[]; env: EnvVar[] } {
  const d = istiodDeploymentIn(objects) as
    | (KubeObject & { spec: { template: { spec: { containers: Array<{ args?: string[]; env?: EnvVar[] }> } } } })
    | undefined;
  const c = d?.spec.template.spec.containers[0];
  if (!c) throw new Error('no istiod container in the install objects');
  return { args: c.args ?? [], env: c.env ?? [] };
}

/**
 * The process environment a kubelet would give the istiod container (literal values, and the
 * fieldRefs resolved for the lab's pod), with KUBECONFIG pointing at the lab's kubeconfig.
 */
export function istiodProcessEnv(objects: KubeObject[], kubeconfigPath: string): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.name': `${istiodDeploymentIn(objects)?.metadata.name ?? 'istiod'}-lab`,
    'metadata.namespace': istiodNamespaceOf(objects),
    'spec.serviceAccountName': 'istiod',
  };
  const env: Record<string, string> = {};
  for (const e of istiodContainer(objects).env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath && fields[e.valueFrom.fieldRef.fieldPath] !== undefined)
      env[e.name] = fields[e.valueFrom.fieldRef.fieldPath] as string;
  }
  env.KUBECONFIG = kubeconfigPath;
  return env;
}

/** The Deployment's args (`discovery --monitoringAddr=:15014 …`). */
export function istiodDeploymentArgs(objects: KubeObject[]): string[] {
  return istiodContainer(objects).args;
}
