// The objects of an Istio-installed cluster (istioctl 1.24 default profile + east-west gateway),
// and the CRDs. Shapes follow what kube-apiserver and Istio's manifests create; values are lab values.
import type { KubeObject } from './store.js';

export interface SeedOptions {
  /** Seed istio-system objects (mesh config, injector config, istiod, east-west gateway). Default true. */
  istio?: boolean;
  /** Seed the WorkloadGroup/WorkloadEntry CRDs (false = the "missing CRD" cluster). Default true. */
  workloadCrds?: boolean;
  /** Istio version (istiod image tag). Default 1.24.0. */
  istioVersion?: string;
  /** East-west gateway LB address (status.loadBalancer.ingress[0].ip). Default 127.0.0.1. */
  gatewayIP?: string;
  /** LB hostname used in 'hostname' mode. Default eastwest.lab.example. */
  gatewayHostname?: string;
  eastWestMode?: 'ip' | 'hostname';
  /** Mesh root certificate (PEM) published as istio-ca-root-cert in every namespace. */
  rootCertPem?: string;
  trustDomain?: string;
  /** values.global.multiCluster.clusterName in the injector config. Default Kubernetes. */
  clusterName?: string;
  /** values.global.network. Default "". */
  network?: string;
  autoregistration?: boolean;
  healthChecks?: boolean;
  /** Extra namespaces to create at start. */
  namespaces?: string[];
  /**
   * Istio's own install objects (`istioctl manifest generate`, test/lab/istio/install.ts): seeded in place of
   * the hand-written istio-system objects and CRDs above (the east-west gateway Service stays the lab's).
   * Kinds the double does not serve (RBAC, HPA, PDB) are skipped and listed in `skippedInstallObjects`.
   */
  istioInstall?: KubeObject[];
}

export const DEFAULT_GATEWAY_HOSTNAME = 'eastwest.lab.example';

type Obj = KubeObject;

export function meshConfigText(trustDomain: string): string {
  return [
    'accessLogFile: /dev/stdout',
    'defaultConfig:',
    '  discoveryAddress: istiod.istio-system.svc:15012',
    '  proxyMetadata: {}',
    '  tracing:',
    '    zipkin:',
    '      address: zipkin.istio-system:9411',
    'defaultProviders:',
    '  metrics:',
    '  - prometheus',
    'enablePrometheusMerge: true',
    'rootNamespace: istio-system',
    `trustDomain: ${trustDomain}`,
    '',
  ].join('\n');
}

