// istiod double on GATEWAY_IP:15012 (HTTP/2 over TLS with istiod's cert):
//  - CA: gRPC /istio.v1.auth.IstioCertificateService/CreateCertificate (protobuf), bearer token
//    checked with the Kubernetes TokenReview API (audience istio-ca), CSR SAN must match the SA;
//  - ADS: /envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources (gRPC
//    framing, JSON messages — see sidecar/wire.ts), client cert required (the workload cert);
//    sends CDS/LDS/NDS and pushes changes; tracks connected proxies;
//  - WorkloadEntry auto-registration and health conditions (as pilot/pkg/autoregistration does).
import http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { CsrRejectedError, MeshCa, csrUriSans, istiodDnsNames } from './ca.js';
import {
  ADS_PATH,
  CREATE_CERTIFICATE_PATH,
  GrpcFrameReader,
  TYPE_CDS,
  TYPE_HEALTH,
  TYPE_LDS,
  TYPE_NDS,
  decodeCertificateRequest,
  encodeCertificateResponse,
  encodeJsonMessage,
  grpcFrame,
  type DiscoveryRequest,
  type LabCluster,
  type LabListener,
  type NameTable,
} from '../sidecar/wire.js';
import type { IstiodKube, KubeObjectLike } from './kube-access.js';

export interface MeshService {
  name: string;
  namespace: string;
  port: number;
  vip: string;
  endpoints: Array<{ address: string; port: number }>;
}

export interface IstiodOptions {
  host: string;
  port?: number;
  ca: MeshCa;
  kube: IstiodKube;
  services: () => MeshService[];
  revision?: string;
  systemNamespace?: string;
  podName?: string;
  pushIntervalMs?: number;
  /** PILOT_WORKLOAD_ENTRY_GRACE_PERIOD (default 10s). */
  cleanupGraceMs?: number;
  log?: (line: string) => void;
}

export interface ConnectedProxy {
  id: string;
  ip: string;
  namespace: string;
  identity: string;
  connectedAt: Date;
  workloadEntry?: { namespace: string; name: string };
  /** The entry is the static one the proxy named (ISTIO_META_WORKLOAD_ENTRY): never deleted by istiod. */
  staticEntry?: boolean;
}

const GRPC = { OK: 0, INVALID_ARGUMENT: 3, PERMISSION_DENIED: 7, UNAUTHENTICATED: 16, UNAVAILABLE: 14, INTERNAL: 13 };

