// Generated from inventory.schema.json by `npm run inventory-types` (scripts/inventory-types.ts): do not edit.
// The inventory document as written, before defaults; src/inventory/types.ts is the model made from it.

/**
 * Groups of virtual machines to onboard into an Istio mesh. Each group becomes one WorkloadGroup; each VM is reached
 * over SSH and gets the sidecar and the files `istioctl x workload entry configure` would produce.
 */
export interface InventoryDocument {
  /** Optional URL or path of this schema, for editors. */
  $schema?: string;
  /** Format version of this file. Only 1 exists; optional. */
  version?: 1;
  mesh?: Mesh;
  /** Defaults for every VM in the file (a group's `defaults` and the VM's own fields override them). */
  defaults?: VmDefaults;
  /** The VM groups. Each group maps to one WorkloadGroup. */
  groups: Group[];
}

/** TCP port, 1..65535. */
export type Port = number;

/**
 * Kubernetes DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63
 * characters.
 */
export type Dns1123Label = string;

/**
 * Kubernetes DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at
 * most 253 characters.
 */
export type Dns1123Subdomain = string;

/**
 * Kubernetes labels (key → value). Keys: optional DNS prefix + '/' + name of at most 63 characters; values at most 63
 * characters of [A-Za-z0-9_.-].
 */
export type Labels = Record<string, string>;

/** IPv4 address, IPv6 address or DNS name. */
export type Host = string;

/** Where the mesh's control plane lives. All fields optional. */
export interface Mesh {
  /**
   * istiod revision (istioctl --revision). Empty or `default` for the default revision; otherwise istiod-REV and
   * configmap istio-REV are used.
   */
  revision?: string;
  /** Namespace of istiod (istioctl --istioNamespace). Default: istio-system. */
  istioNamespace?: Dns1123Label;
  /** Cluster ID (istioctl --clusterID). Default: read from the cluster's injector config. */
  clusterID?: string;
  /** The gateway VMs use to reach istiod on port 15012. */
  eastWestGateway?: {
    /** Service name of the east-west gateway. Default: istio-eastwestgateway. */
    service?: Dns1123Label;
    /** Namespace of that Service. Default: mesh.istioNamespace. */
    namespace?: Dns1123Label;
    /** Explicit gateway address (IP or DNS name) instead of the Service's load balancer status. */
    address?: Host;
  };
}

/** An SSH jump host used to reach the VM. */
export interface SshEndpoint {
  /** Bastion address: IPv4, IPv6 or DNS name. */
  host: Host;
  /** Bastion SSH port. Default: 22. */
  port?: Port;
  /** Login user on the bastion. Default: the VM's user. */
  user?: string;
}

/** Default VM settings. */
export interface VmDefaults {
  /** SSH login user (needs passwordless sudo). */
  user?: string;
  /** SSH port. Default: 22. */
  port?: Port;
  bastion?: SshEndpoint;
  /** Labels added to each VM's WorkloadEntry. */
  labels?: Labels;
}

/** Istio ReadinessProbe (WorkloadGroup spec.probe); exactly one of httpGet, tcpSocket, exec, grpc. */
export interface Probe {
  /** Seconds after start before the first probe. */
  initialDelaySeconds?: number;
  /** Seconds before a probe times out. */
  timeoutSeconds?: number;
  /** Seconds between probes. */
  periodSeconds?: number;
  /** Consecutive successes to count as ready. */
  successThreshold?: number;
  /** Consecutive failures to count as not ready. */
  failureThreshold?: number;
  /** HTTP GET probe against the VM's application. */
  httpGet?: {
    /** Request path. */
    path?: string;
    /** Port to probe. */
    port: Port;
    /** Host to connect to. Default: the workload address. */
    host?: string;
    /** HTTP or HTTPS. Default: HTTP. */
    scheme?: 'HTTP' | 'HTTPS';
    /** Extra request headers. */
    httpHeaders?: {
      /** Header name. */
      name: string;
      /** Header value. */
      value: string;
    }[];
  };
  /** TCP connect probe. */
  tcpSocket?: {
    /** Host to connect to. */
    host?: string;
    /** Port to connect to. */
    port: Port;
  };
  /** Command probe run on the VM. */
  exec?: {
    /** Command and arguments. */
    command: string[];
  };
  /** gRPC health-check probe. */
  grpc?: {
    /** Port of the gRPC health service. */
    port: Port;
    /** Service name sent in the health check request. */
    service?: string;
  };
}

/** Port name → port number. Names are DNS-1123 labels (e.g. http, grpc-api). */
export type PortMap = Record<string, Port>;

/** A group of identical VMs: one WorkloadGroup. */
export interface Group {
  /** WorkloadGroup name (and default service account and Service name). */
  name: Dns1123Label;
  /** Kubernetes namespace of the WorkloadGroup, ServiceAccount and WorkloadEntries. */
  namespace: Dns1123Label;
  /** ServiceAccount whose identity the VMs get. Default: the group name. */
  serviceAccount?: Dns1123Subdomain;
  /** Labels of the workloads (WorkloadGroup spec.metadata.labels); select them with Services and policies. */
  labels?: Labels;
  /** Annotations of the workloads, e.g. proxy.istio.io/config with ProxyConfig overrides. */
  annotations?: Record<string, string>;
  /** Ports the workload serves (name → number). */
  ports?: PortMap;
  /** Istio network of the VMs when they are not on the cluster's network. Default: ''. */
  network?: string;
  /**
   * auto: the sidecar registers a WorkloadEntry itself (istiod autoregistration); static: we create one WorkloadEntry
   * per VM. Default: auto.
   */
  registration?: 'auto' | 'static';
  probe?: Probe;
  /** Create a Kubernetes Service selecting the VMs: true (name = group name, ports = group ports) or {name, ports}. */
  service?:
    | boolean
    | {
        /** Service name. Default: the group name. */
        name?: Dns1123Label;
        /** Service ports. Default: the group's ports. */
        ports?: PortMap;
      };
  /**
   * Let the action take over existing objects with the group's names (ServiceAccount, WorkloadGroup, Service,
   * PeerAuthentication, static WorkloadEntries) that it did not create (no app.kubernetes.io/managed-by:
   * istio-vm-onboard label). Default: false — such objects stop the run.
   */
  adopt?: boolean;
  /** Defaults for this group's VMs (override the file-level defaults). */
  defaults?: VmDefaults;
  /** The VMs of this group. */
  vms: Vm[];
}

/** One virtual machine. */
export interface Vm {
  /** Unique VM name; also the WorkloadEntry name for static registration. */
  name: Dns1123Subdomain;
  /** SSH address of the VM: IPv4, IPv6 or DNS name. */
  address: Host;
  /** SSH port. Default: from defaults, else 22. */
  port?: Port;
  /** SSH login user (needs passwordless sudo). Default: from defaults. */
  user?: string;
  /**
   * Workload IP inside the mesh network (istioctl --internalIP). Default: learned from the VM's route to the east-west
   * gateway.
   */
  internalIP?: string;
  /** Address other networks reach the VM at (istioctl --externalIP). */
  externalIP?: string;
  /** Extra labels for this VM's WorkloadEntry. */
  labels?: Labels;
  bastion?: SshEndpoint;
}
