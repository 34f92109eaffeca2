// The lab's Kubernetes API double: an HTTPS server speaking the real REST protocol well enough for
// kubectl and @kubernetes/client-node, seeded as an Istio-installed cluster. See README.md.
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { createServingPki, generateRsaKeyPair } from './pki.js';
import { ObjectStore, type KubeObject, type StoreEvent } from './store.js';
import {
  Authorizer,
  ADMIN_RULES,
  ADMIN_USER,
  READ_ONLY_RULES,
  RESTRICTED_USER,
  type DenyRule,
  type PolicyRule,
  type UserInfo,
} from './auth.js';
import { API_AUDIENCE, ServiceAccountTokenSigner, type IssuedToken } from './tokens.js';
import {
  createRequestHandler,
  RequestRecorder,
  type RequestFaultState,
  type RequestLog,
  type TokenReviewResult,
} from './server.js';
import { errors } from './status.js';
import {
  DEFAULT_GATEWAY_HOSTNAME,
  eastWestService,
  injectorValues,
  istiodDeployment,
  istiodDeploymentStatus,
  istiodService,
  loadBalancerStatus,
  meshConfigText,
  otherIstioCrds,
  workloadCrds,
  type SeedOptions,
} from './seed.js';
import { kubeFaults, type KubeFaultOptions } from './faults.js';
import { startEndpointSliceController } from './endpoint-slices.js';
import type { FaultDefinition } from '../fault-types.js';

export type { SeedOptions } from './seed.js';
export type { KubeObject, ObjectMeta, StoreEvent, WatchEventType, ManagedFieldsEntry, ListOptions } from './store.js';
export { ObjectStore } from './store.js';
export type { RequestLog, RequestRecord, TokenReviewResult } from './server.js';
export type { IssuedToken, ServiceAccountTokenClaims } from './tokens.js';
export type { PolicyRule, DenyRule, UserInfo } from './auth.js';
export { ADMIN_USER, RESTRICTED_USER } from './auth.js';
export { KubeApiError } from './status.js';
export { podFromJob, podStatus, jobFinishedStatus, jobActiveStatus, JOBS, PODS } from './jobs.js';
export { KUBE_FAULT_NAMES, type KubeFaultOptions } from './faults.js';
export { DEFAULT_GATEWAY_HOSTNAME } from './seed.js';

/** Store keys (kindKey) of the kinds other lab parts use. */
export const KINDS = {
  namespaces: 'namespaces',
  serviceAccounts: 'serviceaccounts',
  configMaps: 'configmaps',
  services: 'services',
  pods: 'pods',
  endpointSlices: 'endpointslices.discovery.k8s.io',
  deployments: 'deployments.apps',
  jobs: 'jobs.batch',
  crds: 'customresourcedefinitions.apiextensions.k8s.io',
  workloadGroups: 'workloadgroups.networking.istio.io',
  workloadEntries: 'workloadentries.networking.istio.io',
  peerAuthentications: 'peerauthentications.security.istio.io',
} as const;

export interface KubeApiOptions {
  /** Directory for the kubeconfig (DIR/kubeconfig). */
  dir: string;
  host?: string;
  /** 0 = a random free port. */
  port?: number;
  seed?: SeedOptions;
  faultOptions?: KubeFaultOptions;
  /** Upper bound of one watch request, seconds (default 300). */
  maxWatchSeconds?: number;
  /** Where controller errors are reported (default: kept in `controllerErrors`). */
  onControllerError?: (err: unknown) => void;
}

/**
 * A controller sees every write (ADDED/MODIFIED/DELETED) of the kinds it asked for and acts through
 * `api.store` / `api.setPodLog`. Errors (sync or async) are caught and reported, never thrown into writes.
 */
export type KubeController = (event: StoreEvent, api: KubeApiDouble) => void | Promise<void>;

