// The values `istioctl x workload entry configure` reads from the cluster: the mesh config text,
// the root certificate of the group namespace, the cluster ID, the trust domain, and the east-west
// gateway address. Each is read once per run (root cert once per namespace); the ConfigMaps of istiod's
// namespace come from one list of it (readIstioConfigMap).
import { parse as parseYaml } from 'yaml';
import { isIP } from 'node:net';
import { readIstioConfigMap, sleep, type ClusterContext } from './context.js';
import { ClusterConfigError } from './errors.js';
import { chooseFromService, resolveHostnameChoice, type EastWestAddress, type HostnameResolver } from './east-west.js';
import { meshConfigMapName } from '../render/istiod.js';
import { injectorConfigMapName } from './istiod.js';

export interface MeshContextInput {
  /** The group's namespace (root cert). */
  namespace: string;
  revision: string;
  istioNamespace: string;
  /** Explicit cluster ID (istioctl --clusterID); otherwise read from the injector config. */
  clusterID?: string;
  eastWestGateway: { service: string; namespace: string; address?: string };
  /**
   * The group's namespace does not exist yet (mode plan, which creates nothing): read the root cert from
   * istiod's namespace instead, once, without waiting for a copy that cannot appear. It is the same PEM:
   * istiod's namespace controller writes one CA bundle into istio-ca-root-cert of every namespace it
   * watches, its own included, and into a new namespace as soon as it exists (Istio:
   * pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go, reconcileCACertAndCRL).
   */
  namespaceNotCreatedYet?: boolean;
}

export interface MeshContext {
  /** Text of the `mesh` key of configmap istio[-REV] (istioctl --mesh-config). */
  meshConfig: string;
  /** istio-ca-root-cert/root-cert.pem of the group namespace (or of istiod's, see namespaceNotCreatedYet). */
  rootCert: string;
  /** Where rootCert was read: `NAMESPACE/istio-ca-root-cert`. */
  rootCertSource: string;
  clusterID: string;
  /** mesh config trustDomain, default cluster.local. */
  trustDomain: string;
  eastWest: EastWestAddress;
}

export const ROOT_CERT_CONFIGMAP = 'istio-ca-root-cert';
export const ROOT_CERT_KEY = 'root-cert.pem';

/** trustDomain of a mesh config text; Istio's default `cluster.local`. Pure. */
export function trustDomainOf(meshConfigText: string): string {
  try {
    const doc = parseYaml(meshConfigText) as { trustDomain?: unknown } | null;
    return typeof doc?.trustDomain === 'string' && doc.trustDomain !== '' ? doc.trustDomain : 'cluster.local';
  } catch {
    return 'cluster.local';
  }
}

/** values.global.multiCluster.clusterName of the injector config's `values` JSON, like istioctl. Pure. */
export function clusterNameFromInjectorValues(valuesJson: string | undefined): string {
  if (!valuesJson) return '';
  try {
    const v = JSON.parse(valuesJson) as { global?: { multiCluster?: { clusterName?: unknown } } };
    const name = v?.global?.multiCluster?.clusterName;
    return typeof name === 'string' ? name : '';
  } catch {
    throw new ClusterConfigError('the injector config map\'s "values" key is not valid JSON; give the clusterID input');
  }
}

export interface MeshContextReader {
  read(input: MeshContextInput): Promise<MeshContext>;
}

export interface MeshContextOptions {
  resolver: HostnameResolver;
  /** How long to wait for istio-ca-root-cert after a namespace is created. Default 10 s. */
  rootCertWaitMs?: number;
  rootCertPollMs?: number;
}

async function readMeshConfig(ctx: ClusterContext, istioNamespace: string, revision: string): Promise<string> {
  const name = meshConfigMapName(revision);
  const cm = await readIstioConfigMap(ctx, istioNamespace, name);
  const mesh = cm?.data?.['mesh'];
  if (mesh === undefined) {
    throw new ClusterConfigError(
      cm
        ? `config map ${istioNamespace}/${name} has no "mesh" key`
        : `configmap ${name} was not found in namespace ${istioNamespace}`,
    );
  }
  return mesh;
}

async function readClusterID(ctx: ClusterContext, istioNamespace: string, revision: string): Promise<string> {
  const name = injectorConfigMapName(revision);
  const cm = await readIstioConfigMap(ctx, istioNamespace, name);
  if (!cm) {
    throw new ClusterConfigError(
      `failed to determine the cluster ID: configmap ${name} not found in namespace ` +
        `${istioNamespace}; give the clusterID input`,
    );
  }
  return clusterNameFromInjectorValues(cm.data?.['values']);
}

