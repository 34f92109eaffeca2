// pilot-agent's control-plane side: fetch the workload certificate from istiod's CA (gRPC
// CreateCertificate with the bootstrap token), hold the ADS stream, apply CDS/LDS/NDS, ACK,
// report the app probe's health, and keep the Envoy stats the readiness probe reads.
import http2 from 'node:http2';
import dns from 'node:dns';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ADS_PATH,
  CREATE_CERTIFICATE_PATH,
  GrpcFrameReader,
  TYPE_CDS,
  TYPE_HEALTH,
  TYPE_LDS,
  TYPE_NDS,
  decodeCertificateResponse,
  encodeCertificateRequest,
  encodeJsonMessage,
  grpcFrame,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type LabCluster,
  type LabListener,
  type NameTable,
} from './wire.js';
import {
  ConfigError,
  PATHS,
  rooted,
  nodeId,
  nodeMetadata,
  readRootCert,
  readToken,
  type SidecarConfig,
} from './config.js';
import { createKeyAndCsr } from './identity.js';
import { log } from './log.js';
import type { StatsStore } from './stats.js';

export interface WorkloadSecret {
  chainPem: string[]; // leaf first, then root (as istiod returns it)
  keyPem: string;
  updated: Date;
}

export interface ProxyState {
  rootCertPem?: string;
  rootUpdated?: Date;
  secret?: WorkloadSecret;
  clusters: LabCluster[];
  listeners: LabListener[];
  nameTable: NameTable['table'];
  xdsConnected: boolean;
  startedAt: Date;
}

const CONNECT_TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 5000; // bounded: ~ many hours with the capped backoff

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(addr);
  if (!m) return { host: addr, port: 15012 };
  return { host: m[1]!, port: Number(m[2]) };
}

/** Go-like error text for the usual connection failures, as pilot-agent would log them. */
function describeConnectError(err: Error & { code?: string }, addr: string): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return `dial tcp ${addr}: connect: connection refused`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `dial tcp: lookup ${addr.replace(/:\d+$/, '')}: no such host`;
    case 'ETIMEDOUT':
      return `dial tcp ${addr}: i/o timeout`;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_SIGNATURE_FAILURE':
      return `transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority (${err.code})`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `transport: authentication handshake failed: tls: failed to verify certificate: x509: ${err.message}`;
    default:
      return `${err.code ?? 'error'}: ${err.message}`;
  }
}