export interface KubeApiDouble {
  /** https://HOST:PORT */
  url: string;
  caCertPem: string;
  /** DIR/kubeconfig: contexts `lab` (admin, current) and `lab-restricted` (read-only user). */
  kubeconfigPath: string;
  store: ObjectStore;
  requests: RequestLog;
  faults: FaultDefinition[];
  /** Public key (SPKI PEM) that verifies ServiceAccount tokens (RS256). */
  signingKey: string;
  /** Issuer (`iss`) of ServiceAccount tokens. */
  issuer: string;
  /** Username of the kubeconfig's `lab` context (the action's user). */
  adminUser: string;
  restrictedUser: string;
  controllerErrors: unknown[];
  /** `kind/name` of `seed.istioInstall` objects whose kind the double does not serve (RBAC, HPA, …). */
  skippedInstallObjects: string[];
  /**
   * Installs more of Istio after the start (a second revision's `istioctl manifest generate --set revision=…`):
   * returns the `kind/name` left out (kinds not served, objects already there such as the shared CRDs).
   */
  installIstio(objects: KubeObject[]): string[];
  /** TokenRequest without HTTP. Throws KubeApiError 404 when the ServiceAccount does not exist. */
  issueServiceAccountToken(
    namespace: string,
    serviceAccount: string,
    audiences: string[],
    expirationSeconds: number,
  ): IssuedToken;
  /**
   * TokenReview without HTTP: signature, issuer, expiry, the ServiceAccount still existing (same uid),
   * and — when `audiences` is given — an intersection with the token's `aud`.
   */
  reviewToken(token: string, audiences?: string[]): TokenReviewResult;
  /** Registers a controller; `kinds` are store keys (e.g. KINDS.jobs), all kinds when omitted. Returns unregister. */
  addController(fn: KubeController, kinds?: string[]): () => void;
  setPodLog(namespace: string, pod: string, container: string, text: string): void;
  appendPodLog(namespace: string, pod: string, container: string, text: string): void;
  /** Denies one permission (to `user`, or everyone when omitted). Returns the undo function. */
  denyPermission(rule: DenyRule): () => void;
  clearDenies(): void;
  /** Replaces the rules of a user (creates the user's rules if missing). */
  setUserRules(user: string, rules: PolicyRule[]): void;
  /** A bearer token for a new user with these rules (for tests of other RBAC shapes). */
  addUser(username: string, rules: PolicyRule[]): string;
  setEastWestMode(mode: 'ip' | 'hostname'): void;
  setGatewayAddress(address: { ip?: string; hostname?: string }): void;
  /** Sets the mesh root cert and (re)writes istio-ca-root-cert in every namespace. */
  setRootCert(pem: string): void;
  setAutoregistration(enabled: boolean): void;
  setHealthChecks(enabled: boolean): void;
  setWorkloadCrdsInstalled(installed: boolean): void;
  /** Reads PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION from the istiod Deployment in the store. */
  istiodEnv(name: string): string | undefined;
  /** Fails the next `count` requests with 500 (Infinity = until healed). */
  failNextRequests(count?: number): void;
  healServerErrors(): void;
  setLatency(ms: number): void;
  stop(): Promise<void>;
}

const ISTIO_IGNORED_NAMESPACES = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']);
const ROOT_CERT_DELAY_MS = 300;

function kubeconfigText(url: string, caCertPem: string, adminToken: string, restrictedToken: string): string {
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'lab',
        cluster: { server: url, 'certificate-authority-data': Buffer.from(caCertPem).toString('base64') },
      },
    ],
    users: [
      { name: ADMIN_USER, user: { token: adminToken } },
      { name: RESTRICTED_USER, user: { token: restrictedToken } },
    ],
    contexts: [
      { name: 'lab', context: { cluster: 'lab', user: ADMIN_USER, namespace: 'default' } },
      { name: 'lab-restricted', context: { cluster: 'lab', user: RESTRICTED_USER, namespace: 'default' } },
    ],
    'current-context': 'lab',
    preferences: {},
  });
}

