// The validated, defaults-applied model of a VM inventory. Everything after parsing reads these
// types, never the raw YAML (whose shapes schema-types.ts derives from inventory.schema.json). Field
// names follow Istio's own where one exists (WorkloadGroup spec).
import type * as Schema from './schema-types.js';

export type Registration = NonNullable<Schema.Group['registration']>;

/** Where to reach a host over SSH. */
export interface SshEndpoint {
  host: string;
  port: number;
  user: string;
}

/** Istio's ReadinessProbe (networking.istio.io/v1 WorkloadGroup spec.probe), passed through as-is. */
export type ReadinessProbe = Schema.Probe;

/** How the group's Kubernetes Service is made when `service` is asked for. */
export interface ServiceSpec {
  name: string;
  /** Port name → number; defaults to the group's ports. */
  ports: Record<string, number>;
}

export interface VmSpec {
  /** Unique across the whole inventory. Used in logs, reports and WorkloadEntry names. */
  name: string;
  /** Name of the group this VM belongs to. */
  group: string;
  ssh: SshEndpoint;
  bastion?: SshEndpoint;
  /** Workload address (istioctl --internalIP). When absent it is learned from the VM's route to the gateway. */
  internalIP?: string;
  /** istioctl --externalIP: the address other workloads use when the VM is on another network. */
  externalIP?: string;
  labels: Record<string, string>;
  /** 1-based line of this VM's entry in the inventory file, for annotations. */
  line?: number;
}

export interface GroupSpec {
  name: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  ports: Record<string, number>;
  network: string;
  registration: Registration;
  probe?: ReadinessProbe;
  service?: ServiceSpec;
  /**
   * Let the action take over objects of the group's names (ServiceAccount, WorkloadGroup, Service,
   * PeerAuthentication, static WorkloadEntries) that exist without its managed-by label. Default false.
   */
  adopt?: boolean;
  vms: VmSpec[];
  line?: number;
}

export interface MeshSpec {
  /** istiod revision (istioctl --revision); '' for the default revision. */
  revision: string;
  /** Namespace of istiod and the east-west gateway (istioctl's --istioNamespace). */
  istioNamespace: string;
  /** Cluster ID (istioctl --clusterID); undefined = read from the cluster. */
  clusterID?: string;
  eastWestGateway: {
    service: string;
    namespace: string;
    /** Explicit address (IP or DNS name) overriding the Service's load balancer status. */
    address?: string;
  };
}

export interface Inventory {
  /** File path or `<inline>`; used in error messages and annotations. */
  source: string;
  mesh: MeshSpec;
  groups: GroupSpec[];
}

/** Every VM of the inventory with its group, in file order. */
export function listVms(inventory: Inventory): { group: GroupSpec; vm: VmSpec }[] {
  return inventory.groups.flatMap((group) => group.vms.map((vm) => ({ group, vm })));
}