async function readRootCert(ctx: ClusterContext, namespace: string, waitMs: number, pollMs: number): Promise<string> {
  const deadline = Date.now() + waitMs;
  // In a namespace created moments ago istiod writes it within a fraction of a second: look again soon,
  // then less often (up to pollMs).
  let interval = Math.min(100, pollMs);
  for (let polls = 0; ; polls++) {
    const cm = await ctx.transport.callOptional((o) =>
      ctx.core.readNamespacedConfigMap({ namespace, name: ROOT_CERT_CONFIGMAP }, o),
    );
    const pem = cm?.data?.[ROOT_CERT_KEY];
    if (pem) return pem;
    if (Date.now() + interval > deadline || polls > 1000) throw rootCertMissing(namespace, waitMs);
    await sleep(interval);
    interval = Math.min(pollMs, Math.round(interval * 1.5));
  }
}

function rootCertMissing(namespace: string, waitMs: number): ClusterConfigError {
  return new ClusterConfigError(
    `configmap ${ROOT_CERT_CONFIGMAP} (key ${ROOT_CERT_KEY}) ` +
      (waitMs > 0
        ? `did not appear in namespace ${namespace} within ${Math.round(waitMs / 1000)} s. `
        : `was not found in namespace ${namespace}. `) +
      'istiod writes it into every namespace it watches: is istiod running, and does its ' +
      'discoverySelectors include this namespace?',
  );
}

/** istiod's own copy (namespaceNotCreatedYet), from the list of istiod's namespace the other reads share. */
async function readIstiodRootCert(ctx: ClusterContext, istioNamespace: string): Promise<string> {
  const pem = (await readIstioConfigMap(ctx, istioNamespace, ROOT_CERT_CONFIGMAP))?.data?.[ROOT_CERT_KEY];
  if (!pem) throw rootCertMissing(istioNamespace, 0);
  return pem;
}

async function readEastWest(
  ctx: ClusterContext,
  gateway: MeshContextInput['eastWestGateway'],
  resolver: HostnameResolver,
): Promise<EastWestAddress> {
  if (gateway.address) {
    if (isIP(gateway.address) !== 0)
      return { address: gateway.address, source: 'input', candidates: [gateway.address] };
    return resolveHostnameChoice(gateway.address, 'input', resolver);
  }
  const svc = await ctx.transport.callOptional((o) =>
    ctx.core.readNamespacedService({ namespace: gateway.namespace, name: gateway.service }, o),
  );
  if (!svc) {
    throw new ClusterConfigError(
      `east-west gateway Service ${gateway.namespace}/${gateway.service} not found; install it ` +
        `(Istio's gen-eastwest-gateway.sh) or give the address input`,
    );
  }
  const choice = chooseFromService(svc);
  if (choice.kind === 'address')
    return { address: choice.address, source: choice.source, candidates: choice.candidates };
  if (choice.kind === 'hostname') return resolveHostnameChoice(choice.hostname, choice.source, resolver);
  throw new ClusterConfigError(
    `east-west gateway Service ${gateway.namespace}/${gateway.service} has no load-balancer IP, ` +
      `hostname or externalIPs yet ` +
      '(pending load balancer?); wait for it or give the address input',
  );
}

export function createMeshContextReader(ctx: ClusterContext, options: MeshContextOptions): MeshContextReader {
  const waitMs = options.rootCertWaitMs ?? 10_000;
  const pollMs = options.rootCertPollMs ?? 500;
  return {
    async read(input: MeshContextInput): Promise<MeshContext> {
      // allSettled: when one read fails, the others finish (bounded) before the error is reported,
      // so no request of this call is still in flight afterwards.
      const settled = await Promise.allSettled([
        ctx.cache.once(`mesh/${input.istioNamespace}/${input.revision}`, () =>
          readMeshConfig(ctx, input.istioNamespace, input.revision),
        ),
        input.clusterID !== undefined && input.clusterID !== ''
          ? Promise.resolve(input.clusterID)
          : ctx.cache.once(`cluster-id/${input.istioNamespace}/${input.revision}`, () =>
              readClusterID(ctx, input.istioNamespace, input.revision),
            ),
        ctx.cache.once(`east-west/${JSON.stringify(input.eastWestGateway)}`, () =>
          readEastWest(ctx, input.eastWestGateway, options.resolver),
        ),
        input.namespaceNotCreatedYet === true
          ? ctx.cache.once(`root-cert/${input.istioNamespace}/once`, () =>
              readIstiodRootCert(ctx, input.istioNamespace),
            )
          : ctx.cache.once(`root-cert/${input.namespace}`, () => readRootCert(ctx, input.namespace, waitMs, pollMs)),
      ]);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const [meshConfig, clusterID, eastWest, rootCert] = settled.map(
        (r) => (r as PromiseFulfilledResult<unknown>).value,
      ) as [string, string, EastWestAddress, string];
      const readFrom = input.namespaceNotCreatedYet === true ? input.istioNamespace : input.namespace;
      const rootCertSource = `${readFrom}/${ROOT_CERT_CONFIGMAP}`;
      return { meshConfig, rootCert, rootCertSource, clusterID, trustDomain: trustDomainOf(meshConfig), eastWest };
    },
  };
}