export async function startKubeApi(opts: KubeApiOptions): Promise<KubeApiDouble> {
  const host = opts.host ?? '127.0.0.1';
  const seed: Required<Omit<SeedOptions, 'rootCertPem' | 'namespaces' | 'istioInstall'>> &
    Pick<SeedOptions, 'rootCertPem' | 'namespaces' | 'istioInstall'> = {
    istio: true,
    workloadCrds: true,
    istioVersion: '1.24.0',
    gatewayIP: '127.0.0.1',
    gatewayHostname: DEFAULT_GATEWAY_HOSTNAME,
    eastWestMode: 'ip',
    trustDomain: 'cluster.local',
    clusterName: 'Kubernetes',
    network: '',
    autoregistration: true,
    healthChecks: true,
    ...opts.seed,
  };
  const pki = createServingPki(host);
  const signer = new ServiceAccountTokenSigner(generateRsaKeyPair());
  const store = new ObjectStore();
  const authorizer = new Authorizer();
  const recorder = new RequestRecorder();
  const faultState: RequestFaultState = { latencyMs: 0, serverErrorsRemaining: 0, forbiddenUsers: new Set() };
  const staticTokens = new Map<string, UserInfo>();
  const newToken = (): string => randomBytes(32).toString('base64url');
  const adminToken = newToken();
  const restrictedToken = newToken();
  staticTokens.set(adminToken, {
    username: ADMIN_USER,
    uid: 'lab-admin-uid',
    groups: ['system:masters', 'system:authenticated'],
  });
  staticTokens.set(restrictedToken, {
    username: RESTRICTED_USER,
    uid: 'lab-restricted-uid',
    groups: ['system:authenticated'],
  });
  authorizer.setRules(ADMIN_USER, ADMIN_RULES);
  authorizer.setRules(RESTRICTED_USER, READ_ONLY_RULES);

  const podLogs = new Map<string, string>();
  const timers = new Set<NodeJS.Timeout>();
  const controllerErrors: unknown[] = [];
  const reportError = opts.onControllerError ?? ((e: unknown) => controllerErrors.push(e));
  let rootCertPem = seed.rootCertPem;
  let eastWestMode = seed.eastWestMode;
  let gatewayIP = seed.gatewayIP;
  let gatewayHostname = seed.gatewayHostname;
  let stopped = false;

  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopped) fn();
    }, ms);
    timers.add(t);
  };

  function issueServiceAccountToken(
    namespace: string,
    serviceAccount: string,
    audiences: string[],
    expirationSeconds: number,
  ): IssuedToken {
    const sa = store.mustGet('serviceaccounts', namespace, serviceAccount);
    return signer.issue({ namespace, name: serviceAccount, uid: sa.metadata.uid ?? '', audiences, expirationSeconds });
  }

  function reviewToken(token: string, audiences?: string[]): TokenReviewResult {
    const v = signer.verify(token);
    if (!v.ok || !v.claims) return { authenticated: false, error: `[${v.error ?? 'invalid bearer token'}]` };
    const c = v.claims;
    const k = c['kubernetes.io'];
    const sa = store.get('serviceaccounts', k.namespace, k.serviceaccount.name);
    if (!sa || sa.metadata.uid !== k.serviceaccount.uid) {
      return {
        authenticated: false,
        error: `[invalid bearer token, service account ${k.namespace}/${k.serviceaccount.name} has been deleted or recreated: token has been invalidated]`,
      };
    }
    let granted = c.aud;
    if (audiences) {
      granted = c.aud.filter((a) => audiences.includes(a));
      if (!granted.length) {
        return {
          authenticated: false,
          error: `[invalid bearer token, token audiences ${JSON.stringify(c.aud)} is invalid for the target audiences ${JSON.stringify(audiences)}]`,
        };
      }
    }
    return {
      authenticated: true,
      user: {
        username: c.sub,
        uid: k.serviceaccount.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${k.namespace}`, 'system:authenticated'],
        extra: { 'authentication.kubernetes.io/credential-id': [`JTI=${c.jti}`] },
      },
      audiences: granted,
      exp: c.exp,
    };
  }

  function authenticate(bearer: string): UserInfo | undefined {
    const u = staticTokens.get(bearer);
    if (u) return u;
    if (bearer.split('.').length === 3) {
      const r = reviewToken(bearer, [API_AUDIENCE]);
      if (r.authenticated && r.user) return { username: r.user.username, uid: r.user.uid, groups: r.user.groups };
    }
    return undefined;
  }

  // ---------- seed ----------
  const system = (o: KubeObject): KubeObject => store.create(kindKeyFor(o), o, { manager: 'lab-seed' });
  const kindKeyFor = (o: KubeObject): string => {
    const [g] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : [''];
    const t = store.types().find((x) => x.group === (g ?? '') && x.kind === o.kind);
    if (!t) throw new Error(`no type for ${o.apiVersion} ${o.kind}`);
    return t.group ? `${t.resource}.${t.group}` : t.resource;
  };

  function writeRootCert(ns: string): void {
    if (!rootCertPem || !seed.istio || ISTIO_IGNORED_NAMESPACES.has(ns) || !store.get('namespaces', undefined, ns))
      return;
    const cm: KubeObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'istio-ca-root-cert', namespace: ns, labels: { 'istio.io/config': 'true' } },
      data: { 'root-cert.pem': rootCertPem },
    };
    store.apply('configmaps', ns, 'istio-ca-root-cert', cm, { manager: 'pilot-discovery', force: true });
  }

  // Namespace side effects: ServiceAccount "default" and kube-root-ca.crt at once (kube-controller-manager),
  // istio-ca-root-cert after a short delay (istiod's namespace controller).
  store.watch('namespaces', (e) => {
    if (e.type !== 'ADDED') return;
    const ns = e.object.metadata.name;
    try {
      if (!store.get('serviceaccounts', ns, 'default'))
        store.create('serviceaccounts', {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name: 'default', namespace: ns },
        });
      if (!store.get('configmaps', ns, 'kube-root-ca.crt')) {
        store.create(
          'configmaps',
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: {
              name: 'kube-root-ca.crt',
              namespace: ns,
              annotations: {
                'kubernetes.io/description':
                  'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.',
              },
            },
            data: { 'ca.crt': pki.caCertPem },
          },
          { manager: 'kube-controller-manager' },
        );
      }
    } catch (err) {
      reportError(err);
    }
    later(ROOT_CERT_DELAY_MS, () => {
      try {
        writeRootCert(ns);
      } catch (err) {
        reportError(err);
      }
    });
  });

  for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease'])
    system({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  store.create('services', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
    spec: {
      type: 'ClusterIP',
      clusterIP: '10.96.0.1',
      clusterIPs: ['10.96.0.1'],
      ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }],
    },
  });

  function setWorkloadCrdsInstalled(installed: boolean): void {
    for (const c of workloadCrds()) {
      const exists = store.get('customresourcedefinitions.apiextensions.k8s.io', undefined, c.metadata.name);
      if (installed && !exists) {
        const created = system(c);
        store.patchStatus(
          'customresourcedefinitions.apiextensions.k8s.io',
          undefined,
          created.metadata.name,
          crdStatus(c),
        );
      }
      if (!installed && exists)
        store.delete('customresourcedefinitions.apiextensions.k8s.io', undefined, c.metadata.name);
    }
  }

  const skippedInstallObjects: string[] = [];
  // The Istio namespace: where the installed istiod Deployment lives (`istioctl manifest generate --set
  // values.global.istioNamespace=…`), istio-system otherwise.
  const istioNs =
    seed.istioInstall?.find((o) => o.kind === 'Deployment' && o.metadata.name === 'istiod')?.metadata.namespace ??
    'istio-system';
  /**
   * Objects `istioctl manifest generate` rendered, created as the install would (CRDs first, each istiod
   * Deployment rolled out); kinds the double does not serve and objects already there (a second revision's
   * CRDs) are left out and listed.
   */
  const installIstio = (objects: KubeObject[]): string[] => {
    const skipped: string[] = [];
    const served = (o: KubeObject): boolean => {
      const [g] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : [''];
      return store.types().some((x) => x.group === (g ?? '') && x.kind === o.kind);
    };
    // CRDs first: the custom resources in the install need their types.
    const ordered = [
      ...objects.filter((o) => o.kind === 'CustomResourceDefinition'),
      ...objects.filter((o) => o.kind !== 'CustomResourceDefinition'),
    ];
    for (const o of ordered) {
      if (!served(o) || store.get(kindKeyFor(o), o.metadata.namespace, o.metadata.name)) {
        skipped.push(`${o.kind}/${o.metadata.name}`);
        continue;
      }
      const created = system(structuredClone(o));
      if (o.kind === 'CustomResourceDefinition')
        store.patchStatus(
          'customresourcedefinitions.apiextensions.k8s.io',
          undefined,
          created.metadata.name,
          crdStatus(o),
        );
      if (o.kind === 'Deployment' && o.metadata.labels?.app === 'istiod')
        store.patchStatus(
          'deployments.apps',
          o.metadata.namespace,
          o.metadata.name,
          istiodDeploymentStatus(),
          'kube-controller-manager',
        );
    }
    return skipped;
  };
  if (seed.istio && seed.istioInstall) {
    system({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: istioNs } });
    skippedInstallObjects.push(...installIstio(seed.istioInstall));
    const eastWest = eastWestService(seed.network);
    system({ ...eastWest, metadata: { ...(eastWest.metadata as object), namespace: istioNs } } as typeof eastWest);
    store.patchStatus(
      'services',
      istioNs,
      'istio-eastwestgateway',
      loadBalancerStatus(eastWestMode, gatewayIP, gatewayHostname),
      'cloud-controller-manager',
    );
  } else if (seed.istio) {
    system({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
    for (const c of otherIstioCrds()) {
      const created = system(c);
      store.patchStatus(
        'customresourcedefinitions.apiextensions.k8s.io',
        undefined,
        created.metadata.name,
        crdStatus(c),
      );
    }
    if (seed.workloadCrds) setWorkloadCrdsInstalled(true);
    system({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'istio',
        namespace: 'istio-system',
        labels: {
          'install.operator.istio.io/owning-resource': 'unknown',
          'istio.io/rev': 'default',
          'operator.istio.io/component': 'Pilot',
          release: 'istio',
        },
      },
      data: { mesh: meshConfigText(seed.trustDomain), meshNetworks: 'networks: {}' },
    });
    system({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'istio-sidecar-injector',
        namespace: 'istio-system',
        labels: {
          'install.operator.istio.io/owning-resource': 'unknown',
          'istio.io/rev': 'default',
          'operator.istio.io/component': 'Pilot',
          release: 'istio',
        },
      },
      data: {
        values: injectorValues({
          clusterName: seed.clusterName,
          network: seed.network,
          istioVersion: seed.istioVersion,
        }),
        config:
          'defaultTemplates: [sidecar]\npolicy: enabled\nalwaysInjectSelector:\n  []\nneverInjectSelector:\n  []\ninjectedAnnotations:\ntemplate: "{{ Template_Version_And_Istio_Version_Mismatched_Check_Installation }}"\ntemplates:\n  sidecar: |\n    # (lab) injection templates are not rendered by the double\n',
      },
    });
    system({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod', release: 'istio' } },
    });
    system(
      istiodDeployment({
        istioVersion: seed.istioVersion,
        autoregistration: seed.autoregistration,
        healthChecks: seed.healthChecks,
        trustDomain: seed.trustDomain,
        clusterName: seed.clusterName,
      }),
    );
    store.patchStatus(
      'deployments.apps',
      'istio-system',
      'istiod',
      istiodDeploymentStatus(),
      'kube-controller-manager',
    );
    system(istiodService());
    system(eastWestService(seed.network));
    store.patchStatus(
      'services',
      'istio-system',
      'istio-eastwestgateway',
      loadBalancerStatus(eastWestMode, gatewayIP, gatewayHostname),
      'cloud-controller-manager',
    );
  }
  for (const ns of seed.namespaces ?? []) system({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });

  function refreshLoadBalancer(): void {
    if (!store.get('services', istioNs, 'istio-eastwestgateway')) return;
    // Replace (not merge) the ingress list: a merge patch replaces lists anyway.
    store.patchStatus(
      'services',
      istioNs,
      'istio-eastwestgateway',
      loadBalancerStatus(eastWestMode, gatewayIP, gatewayHostname),
      'cloud-controller-manager',
    );
  }

  function setIstiodEnv(name: string, value: string): void {
    if (!store.get('deployments.apps', istioNs, 'istiod')) return;
    store.patch(
      'deployments.apps',
      istioNs,
      'istiod',
      'strategic',
      { spec: { template: { spec: { containers: [{ name: 'discovery', env: [{ name, value }] }] } } } },
      { manager: 'lab-fault' },
    );
  }

  function istiodEnv(name: string): string | undefined {
    const d = store.get('deployments.apps', istioNs, 'istiod');
    const containers = (d?.spec?.template?.spec?.containers ?? []) as Array<{
      name: string;
      env?: Array<{ name: string; value?: string }>;
    }>;
    return containers.find((c) => c.name === 'discovery')?.env?.find((e) => e.name === name)?.value;
  }

  // ---------- controllers ----------
  // kube-controller-manager's EndpointSlice controller runs in every cluster.
  const stopEndpointSlices = startEndpointSliceController(store, reportError);
  const controllers = new Set<{ fn: KubeController; kinds?: string[] }>();
  let double: KubeApiDouble | undefined;
  store.watch('*', (e) => {
    for (const c of [...controllers]) {
      if (c.kinds && !c.kinds.includes(e.kindKey)) continue;
      try {
        const r = c.fn(e, double as KubeApiDouble);
        if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch(reportError);
      } catch (err) {
        reportError(err);
      }
    }
  });

  // ---------- server ----------
  const sockets = new Set<Socket>();
  let url = '';
  const handler = createRequestHandler({
    store,
    authorizer,
    recorder,
    faults: faultState,
    authenticate,
    reviewToken,
    issueToken: issueServiceAccountToken,
    podLog: (ns, pod, container) => podLogs.get(`${ns}/${pod}/${container}`),
    serverAddress: () => url.replace(/^https:\/\//, ''),
    maxWatchSeconds: opts.maxWatchSeconds ?? 300,
  });
  const server: Server = createServer({ key: pki.serverKeyPem, cert: pki.serverCertPem }, handler.handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('kube API double: no listening address');
  url = `https://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;

  await mkdir(opts.dir, { recursive: true });
  const kubeconfigPath = join(opts.dir, 'kubeconfig');
  await writeFile(kubeconfigPath, kubeconfigText(url, pki.caCertPem, adminToken, restrictedToken), { mode: 0o600 });

  const controls = {
    actionUser: ADMIN_USER,
    forbidUser: (user: string, forbidden: boolean) =>
      forbidden ? faultState.forbiddenUsers.add(user) : faultState.forbiddenUsers.delete(user),
    failNextRequests: (count: number) => {
      faultState.serverErrorsRemaining = count;
    },
    healServerErrors: () => {
      faultState.serverErrorsRemaining = 0;
    },
    setLatency: (ms: number) => {
      faultState.latencyMs = ms;
    },
    setAutoregistration: (enabled: boolean) =>
      setIstiodEnv('PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION', String(enabled)),
    setWorkloadCrdsInstalled,
    setEastWestMode: (mode: 'ip' | 'hostname') => {
      eastWestMode = mode;
      refreshLoadBalancer();
    },
  };

  double = {
    url,
    caCertPem: pki.caCertPem,
    kubeconfigPath,
    store,
    requests: recorder,
    faults: kubeFaults(controls, opts.faultOptions),
    signingKey: signer.publicKeyPem,
    issuer: signer.issuer,
    adminUser: ADMIN_USER,
    restrictedUser: RESTRICTED_USER,
    controllerErrors,
    skippedInstallObjects,
    installIstio,
    issueServiceAccountToken,
    reviewToken,
    addController(fn, kinds) {
      const c = { fn, ...(kinds ? { kinds } : {}) };
      controllers.add(c);
      return () => controllers.delete(c);
    },
    setPodLog(ns, pod, container, text) {
      podLogs.set(`${ns}/${pod}/${container}`, text);
    },
    appendPodLog(ns, pod, container, text) {
      const k = `${ns}/${pod}/${container}`;
      podLogs.set(k, (podLogs.get(k) ?? '') + text);
    },
    denyPermission: (rule) => authorizer.deny(rule),
    clearDenies: () => authorizer.clearDenies(),
    setUserRules: (user, rules) => authorizer.setRules(user, rules),
    addUser(username, rules) {
      const token = newToken();
      staticTokens.set(token, { username, groups: ['system:authenticated'] });
      authorizer.setRules(username, rules);
      return token;
    },
    setEastWestMode: controls.setEastWestMode,
    setGatewayAddress(a) {
      if (a.ip) gatewayIP = a.ip;
      if (a.hostname) gatewayHostname = a.hostname;
      refreshLoadBalancer();
    },
    setRootCert(pem) {
      rootCertPem = pem;
      for (const ns of store.list('namespaces')) writeRootCert(ns.metadata.name);
    },
    setAutoregistration: controls.setAutoregistration,
    setHealthChecks: (enabled) => setIstiodEnv('PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS', String(enabled)),
    setWorkloadCrdsInstalled,
    istiodEnv,
    failNextRequests: (count = Number.POSITIVE_INFINITY) => controls.failNextRequests(count),
    healServerErrors: controls.healServerErrors,
    setLatency: controls.setLatency,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      controllers.clear();
      stopEndpointSlices();
      handler.closeWatches();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections?.();
      });
    },
  };
  return double;
}

function crdStatus(c: KubeObject): Record<string, unknown> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    acceptedNames: {
      kind: c.spec.names.kind,
      listKind: c.spec.names.listKind,
      plural: c.spec.names.plural,
      singular: c.spec.names.singular,
      ...(c.spec.names.shortNames ? { shortNames: c.spec.names.shortNames } : {}),
      categories: c.spec.names.categories,
    },
    conditions: [
      {
        type: 'NamesAccepted',
        status: 'True',
        reason: 'NoConflicts',
        message: 'no conflicts found',
        lastTransitionTime: now,
      },
      {
        type: 'Established',
        status: 'True',
        reason: 'InitialNamesAccepted',
        message: 'the initial names have been accepted',
        lastTransitionTime: now,
      },
    ],
    storedVersions: ['v1'],
  };
}

/** For callers that want the API's 404 error shape without a store lookup. */
export const notFound = errors.notFound;
