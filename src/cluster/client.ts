// ClusterClient: everything the rollout and verify layers ask of the Kubernetes API, implemented
// with @kubernetes/client-node. Every request goes through one KubeTransport (counting, retries,
// clear errors). Values read per run are cached, so a run costs O(groups) requests + 1 per VM
// (its bootstrap token).
import type { KubeConfig } from '@kubernetes/client-node';
import type { GroupSpec, Inventory, VmSpec } from '../inventory/types.js';
import { buildWorkloadEntry, buildWorkloadGroup } from '../render/index.js';
import {
  applyGroupObjects,
  applyStaticWorkloadEntry,
  type AppliedObject,
  type ApplyGroupOptions,
  type RenderedObjects,
} from './apply.js';
import { createClusterContext, type ClusterContext } from './context.js';
import { createDnsResolver, type HostnameResolver } from './east-west.js';
import { createMeshContextReader, type MeshContext, type MeshContextInput } from './mesh-context.js';
import { FIELD_MANAGER } from './mesh-objects.js';
import { runPreflight, type PreflightOptions, type PreflightReport } from './preflight.js';
import { requestBootstrapToken, type BootstrapToken, type BootstrapTokenRequest } from './tokens.js';
import { KubeTransport, type RetryPolicy } from './transport.js';
import {
  runGroupVerificationJob,
  runVerificationJob,
  type GroupVerificationJobInput,
  type VerificationJobInput,
  type VerificationJobResult,
} from './verification-job.js';
import {
  deleteWorkloadEntry,
  findWorkloadEntryFor,
  getPeerAuthenticationMode,
  listWorkloadEntries,
  type GroupRef,
  type PeerAuthenticationModeInfo,
  type WorkloadEntryInfo,
} from './workload-entries.js';

export interface ClusterClient {
  /** API server URL (safe to print). */
  readonly server: string;
  /** Requests sent so far (every attempt counts). */
  readonly requestCount: number;
  /** The run is done with the cluster: background watches stop (no request after this). */
  close(): void;

  preflight(inventory: Inventory, options: PreflightOptions): Promise<PreflightReport>;

  /**
   * Namespace, ServiceAccount, WorkloadGroup, optional Service and PeerAuthentication, given static
   * WorkloadEntries.
   */
  applyMeshObjects(group: GroupSpec, options: ApplyGroupOptions): Promise<AppliedObject[]>;
  /** One VM's static WorkloadEntry (registration: static), once its address is known. */
  applyStaticWorkloadEntry(
    group: GroupSpec,
    vm: VmSpec,
    address: string,
    options?: { dryRun?: boolean },
  ): Promise<AppliedObject>;

  readMeshContext(input: MeshContextInput): Promise<MeshContext>;
  /** The networking.istio.io/v1 WorkloadGroup as the API serves it; undefined when it does not exist. */
  getWorkloadGroup(namespace: string, name: string): Promise<unknown>;
  requestBootstrapToken(input: BootstrapTokenRequest): Promise<BootstrapToken>;

  /** group: its name, or { name, network, vmNames } to also recognise static entries (named after VMs). */
  listWorkloadEntries(namespace: string, group: GroupRef): Promise<WorkloadEntryInfo[]>;
  findWorkloadEntryFor(namespace: string, group: GroupRef, address: string): Promise<WorkloadEntryInfo | undefined>;
  /** false when it did not exist. */
  deleteWorkloadEntry(namespace: string, name: string): Promise<boolean>;
  /** The mTLS mode Istio applies to workloads with these labels; rootNamespace default istio-system. */
  getPeerAuthenticationMode(
    namespace: string,
    labels: Record<string, string>,
    rootNamespace?: string,
  ): Promise<PeerAuthenticationModeInfo>;

  runVerificationJob(input: VerificationJobInput): Promise<VerificationJobResult>;
  /** Issue 20: one Job for several VMs of a group; one result per target, in order. */
  runGroupVerificationJob(input: GroupVerificationJobInput, timeoutMs: number): Promise<VerificationJobResult[]>;
}

export interface ClusterClientOptions {
  /** Default 'istio-vm-onboard'. */
  fieldManager?: string;
  /** Default 4 attempts, 250 ms base delay (doubling, capped at 4 s). */
  retry?: RetryPolicy;
  onRequest?(info: { method: string; path: string }): void;
  /** Bound on one request attempt. Default 30 s. */
  requestTimeoutMs?: number;
  /** DNS servers for a load-balancer hostname (`127.0.0.1:5353`); default the system's. */
  dnsServers?: string[];
  /** Replaces DNS entirely (tests). */
  resolver?: HostnameResolver;
  /** Wait for istio-ca-root-cert after namespace creation. Default 10 s. */
  rootCertWaitMs?: number;
  /** Pause before watching a verification Job again when a watch ended early. Default 500 ms. */
  jobPollMs?: number;
  /** Builders of the WorkloadGroup / WorkloadEntry (default: src/render). */
  render?: RenderedObjects;
}

export function createClusterClient(kubeConfig: KubeConfig, options: ClusterClientOptions = {}): ClusterClient {
  const server = kubeConfig.getCurrentCluster()?.server ?? '(no server)';
  const transport = new KubeTransport(server, {
    ...(options.retry ? { retry: options.retry } : {}),
    ...(options.onRequest ? { onRequest: options.onRequest } : {}),
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    kubeConfig,
  });
  const lifetime = new AbortController();
  const ctx: ClusterContext = createClusterContext(
    kubeConfig,
    transport,
    options.fieldManager ?? FIELD_MANAGER,
    lifetime.signal,
  );
  const render: RenderedObjects = options.render ?? { buildWorkloadGroup, buildWorkloadEntry };
  const meshReader = createMeshContextReader(ctx, {
    resolver: options.resolver ?? createDnsResolver(options.dnsServers),
    ...(options.rootCertWaitMs !== undefined ? { rootCertWaitMs: options.rootCertWaitMs } : {}),
  });
  const jobTiming = options.jobPollMs !== undefined ? { pollMs: options.jobPollMs } : {};

  return {
    server,
    get requestCount() {
      return transport.requestCount;
    },
    close: () => lifetime.abort(),
    preflight: (inventory, opts) => runPreflight(ctx, inventory, opts),
    applyMeshObjects: (group, opts) => applyGroupObjects(ctx, render, group, opts),
    applyStaticWorkloadEntry: (group, vm, address, opts) =>
      applyStaticWorkloadEntry(ctx, render, group, vm, address, opts?.dryRun === true),
    readMeshContext: (input) => meshReader.read(input),
    getWorkloadGroup: (namespace, name) =>
      transport.callOptional((o) =>
        ctx.custom.getNamespacedCustomObject(
          { group: 'networking.istio.io', version: 'v1', plural: 'workloadgroups', namespace, name },
          o,
        ),
      ),
    requestBootstrapToken: (input) => requestBootstrapToken(ctx, input),
    listWorkloadEntries: (namespace, group) => listWorkloadEntries(ctx, namespace, group),
    findWorkloadEntryFor: (namespace, group, address) => findWorkloadEntryFor(ctx, namespace, group, address),
    deleteWorkloadEntry: (namespace, name) => deleteWorkloadEntry(ctx, namespace, name),
    getPeerAuthenticationMode: (namespace, labels, rootNamespace = 'istio-system') =>
      getPeerAuthenticationMode(ctx, namespace, labels, rootNamespace),
    runVerificationJob: (input) => runVerificationJob(ctx, input, jobTiming),
    runGroupVerificationJob: (input, timeoutMs) => runGroupVerificationJob(ctx, input, timeoutMs, jobTiming),
  };
}