/** With --root, names resolve from <root>/etc/hosts first (on a VM, getaddrinfo reads its /etc/hosts). */
export function rootedLookup(root: string): net.LookupFunction | undefined {
  if (!root) return undefined;
  return ((
    hostname: string,
    options: dns.LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void,
  ) => {
    let text = '';
    try {
      text = readFileSync(rooted(root, PATHS.hosts), 'utf8');
    } catch {
      /* fall through */
    }
    for (const line of text.split('\n')) {
      const [ip, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
      if (ip && names.includes(hostname)) {
        const family = net.isIPv6(ip) ? 6 : 4;
        if (options.all) return callback(null, [{ address: ip, family }]);
        return callback(null, ip, family);
      }
    }
    dns.lookup(hostname, options, callback as never);
  }) as net.LookupFunction;
}

let lookupOverride: net.LookupFunction | undefined;
export function setLookup(l: net.LookupFunction | undefined): void {
  lookupOverride = l;
}

function connect(addr: string, tlsOpts: http2.SecureClientSessionOptions): Promise<http2.ClientHttp2Session> {
  const { host, port } = splitHostPort(addr);
  if (lookupOverride) tlsOpts = { ...tlsOpts, lookup: lookupOverride };
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${host.includes(':') ? `[${host}]` : host}:${port}`, {
      ...tlsOpts,
      servername: host,
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    }, CONNECT_TIMEOUT_MS);
    session.once('connect', () => {
      clearTimeout(timer);
      resolve(session);
    });
    session.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export class CaRequestError extends Error {
  constructor(
    message: string,
    readonly grpcStatus?: number,
  ) {
    super(message);
  }
}

/** One CreateCertificate call. Returns the chain (leaf, …, root). */
export async function requestCertificate(
  caAddr: string,
  rootPem: string,
  token: string,
  csrPem: string,
  ttlSeconds: number,
): Promise<string[]> {
  let session: http2.ClientHttp2Session;
  try {
    session = await connect(caAddr, { ca: rootPem });
  } catch (e) {
    throw new CaRequestError(
      `rpc error: code = Unavailable desc = connection error: desc = "${describeConnectError(e as Error, caAddr)}"`,
    );
  }
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': CREATE_CERTIFICATE_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
        authorization: `Bearer ${token}`,
        clusterid: 'Kubernetes',
      });
      const reader = new GrpcFrameReader();
      const messages: Buffer[] = [];
      let status: number | undefined;
      let message = '';
      const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), 15_000);
      req.on('response', (h) => {
        if (h['grpc-status'] !== undefined) {
          status = Number(h['grpc-status']);
          message = decodeURIComponent(String(h['grpc-message'] ?? ''));
        }
      });
      req.on('trailers', (h) => {
        status = Number(h['grpc-status']);
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      });
      req.on('data', (c: Buffer) => messages.push(...reader.push(c)));
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(new CaRequestError(`rpc error: code = Unavailable desc = ${e.message}`));
      });
      req.on('close', () => {
        clearTimeout(timer);
        if (status === 0 && messages[0]) resolve(decodeCertificateResponse(messages[0]));
        else {
          const codeName =
            status === 16
              ? 'Unauthenticated'
              : status === 3
                ? 'InvalidArgument'
                : status === 7
                  ? 'PermissionDenied'
                  : `Code(${status ?? 'unknown'})`;
          reject(new CaRequestError(`rpc error: code = ${codeName} desc = ${message || 'no response'}`, status));
        }
      });
      req.end(grpcFrame(encodeCertificateRequest({ csr: csrPem, validitySeconds: ttlSeconds })));
    });
  } finally {
    session.close();
  }
}

export interface AgentHooks {
  onConfig?: () => void;
}

export class Agent {
  readonly state: ProxyState = {
    clusters: [],
    listeners: [],
    nameTable: {},
    xdsConnected: false,
    startedAt: new Date(),
  };
  private stopped = false;
  private session?: http2.ClientHttp2Session;
  private stream?: http2.ClientHttp2Stream;
  private lastHealth: { healthy: boolean; message: string } | undefined;
  private nonceSeq = 0;

  constructor(
    private readonly cfg: SidecarConfig,
    private readonly stats: StatsStore,
    private readonly hooks: AgentHooks = {},
  ) {
    for (const n of ['upstream_cx_active', 'upstream_cx_connect_fail', 'upstream_cx_total'])
      stats.define(`cluster.xds-grpc;.${n}`, n === 'upstream_cx_active' ? 'gauge' : 'counter');
    for (const p of ['cluster_manager.cds', 'listener_manager.lds'])
      for (const n of ['update_attempt', 'update_rejected', 'update_success']) stats.define(`${p}.${n}`, 'counter');
    stats.define('cluster_manager.cds.version', 'gauge');
    stats.define('control_plane.connected_state', 'gauge');
    stats.define('control_plane.pending_requests', 'gauge');
  }

  spiffeIdFor(trustDomain: string): string {
    return `spiffe://${trustDomain}/ns/${this.cfg.namespace}/sa/${this.cfg.serviceAccount}`;
  }

  /** Runs until stop(): obtain a cert (retrying), then hold the ADS stream (reconnecting). */
  async run(): Promise<void> {
    let backoff = 200;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS && !this.stopped; attempt++) {
      try {
        if (!this.state.secret) await this.fetchCertificate();
        await this.holdAds();
        backoff = 200;
      } catch (e) {
        const msg = (e as Error).message;
        if (e instanceof ConfigError) log('error', msg, 'cache');
        else if (e instanceof CaRequestError)
          log('warn', `ca request failed, starting attempt ${attempt} in ${backoff}ms: ${msg}`, 'ca');
        else log('warn', `XDS client connection error: ${msg}`, 'xds');
      }
      if (this.stopped) break;
      await delay(backoff);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }

  stop(): void {
    this.stopped = true;
    this.stream?.close();
    this.session?.destroy();
  }

  private async fetchCertificate(): Promise<void> {
    const token = readToken(this.cfg.root);
    const rootPem = readRootCert(this.cfg.root);
    this.state.rootCertPem = rootPem;
    this.state.rootUpdated = new Date();
    // The CSR carries the identity for the mesh trust domain; istiod/CA decides the final SAN.
    const { keyPem, csrPem } = createKeyAndCsr(this.spiffeIdFor(this.cfg.trustDomainHint || 'cluster.local'));
    const chain = await requestCertificate(this.cfg.caAddress, rootPem, token, csrPem, 24 * 3600);
    this.state.secret = { chainPem: chain, keyPem, updated: new Date() };
    log('info', `generated new workload certificate resourceName=default latency=0ms ttl=23h59m59s`, 'cache');
    log('info', 'Root cert has changed, start rotating root cert', 'cache');
  }

  private send(req: DiscoveryRequest): void {
    this.stream?.write(encodeJsonMessage(req));
  }

  private async holdAds(): Promise<void> {
    const secret = this.state.secret!;
    const rootPem = this.state.rootCertPem!;
    this.stats.inc('cluster.xds-grpc;.upstream_cx_total');
    let session: http2.ClientHttp2Session;
    try {
      session = await connect(this.cfg.discoveryAddress, {
        ca: rootPem,
        key: secret.keyPem,
        cert: secret.chainPem.join(''),
      });
    } catch (e) {
      this.stats.inc('cluster.xds-grpc;.upstream_cx_connect_fail');
      throw new Error(`connection error: desc = "${describeConnectError(e as Error, this.cfg.discoveryAddress)}"`, {
        cause: e,
      });
    }
    this.session = session;
    this.stats.set('cluster.xds-grpc;.upstream_cx_active', 1);
    log('info', `connected to upstream XDS server: ${this.cfg.discoveryAddress}`, 'xdsproxy');
    try {
      await new Promise<void>((resolve, reject) => {
        const stream = session.request(
          { ':method': 'POST', ':path': ADS_PATH, 'content-type': 'application/grpc+json', te: 'trailers' },
          { endStream: false },
        );
        this.stream = stream;
        const reader = new GrpcFrameReader();
        let grpcStatus: number | undefined;
        let grpcMessage = '';
        const onHeaders = (h: http2.IncomingHttpHeaders) => {
          if (h['grpc-status'] !== undefined) {
            grpcStatus = Number(h['grpc-status']);
            grpcMessage = decodeURIComponent(String(h['grpc-message'] ?? ''));
          }
        };
        stream.on('response', (h) => {
          onHeaders(h);
          if (grpcStatus !== undefined && grpcStatus !== 0) {
            reject(new Error(`rpc error: code = ${grpcStatus} desc = ${grpcMessage}`));
            stream.close();
          }
        });
        stream.on('trailers', onHeaders);
        stream.on('data', (chunk: Buffer) => {
          for (const m of reader.push(chunk)) this.onResponse(JSON.parse(m.toString('utf8')) as DiscoveryResponse);
        });
        stream.on('error', (e) => reject(e));
        stream.on('close', () => {
          if (grpcStatus !== undefined && grpcStatus !== 0)
            reject(new Error(`rpc error: code = ${grpcStatus} desc = ${grpcMessage}`));
          else if (this.stopped) resolve();
          else reject(new Error('rpc error: code = Unavailable desc = stream closed by istiod'));
        });
        session.on('close', () => resolve());
        const node = {
          id: nodeId(this.cfg),
          cluster: `${this.cfg.env.CANONICAL_SERVICE || 'istio-proxy'}.${this.cfg.namespace}`,
          metadata: nodeMetadata(this.cfg),
        };
        this.send({ node, type_url: TYPE_CDS });
        this.send({ type_url: TYPE_LDS });
        this.send({ type_url: TYPE_NDS });
        this.state.xdsConnected = true;
        this.stats.set('control_plane.connected_state', 1);
        if (this.lastHealth) this.sendHealth(this.lastHealth.healthy, this.lastHealth.message, true);
      });
    } finally {
      this.state.xdsConnected = false;
      this.stats.set('control_plane.connected_state', 0);
      this.stats.set('cluster.xds-grpc;.upstream_cx_active', 0);
      this.stream = undefined;
      session.destroy();
      this.session = undefined;
    }
  }

  private onResponse(res: DiscoveryResponse): void {
    const prefix =
      res.type_url === TYPE_CDS
        ? 'cluster_manager.cds'
        : res.type_url === TYPE_LDS
          ? 'listener_manager.lds'
          : undefined;
    if (prefix) this.stats.inc(`${prefix}.update_attempt`);
    let ok = true;
    let error = '';
    try {
      if (res.type_url === TYPE_CDS) {
        const clusters = res.resources as LabCluster[];
        if (!Array.isArray(clusters) || clusters.some((c) => !c.name || !Array.isArray(c.endpoints)))
          throw new Error('malformed cluster');
        this.state.clusters = clusters;
        this.stats.set('cluster_manager.cds.version', Number(BigInt.asUintN(63, BigInt(hashString(res.version_info)))));
      } else if (res.type_url === TYPE_LDS) {
        const listeners = res.resources as LabListener[];
        if (!Array.isArray(listeners)) throw new Error('malformed listener');
        this.state.listeners = listeners;
      } else if (res.type_url === TYPE_NDS) {
        this.state.nameTable = (res.resources[0] as NameTable | undefined)?.table ?? {};
      }
    } catch (e) {
      ok = false;
      error = (e as Error).message;
    }
    if (prefix) this.stats.inc(`${prefix}.${ok ? 'update_success' : 'update_rejected'}`);
    this.send({
      type_url: res.type_url,
      version_info: ok ? res.version_info : '',
      response_nonce: res.nonce,
      ...(ok ? {} : { error_detail: { code: 3, message: error } }),
    });
    this.nonceSeq++;
    this.hooks.onConfig?.();
  }

  /** Reports the application probe to istiod (sent on change, and again after a reconnect). */
  sendHealth(healthy: boolean, message: string, force = false): void {
    const changed = !this.lastHealth || this.lastHealth.healthy !== healthy;
    this.lastHealth = { healthy, message };
    if (!this.state.xdsConnected || (!changed && !force)) return;
    this.send({ type_url: TYPE_HEALTH, ...(healthy ? {} : { error_detail: { code: 500, message } }) });
  }
}

function hashString(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h;
}