function rfc3339Nano(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}000000Z`);
}

function grpcError(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) {
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(code),
        'grpc-message': encodeURIComponent(message),
      },
      { endStream: true },
    );
  } else {
    stream.end();
  }
  // Trailers-only answer; also close our side so the client's stream ends even if it keeps sending.
  setImmediate(() => {
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}

/** WorkloadEntry name for an auto-registered proxy (controller.go: group-ip[-network], `:`→`-`). */
export function autoRegisteredEntryName(group: string, ip: string, network: string): string {
  let name = `${group}-${ip}`;
  if (network) name += `-${network}`;
  name = name.replace(/:/g, '-');
  if (name.length > 253) name = name.slice(name.length - 253);
  return name;
}

/** Effective mTLS mode for a workload from PeerAuthentications (workload > namespace > mesh). */
export function resolveMtlsMode(
  policies: Array<{ namespace: string; selector?: Record<string, string>; mode?: string }>,
  namespace: string,
  labels: Record<string, string>,
  rootNamespace = 'istio-system',
): 'STRICT' | 'PERMISSIVE' | 'DISABLE' {
  const norm = (m?: string) => (m === 'STRICT' || m === 'DISABLE' || m === 'PERMISSIVE' ? m : undefined);
  const inNs = policies.filter((p) => p.namespace === namespace);
  const wl = inNs.find(
    (p) =>
      p.selector && Object.keys(p.selector).length && Object.entries(p.selector).every(([k, v]) => labels[k] === v),
  );
  const nsWide = inNs.find((p) => !p.selector || !Object.keys(p.selector).length);
  const mesh = policies.find((p) => p.namespace === rootNamespace && (!p.selector || !Object.keys(p.selector).length));
  return norm(wl?.mode) ?? norm(nsWide?.mode) ?? norm(mesh?.mode) ?? 'PERMISSIVE';
}

export class IstiodServer {
  private server?: http2.Http2SecureServer;
  private readonly proxies = new Map<string, ConnectedProxy>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly timers = new Set<NodeJS.Timeout>();
  readonly podName: string;
  /** Lab fault token-rejected: TokenReview answers "not authenticated". */
  tokenRejected = false;
  boundPort = 0;
  private serving: { certPem: string; keyPem: string };

  constructor(private readonly o: IstiodOptions) {
    this.podName =
      o.podName ?? `istiod-${randomBytes(5).toString('hex').slice(0, 9)}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    this.serving = o.ca.issueServerCert(istiodDnsNames(o.revision, o.systemNamespace), [o.host]);
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  get rootCertOfServingCert(): string {
    return this.o.ca.rootCertPem;
  }

  connectedProxies(): ConnectedProxy[] {
    return [...this.proxies.values()];
  }

  async start(): Promise<number> {
    if (this.server) return this.boundPort;
    const server = http2.createSecureServer({
      key: this.serving.keyPem,
      cert: this.serving.certPem,
      ca: this.o.ca.rootCertPem,
      requestCert: true,
      rejectUnauthorized: false,
      allowHTTP1: false,
    });
    server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
      s.on('error', () => undefined);
    });
    server.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      const path = headers[':path'];
      if (path === CREATE_CERTIFICATE_PATH) void this.handleCreateCertificate(stream, headers);
      else if (path === ADS_PATH) void this.handleAds(stream);
      else grpcError(stream, 12, `unknown service or method ${String(path)}`);
    });
    server.on('tlsClientError', () => undefined);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || (this.o.port ?? 15012), this.o.host, () => resolve());
    });
    this.boundPort = (server.address() as AddressInfo).port;
    return this.boundPort;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const server = this.server;
    this.server = undefined; // istiod going away does not mark its proxies disconnected
    for (const s of this.sessions) s.destroy();
    this.proxies.clear();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  /** Authenticates a bearer token the way istiod's KubeJWTAuthenticator does. Returns ns/sa. */
  private async authenticate(
    authorization: string | undefined,
  ): Promise<{ namespace: string; serviceAccount: string }> {
    const m = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    if (!m) throw new Error('authentication failure: no bearer token in the request');
    if (this.tokenRejected)
      throw new Error(
        'authentication failure: [KubeJWTAuthenticator] the token is not authenticated (TokenReview status.authenticated=false)',
      );
    const r = await this.o.kube.reviewToken(m[1]!, ['istio-ca']);
    if (!r.authenticated) {
      const err = r.error ?? 'the token is not authenticated';
      const reason = /audience/i.test(err) ? 'audience mismatch' : err;
      throw new Error(`authentication failure: [KubeJWTAuthenticator] ${reason}`);
    }
    if (r.audiences && !r.audiences.includes('istio-ca'))
      throw new Error('authentication failure: [KubeJWTAuthenticator] audience mismatch');
    const um = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(r.username ?? '');
    if (!um)
      throw new Error(
        `authentication failure: [KubeJWTAuthenticator] not a service account token: ${r.username ?? ''}`,
      );
    return { namespace: um[1]!, serviceAccount: um[2]! };
  }

  private async handleCreateCertificate(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ): Promise<void> {
    const reader = new GrpcFrameReader();
    const messages: Buffer[] = [];
    stream.on('data', (c: Buffer) => {
      try {
        messages.push(...reader.push(c));
      } catch {
        grpcError(stream, GRPC.INVALID_ARGUMENT, 'malformed request');
      }
    });
    await new Promise<void>((resolve) => stream.on('end', () => resolve()));
    let who: { namespace: string; serviceAccount: string };
    try {
      who = await this.authenticate(headers.authorization as string | undefined);
    } catch (e) {
      this.log(`CA: rejected certificate request: ${(e as Error).message}`);
      return grpcError(stream, GRPC.UNAUTHENTICATED, (e as Error).message);
    }
    const msg = messages[0];
    if (!msg) return grpcError(stream, GRPC.INVALID_ARGUMENT, 'empty request');
    const req = decodeCertificateRequest(msg);
    // The CSR must name the caller's service account (any trust domain alias is accepted here; the
    // CA issues for its own trust domain).
    let chain: string[];
    try {
      const sans = csrUriSans(req.csr);
      const td = /^spiffe:\/\/([^/]+)\//.exec(sans[0] ?? '')?.[1] ?? this.o.ca.trustDomain;
      const ttl = req.validitySeconds > 0 ? Math.min(req.validitySeconds, this.o.ca.workloadTtlSeconds) : undefined;
      chain = this.o.ca.signWorkloadCsr(req.csr, `spiffe://${td}/ns/${who.namespace}/sa/${who.serviceAccount}`, ttl);
    } catch (e) {
      const m = e instanceof CsrRejectedError ? e.message : `failed to sign CSR: ${(e as Error).message}`;
      this.log(`CA: ${m}`);
      return grpcError(stream, GRPC.INVALID_ARGUMENT, m);
    }
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
    stream.end(grpcFrame(encodeCertificateResponse(chain)));
    this.log(
      `CA: issued certificate for spiffe://${this.o.ca.trustDomain}/ns/${who.namespace}/sa/${who.serviceAccount}`,
    );
  }

  private buildConfig(
    namespace: string,
    mtls: LabListener['mtls_mode'],
  ): { cds: LabCluster[]; lds: LabListener[]; nds: NameTable } {
    const services = this.o.services();
    const cds: LabCluster[] = services.map((s) => {
      const host = `${s.name}.${s.namespace}.svc.cluster.local`;
      return {
        name: `outbound|${s.port}||${host}`,
        host,
        port: s.port,
        vip: s.vip,
        endpoints: s.endpoints,
        tls_mode: 'istio',
      };
    });
    const lds: LabListener[] = [
      { name: 'virtualOutbound', port: 15001 },
      { name: 'virtualInbound', port: 15006, mtls_mode: mtls },
      ...services.map((s) => ({ name: `${s.vip}_${s.port}`, port: s.port })),
    ];
    const table: NameTable['table'] = {};
    for (const s of services) {
      const entry = { ips: [s.vip], registry: 'Kubernetes', shortname: s.name, namespace: s.namespace };
      for (const n of [
        `${s.name}.${s.namespace}.svc.cluster.local`,
        `${s.name}.${s.namespace}.svc`,
        `${s.name}.${s.namespace}`,
      ])
        table[n] = entry;
      if (s.namespace === namespace) table[s.name] = entry;
    }
    return { cds, lds, nds: { table } };
  }

  private async mtlsModeFor(namespace: string, labels: Record<string, string>): Promise<LabListener['mtls_mode']> {
    const pas = await this.o.kube.listPeerAuthentications();
    return resolveMtlsMode(
      pas.map((p) => ({
        namespace: p.metadata.namespace ?? '',
        selector: (p.spec?.selector as { matchLabels?: Record<string, string> } | undefined)?.matchLabels,
        mode: (p.spec?.mtls as { mode?: string } | undefined)?.mode,
      })),
      namespace,
      labels,
      this.o.systemNamespace ?? 'istio-system',
    );
  }

  private async handleAds(stream: http2.ServerHttp2Stream): Promise<void> {
    const socket = stream.session?.socket as TLSSocket | undefined;
    const peer = socket?.getPeerCertificate?.();
    const san =
      (peer?.subjectaltname ?? '')
        .split(', ')
        .find((s) => s.startsWith('URI:'))
        ?.slice(4) ?? '';
    if (!socket?.authorized || !san) {
      return grpcError(
        stream,
        GRPC.UNAUTHENTICATED,
        `authentication failure: no verified client certificate (${socket?.authorizationError ?? 'none presented'})`,
      );
    }
    const idm = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(san);
    if (!idm)
      return grpcError(
        stream,
        GRPC.UNAUTHENTICATED,
        `authentication failure: identity ${san} is not a SPIFFE workload identity`,
      );
    const reader = new GrpcFrameReader();
    let proxy: ConnectedProxy | undefined;
    let labels: Record<string, string> = {};
    const lastSent = { cds: '', lds: '', nds: '' };
    let version = 0;
    let healthEnabled = false;
    let pushTimer: NodeJS.Timeout | undefined;
    let closed = false;

    const send = (type: string, resources: unknown[], key: 'cds' | 'lds' | 'nds', force = false) => {
      const json = JSON.stringify(resources);
      if (!force && lastSent[key] === json) return;
      lastSent[key] = json;
      version++;
      stream.write(
        encodeJsonMessage({
          version_info: `${new Date().toISOString()}/${version}`,
          type_url: type,
          nonce: randomBytes(8).toString('hex'),
          resources,
        }),
      );
    };
    const push = async (force = false) => {
      if (!proxy || closed) return;
      const mode = await this.mtlsModeFor(proxy.namespace, labels);
      const cfg = this.buildConfig(proxy.namespace, mode);
      if (closed) return;
      send(TYPE_CDS, cfg.cds, 'cds', force);
      send(TYPE_LDS, cfg.lds, 'lds', force);
      send(TYPE_NDS, [cfg.nds], 'nds', force);
    };

    const onFirst = async (req: DiscoveryRequest) => {
      const md = (req.node?.metadata ?? {}) as Record<string, unknown>;
      const ip = String(md.INSTANCE_IPS ?? '').split(',')[0] ?? '';
      const namespace = String(md.NAMESPACE ?? idm[1]);
      labels = (md.LABELS ?? {}) as Record<string, string>;
      if (namespace !== idm[1])
        throw Object.assign(
          new Error(`authorization failure: proxy namespace ${namespace} does not match the identity ${san}`),
          { grpc: GRPC.PERMISSION_DENIED },
        );
      proxy = { id: req.node?.id ?? '', ip, namespace, identity: san, connectedAt: new Date() };
      const group = md.AUTO_REGISTER_GROUP ? String(md.AUTO_REGISTER_GROUP) : '';
      if (group) {
        const r = await this.registerWorkload(proxy, group, String(md.NETWORK ?? ''), labels);
        if (r) {
          proxy.workloadEntry = r.entry;
          healthEnabled = r.healthChecks;
        }
      } else if (md.WORKLOAD_ENTRY) {
        // A static entry named by the proxy (controller.go OnConnect): it must exist, or the connection is
        // refused; health is written only into an entry annotated proxy.istio.io/health-checks-enabled,
        // whose service account and namespace match the proxy's identity (ensureProxyCanControlEntry).
        const entryName = String(md.WORKLOAD_ENTRY);
        const env = await this.o.kube.istiodEnv();
        if ((env.PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS ?? 'true') !== 'false') {
          const we = await this.o.kube.getWorkloadEntry(namespace, entryName);
          if (!we)
            throw Object.assign(
              new Error(
                `proxy metadata indicates that it must correspond to an existing WorkloadEntry, however WorkloadEntry ${namespace}/${entryName} is not found`,
              ),
              { grpc: GRPC.INTERNAL },
            );
          if (we.metadata.annotations?.['proxy.istio.io/health-checks-enabled'] !== undefined) {
            const sa = String((we.spec as { serviceAccount?: string } | undefined)?.serviceAccount ?? '');
            if (sa !== idm[2])
              throw Object.assign(
                new Error(`registration of WorkloadEntry service account mismatch: "${idm[2]}" vs "${sa}"`),
                { grpc: GRPC.INTERNAL },
              );
            proxy.workloadEntry = { namespace, name: entryName };
            proxy.staticEntry = true;
            healthEnabled = true;
          }
        }
      }
      this.proxies.set(proxy.id + '#' + proxy.connectedAt.getTime(), proxy);
      this.log(`ADS: new connection for node:${proxy.id}`);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc+json' });
      await push(true);
      const loop = () => {
        pushTimer = setTimeout(() => {
          void push()
            .catch(() => undefined)
            .finally(() => {
              if (!closed) loop();
            });
        }, this.o.pushIntervalMs ?? 1000);
        this.timers.add(pushTimer);
      };
      loop();
    };

    let first: Promise<void> | undefined;
    stream.on('data', (chunk: Buffer) => {
      let msgs: Buffer[];
      try {
        msgs = reader.push(chunk);
      } catch {
        return grpcError(stream, GRPC.INVALID_ARGUMENT, 'malformed message');
      }
      for (const m of msgs) {
        let req: DiscoveryRequest;
        try {
          req = JSON.parse(m.toString('utf8')) as DiscoveryRequest;
        } catch {
          return grpcError(stream, GRPC.INVALID_ARGUMENT, 'malformed DiscoveryRequest');
        }
        if (!first) {
          first = onFirst(req).catch((e: Error & { grpc?: number }) => {
            this.log(`ADS: connection rejected: ${e.message}`);
            grpcError(stream, e.grpc ?? GRPC.INTERNAL, e.message);
          });
        } else if (req.type_url === TYPE_HEALTH) {
          void first.then(() => {
            if (proxy?.workloadEntry && healthEnabled) {
              void this.writeHealth(proxy.workloadEntry, !req.error_detail, req.error_detail?.message ?? '').catch(
                (e) => this.log(`health: ${(e as Error).message}`),
              );
            }
          });
        }
      }
    });
    stream.on('close', () => {
      closed = true;
      if (pushTimer) {
        clearTimeout(pushTimer);
        this.timers.delete(pushTimer);
      }
      if (proxy) {
        this.proxies.delete(proxy.id + '#' + proxy.connectedAt.getTime());
        if (proxy.workloadEntry && !proxy.staticEntry && this.server)
          void this.onDisconnect(proxy).catch(() => undefined);
      }
    });
  }

  private async registerWorkload(
    proxy: ConnectedProxy,
    groupName: string,
    network: string,
    proxyLabels: Record<string, string>,
  ): Promise<{ entry: { namespace: string; name: string }; healthChecks: boolean } | undefined> {
    const env = await this.o.kube.istiodEnv();
    if ((env.PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION ?? 'true') === 'false') {
      this.log(
        `autoregistration: disabled (PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false); not registering ${proxy.id}`,
      );
      return undefined;
    }
    const group = await this.o.kube.getWorkloadGroup(proxy.namespace, groupName);
    if (!group) {
      throw Object.assign(
        new Error(
          `auto-registration WorkloadEntry of ${proxy.id} failed: cannot find WorkloadGroup ${proxy.namespace}/${groupName}`,
        ),
        {
          grpc: GRPC.INTERNAL,
        },
      );
    }
    const spec = (group.spec ?? {}) as {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      template?: Record<string, unknown> & { labels?: Record<string, string> };
      probe?: unknown;
    };
    const healthChecks = !!spec.probe && (env.PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS ?? 'true') !== 'false';
    const name = autoRegisteredEntryName(groupName, proxy.ip, network);
    const labels = { ...(spec.template?.labels ?? {}), ...(spec.metadata?.labels ?? {}), ...proxyLabels };
    const now = rfc3339Nano();
    const annotations: Record<string, string> = {
      ...(spec.metadata?.annotations ?? {}),
      'istio.io/autoRegistrationGroup': groupName,
      'istio.io/workloadController': this.podName,
      'istio.io/connectedAt': now,
    };
    if (healthChecks) annotations['proxy.istio.io/health-checks-enabled'] = 'true';
    const existing = await this.o.kube.getWorkloadEntry(proxy.namespace, name);
    if (existing) {
      await this.o.kube.patchWorkloadEntry(proxy.namespace, name, {
        metadata: { annotations: { ...annotations, 'istio.io/disconnectedAt': null } },
      });
    } else {
      const entry: KubeObjectLike = {
        apiVersion: 'networking.istio.io/v1',
        kind: 'WorkloadEntry',
        metadata: {
          name,
          namespace: proxy.namespace,
          annotations,
          labels,
          ownerReferences: [
            {
              apiVersion: 'networking.istio.io/v1',
              kind: 'WorkloadGroup',
              name: groupName,
              uid: group.metadata.uid ?? '',
              controller: true,
            },
          ],
        },
        spec: {
          ...(spec.template ?? {}),
          address: proxy.ip,
          labels,
          ...(network ? { network } : {}),
        },
      };
      await this.o.kube.createWorkloadEntry(entry);
    }
    this.log(`autoregistration: registered ${proxy.namespace}/${name} for ${proxy.id}`);
    return { entry: { namespace: proxy.namespace, name }, healthChecks };
  }

  private async onDisconnect(proxy: ConnectedProxy): Promise<void> {
    const we = proxy.workloadEntry!;
    const still = [...this.proxies.values()].some(
      (p) => p.workloadEntry?.name === we.name && p.workloadEntry.namespace === we.namespace,
    );
    if (still) return;
    await this.o.kube.patchWorkloadEntry(we.namespace, we.name, {
      metadata: { annotations: { 'istio.io/connectedAt': null, 'istio.io/disconnectedAt': rfc3339Nano() } },
    });
    const t = setTimeout(() => {
      this.timers.delete(t);
      const back = [...this.proxies.values()].some(
        (p) => p.workloadEntry?.name === we.name && p.workloadEntry.namespace === we.namespace,
      );
      if (!back && this.server) void this.o.kube.deleteWorkloadEntry(we.namespace, we.name).catch(() => undefined);
    }, this.o.cleanupGraceMs ?? 10_000);
    this.timers.add(t);
  }

  private async writeHealth(we: { namespace: string; name: string }, healthy: boolean, message: string): Promise<void> {
    const current = await this.o.kube.getWorkloadEntry(we.namespace, we.name);
    if (!current) return;
    const conds = (
      (current.status as { conditions?: Array<Record<string, string>> } | undefined)?.conditions ?? []
    ).filter(Boolean);
    const prev = conds.find((c) => c.type === 'Healthy');
    const now = rfc3339Nano();
    const status = healthy ? 'True' : 'False';
    const cond: Record<string, string> = {
      type: 'Healthy',
      status,
      lastProbeTime: now,
      lastTransitionTime: prev && prev.status === status ? (prev.lastTransitionTime ?? now) : now,
    };
    if (!healthy) {
      cond.reason = 'HealthCheckFailed';
      cond.message = message;
    }
    await this.o.kube.patchWorkloadEntryStatus(we.namespace, we.name, {
      status: { conditions: [...conds.filter((c) => c.type !== 'Healthy'), cond] },
    });
  }
}