export function injectorValues(o: { clusterName: string; network: string; istioVersion: string }): string {
  const values = {
    gateways: { securityContext: {}, seccompProfile: {} },
    global: {
      caAddress: '',
      caName: '',
      certSigners: [],
      configCluster: false,
      configValidation: true,
      defaultPodDisruptionBudget: { enabled: true },
      hub: 'docker.io/istio',
      imagePullPolicy: '',
      imagePullSecrets: [],
      istioNamespace: 'istio-system',
      istiod: { enableAnalysis: false },
      logAsJson: false,
      logging: { level: 'default:info' },
      meshID: '',
      meshNetworks: {},
      mountMtlsCerts: false,
      multiCluster: { clusterName: o.clusterName, enabled: false },
      network: o.network,
      omitSidecarInjectorConfigMap: false,
      operatorManageWebhooks: false,
      pilotCertProvider: 'istiod',
      priorityClassName: '',
      proxy: {
        autoInject: 'enabled',
        clusterDomain: 'cluster.local',
        componentLogLevel: 'misc:error',
        excludeIPRanges: '',
        excludeInboundPorts: '',
        excludeOutboundPorts: '',
        image: 'proxyv2',
        includeIPRanges: '*',
        logLevel: 'warning',
        outlierLogPath: '',
        privileged: false,
        readinessFailureThreshold: 4,
        readinessInitialDelaySeconds: 0,
        readinessPeriodSeconds: 15,
        resources: { limits: { cpu: '2000m', memory: '1024Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
        startupProbe: { enabled: true, failureThreshold: 600 },
        statusPort: 15020,
        tracer: 'none',
      },
      proxy_init: { forceApplyIptables: false, image: 'proxyv2' },
      remotePilotAddress: '',
      sds: { token: { aud: 'istio-ca' } },
      sts: { servicePort: 0 },
      tag: o.istioVersion,
      variant: '',
    },
    pilot: { cni: { enabled: false, provider: 'default' } },
    revision: '',
    sidecarInjectorWebhook: {
      alwaysInjectSelector: [],
      defaultTemplates: [],
      enableNamespacesByDefault: false,
      injectedAnnotations: {},
      neverInjectSelector: [],
      reinvocationPolicy: 'Never',
      rewriteAppHTTPProbe: true,
      templates: {},
    },
  };
  return JSON.stringify(values, null, 2);
}

function crd(
  group: string,
  kind: string,
  plural: string,
  singular: string,
  versions: string[],
  opts: {
    shortNames?: string[];
    status?: boolean;
    columns?: Array<{ name: string; type: string; jsonPath: string; description?: string }>;
  } = {},
): Obj {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${plural}.${group}`,
      labels: { app: 'istio-pilot', chart: 'istio', heritage: 'Tiller', release: 'istio' },
      annotations: { 'helm.sh/resource-policy': 'keep' },
    },
    spec: {
      group,
      names: {
        categories: ['istio-io', group.split('.')[0] + '-istio-io'],
        kind,
        listKind: `${kind}List`,
        plural,
        singular,
        ...(opts.shortNames ? { shortNames: opts.shortNames } : {}),
      },
      scope: 'Namespaced',
      versions: versions.map((v) => ({
        name: v,
        served: true,
        storage: v === 'v1',
        schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        ...(opts.status !== false ? { subresources: { status: {} } } : {}),
        additionalPrinterColumns: opts.columns ?? [
          {
            description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
            jsonPath: '.metadata.creationTimestamp',
            name: 'Age',
            type: 'date',
          },
        ],
      })),
    },
  };
}

const NETWORKING_VERSIONS = ['v1', 'v1alpha3', 'v1beta1'];

export function workloadCrds(): Obj[] {
  return [
    crd('networking.istio.io', 'WorkloadGroup', 'workloadgroups', 'workloadgroup', NETWORKING_VERSIONS, {
      shortNames: ['wg'],
    }),
    crd('networking.istio.io', 'WorkloadEntry', 'workloadentries', 'workloadentry', NETWORKING_VERSIONS, {
      shortNames: ['we'],
      columns: [
        {
          description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
          jsonPath: '.metadata.creationTimestamp',
          name: 'Age',
          type: 'date',
        },
        {
          description: 'Address associated with the network endpoint.',
          jsonPath: '.spec.address',
          name: 'Address',
          type: 'string',
        },
      ],
    }),
    // The verification of ADR 0005 calls each VM through a ServiceEntry.
    crd('networking.istio.io', 'ServiceEntry', 'serviceentries', 'serviceentry', NETWORKING_VERSIONS, {
      shortNames: ['se'],
    }),
  ];
}

/**
 * The security.istio.io CRDs. The other networking.istio.io CRDs are deliberately not seeded, so that
 * without the WorkloadGroup/WorkloadEntry CRDs the group is absent from discovery (the crd-missing case).
 */
export function otherIstioCrds(): Obj[] {
  return [
    crd('security.istio.io', 'PeerAuthentication', 'peerauthentications', 'peerauthentication', ['v1', 'v1beta1'], {
      shortNames: ['pa'],
      columns: [
        {
          description: 'Defines the mTLS mode used for peer authentication.',
          jsonPath: '.spec.mtls.mode',
          name: 'Mode',
          type: 'string',
        },
        {
          description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
          jsonPath: '.metadata.creationTimestamp',
          name: 'Age',
          type: 'date',
        },
      ],
    }),
    crd('security.istio.io', 'AuthorizationPolicy', 'authorizationpolicies', 'authorizationpolicy', ['v1', 'v1beta1'], {
      shortNames: ['ap'],
    }),
  ];
}

export function istiodDeployment(o: {
  istioVersion: string;
  autoregistration: boolean;
  healthChecks: boolean;
  trustDomain: string;
  clusterName: string;
}): Obj {
  const labels = {
    app: 'istiod',
    'istio.io/rev': 'default',
    'install.operator.istio.io/owning-resource': 'unknown',
    istio: 'pilot',
    'operator.istio.io/component': 'Pilot',
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'istiod', namespace: 'istio-system', labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: { istio: 'pilot' } },
      strategy: { rollingUpdate: { maxSurge: '100%', maxUnavailable: '25%' }, type: 'RollingUpdate' },
      template: {
        metadata: {
          annotations: {
            'prometheus.io/port': '15014',
            'prometheus.io/scrape': 'true',
            'sidecar.istio.io/inject': 'false',
          },
          labels: { ...labels, 'sidecar.istio.io/inject': 'false' },
        },
        spec: {
          serviceAccountName: 'istiod',
          containers: [
            {
              name: 'discovery',
              image: `docker.io/istio/pilot:${o.istioVersion}`,
              args: [
                'discovery',
                '--monitoringAddr=:15014',
                '--log_output_level=default:info',
                '--domain',
                'cluster.local',
                '--keepaliveMaxServerConnectionAge',
                '30m',
              ],
              ports: [
                { containerPort: 8080, name: 'http-debug', protocol: 'TCP' },
                { containerPort: 15010, name: 'grpc-xds', protocol: 'TCP' },
                { containerPort: 15012, name: 'tls-xds', protocol: 'TCP' },
                { containerPort: 15017, name: 'https-webhooks', protocol: 'TCP' },
                { containerPort: 15014, name: 'http-monitoring', protocol: 'TCP' },
              ],
              env: [
                { name: 'REVISION', value: 'default' },
                { name: 'PILOT_CERT_PROVIDER', value: 'istiod' },
                { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
                {
                  name: 'POD_NAMESPACE',
                  valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
                },
                {
                  name: 'SERVICE_ACCOUNT',
                  valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.serviceAccountName' } },
                },
                { name: 'KUBECONFIG', value: '/var/run/secrets/remote/config' },
                { name: 'CA_TRUSTED_NODE_ACCOUNTS', value: 'istio-system/ztunnel' },
                { name: 'PILOT_TRACE_SAMPLING', value: '1' },
                { name: 'PILOT_ENABLE_ANALYSIS', value: 'false' },
                { name: 'CLUSTER_ID', value: o.clusterName },
                { name: 'GOMEMLIMIT', valueFrom: { resourceFieldRef: { divisor: '0', resource: 'limits.memory' } } },
                { name: 'GOMAXPROCS', valueFrom: { resourceFieldRef: { divisor: '0', resource: 'limits.cpu' } } },
                { name: 'PLATFORM', value: '' },
                { name: 'PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION', value: String(o.autoregistration) },
                { name: 'PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS', value: String(o.healthChecks) },
              ],
              readinessProbe: {
                httpGet: { path: '/ready', port: 8080 },
                initialDelaySeconds: 1,
                periodSeconds: 3,
                timeoutSeconds: 5,
              },
              resources: { requests: { cpu: '500m', memory: '2048Mi' } },
            },
          ],
        },
      },
    },
  };
}

export function istiodDeploymentStatus(): Record<string, unknown> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    availableReplicas: 1,
    readyReplicas: 1,
    replicas: 1,
    updatedReplicas: 1,
    observedGeneration: 1,
    conditions: [
      {
        type: 'Available',
        status: 'True',
        reason: 'MinimumReplicasAvailable',
        message: 'Deployment has minimum availability.',
        lastTransitionTime: now,
        lastUpdateTime: now,
      },
      {
        type: 'Progressing',
        status: 'True',
        reason: 'NewReplicaSetAvailable',
        message: 'ReplicaSet "istiod-6d5b8c7f9" has successfully progressed.',
        lastTransitionTime: now,
        lastUpdateTime: now,
      },
    ],
  };
}

export function eastWestService(network: string): Obj {
  const labels = {
    app: 'istio-eastwestgateway',
    istio: 'eastwestgateway',
    'topology.istio.io/network': network || 'network1',
  };
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'istio-eastwestgateway', namespace: 'istio-system', labels },
    spec: {
      type: 'LoadBalancer',
      clusterIP: '10.96.187.20',
      clusterIPs: ['10.96.187.20'],
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      selector: {
        app: 'istio-eastwestgateway',
        istio: 'eastwestgateway',
        'topology.istio.io/network': network || 'network1',
      },
      sessionAffinity: 'None',
      ports: [
        { name: 'status-port', port: 15021, protocol: 'TCP', targetPort: 15021, nodePort: 31021 },
        { name: 'tls', port: 15443, protocol: 'TCP', targetPort: 15443, nodePort: 31443 },
        { name: 'tls-istiod', port: 15012, protocol: 'TCP', targetPort: 15012, nodePort: 31012 },
        { name: 'tls-webhook', port: 15017, protocol: 'TCP', targetPort: 15017, nodePort: 31017 },
      ],
    },
  };
}

export function loadBalancerStatus(mode: 'ip' | 'hostname', ip: string, hostname: string): Record<string, unknown> {
  const ingress = mode === 'ip' ? [{ ip, ipMode: 'VIP' }] : [{ hostname }];
  return { loadBalancer: { ingress } };
}

export function istiodService(): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'istiod',
      namespace: 'istio-system',
      labels: { app: 'istiod', istio: 'pilot', 'istio.io/rev': 'default' },
    },
    spec: {
      type: 'ClusterIP',
      clusterIP: '10.96.12.10',
      clusterIPs: ['10.96.12.10'],
      selector: { app: 'istiod', istio: 'pilot' },
      ports: [
        { name: 'grpc-xds', port: 15010, protocol: 'TCP', targetPort: 15010 },
        { name: 'https-dns', port: 15012, protocol: 'TCP', targetPort: 15012 },
        { name: 'https-webhook', port: 443, protocol: 'TCP', targetPort: 15017 },
        { name: 'http-monitoring', port: 15014, protocol: 'TCP', targetPort: 15014 },
      ],
    },
  };
}
