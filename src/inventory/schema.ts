// The inventory JSON Schema. The published copy is /inventory.schema.json (repo root, for editors);
// test/unit/inventory.test.ts fails when the two differ.
export const INVENTORY_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://raw.githubusercontent.com/istio-vm-onboard/istio-vm-onboard/v1/inventory.schema.json',
  title: 'istio-vm-onboard inventory',
  description:
    'Groups of virtual machines to onboard into an Istio mesh. Each group becomes one WorkloadGroup; each VM is reached over SSH and gets the sidecar and the files `istioctl x workload entry configure` would produce.',
  type: 'object',
  additionalProperties: false,
  required: ['groups'],
  properties: {
    $schema: {
      type: 'string',
      description: 'Optional URL or path of this schema, for editors.',
    },
    version: {
      const: 1,
      description: 'Format version of this file. Only 1 exists; optional.',
    },
    mesh: {
      $ref: '#/definitions/mesh',
    },
    defaults: {
      $ref: '#/definitions/vmDefaults',
      description: "Defaults for every VM in the file (a group's `defaults` and the VM's own fields override them).",
    },
    groups: {
      type: 'array',
      minItems: 1,
      description: 'The VM groups. Each group maps to one WorkloadGroup.',
      items: {
        $ref: '#/definitions/group',
      },
    },
  },
  definitions: {
    port: {
      type: 'integer',
      minimum: 1,
      maximum: 65535,
      description: 'TCP port, 1..65535.',
    },
    dns1123Label: {
      type: 'string',
      description:
        "Kubernetes DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters.",
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
      maxLength: 63,
    },
    dns1123Subdomain: {
      type: 'string',
      description:
        "Kubernetes DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters.",
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
      maxLength: 253,
    },
    labels: {
      type: 'object',
      description:
        "Kubernetes labels (key \u2192 value). Keys: optional DNS prefix + '/' + name of at most 63 characters; values at most 63 characters of [A-Za-z0-9_.-].",
      additionalProperties: {
        type: 'string',
      },
    },
    host: {
      type: 'string',
      description: 'IPv4 address, IPv6 address or DNS name.',
      minLength: 1,
    },
    mesh: {
      type: 'object',
      additionalProperties: false,
      description: "Where the mesh's control plane lives. All fields optional.",
      properties: {
        revision: {
          type: 'string',
          description:
            'istiod revision (istioctl --revision). Empty or `default` for the default revision; otherwise istiod-REV and configmap istio-REV are used.',
          pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$',
          maxLength: 63,
        },
        istioNamespace: {
          $ref: '#/definitions/dns1123Label',
          description: 'Namespace of istiod (istioctl --istioNamespace). Default: istio-system.',
        },
        clusterID: {
          type: 'string',
          description: "Cluster ID (istioctl --clusterID). Default: read from the cluster's injector config.",
          minLength: 1,
        },
        eastWestGateway: {
          type: 'object',
          additionalProperties: false,
          description: 'The gateway VMs use to reach istiod on port 15012.',
          properties: {
            service: {
              $ref: '#/definitions/dns1123Label',
              description: 'Service name of the east-west gateway. Default: istio-eastwestgateway.',
            },
            namespace: {
              $ref: '#/definitions/dns1123Label',
              description: 'Namespace of that Service. Default: mesh.istioNamespace.',
            },
            address: {
              $ref: '#/definitions/host',
              description: "Explicit gateway address (IP or DNS name) instead of the Service's load balancer status.",
            },
          },
        },
      },
    },
    sshEndpoint: {
      type: 'object',
      additionalProperties: false,
      required: ['host'],
      description: 'An SSH jump host used to reach the VM.',
      properties: {
        host: {
          $ref: '#/definitions/host',
          description: 'Bastion address: IPv4, IPv6 or DNS name.',
        },
        port: {
          $ref: '#/definitions/port',
          description: 'Bastion SSH port. Default: 22.',
        },
        user: {
          type: 'string',
          description: "Login user on the bastion. Default: the VM's user.",
          minLength: 1,
        },
      },
    },
    vmDefaults: {
      type: 'object',
      additionalProperties: false,
      description: 'Default VM settings.',
      properties: {
        user: {
          type: 'string',
          description: 'SSH login user (needs passwordless sudo).',
          minLength: 1,
        },
        port: {
          $ref: '#/definitions/port',
          description: 'SSH port. Default: 22.',
        },
        bastion: {
          $ref: '#/definitions/sshEndpoint',
        },
        labels: {
          $ref: '#/definitions/labels',
          description: "Labels added to each VM's WorkloadEntry.",
        },
      },
    },
    probe: {
      type: 'object',
      additionalProperties: false,
      description: 'Istio ReadinessProbe (WorkloadGroup spec.probe); exactly one of httpGet, tcpSocket, exec, grpc.',
      properties: {
        initialDelaySeconds: {
          type: 'integer',
          minimum: 0,
          description: 'Seconds after start before the first probe.',
        },
        timeoutSeconds: {
          type: 'integer',
          minimum: 0,
          description: 'Seconds before a probe times out.',
        },
        periodSeconds: {
          type: 'integer',
          minimum: 0,
          description: 'Seconds between probes.',
        },
        successThreshold: {
          type: 'integer',
          minimum: 0,
          description: 'Consecutive successes to count as ready.',
        },
        failureThreshold: {
          type: 'integer',
          minimum: 0,
          description: 'Consecutive failures to count as not ready.',
        },
        httpGet: {
          type: 'object',
          additionalProperties: false,
          required: ['port'],
          description: "HTTP GET probe against the VM's application.",
          properties: {
            path: {
              type: 'string',
              description: 'Request path.',
            },
            port: {
              $ref: '#/definitions/port',
              description: 'Port to probe.',
            },
            host: {
              type: 'string',
              description: 'Host to connect to. Default: the workload address.',
            },
            scheme: {
              type: 'string',
              enum: ['HTTP', 'HTTPS'],
              description: 'HTTP or HTTPS. Default: HTTP.',
            },
            httpHeaders: {
              type: 'array',
              description: 'Extra request headers.',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['name', 'value'],
                properties: {
                  name: {
                    type: 'string',
                    description: 'Header name.',
                  },
                  value: {
                    type: 'string',
                    description: 'Header value.',
                  },
                },
              },
            },
          },
        },
        tcpSocket: {
          type: 'object',
          additionalProperties: false,
          required: ['port'],
          description: 'TCP connect probe.',
          properties: {
            host: {
              type: 'string',
              description: 'Host to connect to.',
            },
            port: {
              $ref: '#/definitions/port',
              description: 'Port to connect to.',
            },
          },
        },
        exec: {
          type: 'object',
          additionalProperties: false,
          required: ['command'],
          description: 'Command probe run on the VM.',
          properties: {
            command: {
              type: 'array',
              minItems: 1,
              items: {
                type: 'string',
              },
              description: 'Command and arguments.',
            },
          },
        },
        grpc: {
          type: 'object',
          additionalProperties: false,
          required: ['port'],
          description: 'gRPC health-check probe.',
          properties: {
            port: {
              $ref: '#/definitions/port',
              description: 'Port of the gRPC health service.',
            },
            service: {
              type: 'string',
              description: 'Service name sent in the health check request.',
            },
          },
        },
      },
    },
    portMap: {
      type: 'object',
      description: 'Port name \u2192 port number. Names are DNS-1123 labels (e.g. http, grpc-api).',
      additionalProperties: {
        $ref: '#/definitions/port',
      },
    },
    group: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'namespace', 'vms'],
      description: 'A group of identical VMs: one WorkloadGroup.',
      properties: {
        name: {
          $ref: '#/definitions/dns1123Label',
          description: 'WorkloadGroup name (and default service account and Service name).',
        },
        namespace: {
          $ref: '#/definitions/dns1123Label',
          description: 'Kubernetes namespace of the WorkloadGroup, ServiceAccount and WorkloadEntries.',
        },
        serviceAccount: {
          $ref: '#/definitions/dns1123Subdomain',
          description: 'ServiceAccount whose identity the VMs get. Default: the group name.',
        },
        labels: {
          $ref: '#/definitions/labels',
          description:
            'Labels of the workloads (WorkloadGroup spec.metadata.labels); select them with Services and policies.',
        },
        annotations: {
          type: 'object',
          additionalProperties: {
            type: 'string',
          },
          description: 'Annotations of the workloads, e.g. proxy.istio.io/config with ProxyConfig overrides.',
        },
        ports: {
          $ref: '#/definitions/portMap',
          description: 'Ports the workload serves (name \u2192 number).',
        },
        network: {
          type: 'string',
          description: "Istio network of the VMs when they are not on the cluster's network. Default: ''.",
        },
        registration: {
          type: 'string',
          enum: ['auto', 'static'],
          description:
            'auto: the sidecar registers a WorkloadEntry itself (istiod autoregistration); static: we create one WorkloadEntry per VM. Default: auto.',
        },
        probe: {
          $ref: '#/definitions/probe',
        },
        service: {
          description:
            'Create a Kubernetes Service selecting the VMs: true (name = group name, ports = group ports) or {name, ports}.',
          oneOf: [
            {
              type: 'boolean',
            },
            {
              type: 'object',
              additionalProperties: false,
              properties: {
                name: {
                  $ref: '#/definitions/dns1123Label',
                  description: 'Service name. Default: the group name.',
                },
                ports: {
                  $ref: '#/definitions/portMap',
                  description: "Service ports. Default: the group's ports.",
                },
              },
            },
          ],
        },
        adopt: {
          type: 'boolean',
          description:
            "Let the action take over existing objects with the group's names (ServiceAccount, WorkloadGroup, Service, PeerAuthentication, static WorkloadEntries) that it did not create (no app.kubernetes.io/managed-by: istio-vm-onboard label). Default: false \u2014 such objects stop the run.",
        },
        defaults: {
          $ref: '#/definitions/vmDefaults',
          description: "Defaults for this group's VMs (override the file-level defaults).",
        },
        vms: {
          type: 'array',
          minItems: 1,
          description: 'The VMs of this group.',
          items: {
            $ref: '#/definitions/vm',
          },
        },
      },
    },
    vm: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'address'],
      description: 'One virtual machine.',
      properties: {
        name: {
          $ref: '#/definitions/dns1123Subdomain',
          description: 'Unique VM name; also the WorkloadEntry name for static registration.',
        },
        address: {
          $ref: '#/definitions/host',
          description: 'SSH address of the VM: IPv4, IPv6 or DNS name.',
        },
        port: {
          $ref: '#/definitions/port',
          description: 'SSH port. Default: from defaults, else 22.',
        },
        user: {
          type: 'string',
          description: 'SSH login user (needs passwordless sudo). Default: from defaults.',
          minLength: 1,
        },
        internalIP: {
          type: 'string',
          description:
            "Workload IP inside the mesh network (istioctl --internalIP). Default: learned from the VM's route to the east-west gateway.",
        },
        externalIP: {
          type: 'string',
          description: 'Address other networks reach the VM at (istioctl --externalIP).',
        },
        labels: {
          $ref: '#/definitions/labels',
          description: "Extra labels for this VM's WorkloadEntry.",
        },
        bastion: {
          $ref: '#/definitions/sshEndpoint',
        },
      },
    },
  },
} as const;
