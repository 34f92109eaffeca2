// Data plane of the simulator: inbound 15006 (mTLS termination / PERMISSIVE plaintext / STRICT
// refusal, destination metrics, forward to 127.0.0.1:<port>) and outbound 15001 (HTTP to mesh
// services over mTLS with Istio SNI; other HTTP passed through; non-HTTP dropped).
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Agent } from './agent.js';
import type { SidecarConfig } from './config.js';
import { certFacts } from './identity.js';
import { log } from './log.js';
import { ISTIO_REQUEST_LABEL_ORDER, istioStatName, type StatsStore } from './stats.js';
import type { LabCluster } from './wire.js';

const HTTP_METHOD = /^(GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|CONNECT|TRACE) /;

/** Port from Istio SNI `outbound_.PORT_.SUBSET_.HOST`. */
export function portFromSni(sni: string | undefined): number | undefined {
  const m = /^outbound_\.(\d+)_\./.exec(sni ?? '');
  return m ? Number(m[1]) : undefined;
}

function portFromHost(host: string | undefined): number {
  const m = /:(\d+)$/.exec(host ?? '');
  return m ? Number(m[1]) : 80;
}

interface PeerInfo {
  mtls: boolean;
  principal: string;
  sni?: string;
}

/**
 * The socket as a plain Duplex that first yields the bytes we already read (TLS and HTTP servers
 * consume a net.Socket's handle directly, so `unshift` alone would lose the sniffed bytes).
 */
export function replayDuplex(socket: net.Socket, first: Buffer): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  d.push(first);
  socket.on('data', (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  return d;
}

export interface TrafficOptions {
  cfg: SidecarConfig;
  agent: Agent;
  stats: StatsStore;
  /** Lab fault: accept plaintext even under STRICT. */
  acceptPlaintext(): boolean;
}

function mtlsMode(agent: Agent): 'STRICT' | 'PERMISSIVE' | 'DISABLE' {
  return agent.state.listeners.find((l) => l.name === 'virtualInbound')?.mtls_mode ?? 'PERMISSIVE';
}

function ownPrincipal(agent: Agent): string {
  const leaf = agent.state.secret?.chainPem[0];
  return leaf ? (certFacts(leaf).uriSans[0] ?? 'unknown') : 'unknown';
}

function trustDomainOf(spiffe: string): string {
  return /^spiffe:\/\/([^/]+)\//.exec(spiffe)?.[1] ?? '';
}

export function createInboundServer(o: TrafficOptions): net.Server {
  const { cfg, agent, stats } = o;
  const httpServer = http.createServer((req, res) => {
    const sock = req.socket as unknown as { labPeer?: PeerInfo };
    const peer = sock.labPeer ?? { mtls: false, principal: 'unknown' };
    const port = portFromSni(peer.sni) ?? portFromHost(req.headers.host);
    const peerId = String(req.headers['x-envoy-peer-metadata-id'] ?? '');
    // x-envoy-peer-metadata-id: sidecar~IP~POD.NS~NS.svc.cluster.local
    const idm = /^sidecar~[^~]*~([^.~]+)\.([^~]+)~/.exec(peerId);
    const srcWorkload = String(req.headers['x-istio-lab-source-workload'] ?? '') || (idm?.[1] ?? 'unknown');
    const srcNs = idm?.[2] ?? /\/ns\/([^/]+)\//.exec(peer.principal)?.[1] ?? 'unknown';
    const record = (code: number) => {
      const labels: Record<string, string> = {
        reporter: 'destination',
        source_workload: srcWorkload,
        source_canonical_service: srcWorkload,
        source_canonical_revision: 'latest',
        source_workload_namespace: srcNs,
        source_principal: peer.mtls ? peer.principal : 'unknown',
        source_app: srcWorkload,
        source_version: 'unknown',
        source_cluster: peer.mtls ? cfg.env.ISTIO_META_CLUSTER_ID || 'Kubernetes' : 'unknown',
        destination_workload: cfg.env.ISTIO_META_WORKLOAD_NAME || cfg.env.CANONICAL_SERVICE || 'unknown',
        destination_workload_namespace: cfg.namespace,
        destination_principal: peer.mtls ? ownPrincipal(agent) : 'unknown',
        destination_app: cfg.labels.app ?? cfg.env.CANONICAL_SERVICE ?? 'unknown',
        destination_version: cfg.labels.version ?? 'unknown',
        destination_service: (req.headers.host ?? 'unknown').replace(/:\d+$/, ''),
        destination_canonical_service: cfg.env.CANONICAL_SERVICE || 'unknown',
        destination_canonical_revision: cfg.env.CANONICAL_REVISION || 'latest',
        destination_service_name: cfg.env.CANONICAL_SERVICE || 'unknown',
        destination_service_namespace: cfg.namespace,
        destination_cluster: cfg.env.ISTIO_META_CLUSTER_ID || 'unknown',
        request_protocol: 'http',
        response_code: String(code),
        grpc_response_status: '',
        response_flags: code === 503 ? 'UF' : '-',
        connection_security_policy: peer.mtls ? 'mutual_tls' : 'none',
      };
      stats.inc(istioStatName('istio_requests_total', labels, ISTIO_REQUEST_LABEL_ORDER));
    };
    const up = http.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, timeout: 10_000 },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        record(ur.statusCode ?? 502);
      },
    );
    up.on('timeout', () => up.destroy(new Error('upstream timeout')));
    up.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
      }
      record(503);
    });
    req.pipe(up);
  });

  const tlsServer = new tls.Server({
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: ['istio-http/1.1', 'istio', 'http/1.1'],
    SNICallback: (_name, cb) => {
      const s = agent.state.secret;
      if (!s || !agent.state.rootCertPem) return cb(new Error('no certificate yet'));
      cb(null, tls.createSecureContext({ key: s.keyPem, cert: s.chainPem.join(''), ca: agent.state.rootCertPem }));
    },
  });
  tlsServer.on('secureConnection', (ts: tls.TLSSocket) => {
    const cert = ts.getPeerCertificate();
    const san =
      (cert?.subjectaltname ?? '')
        .split(', ')
        .find((s) => s.startsWith('URI:'))
        ?.slice(4) ?? '';
    const myTd = trustDomainOf(ownPrincipal(agent));
    if (!ts.authorized || !san.startsWith(`spiffe://${myTd}/`)) {
      log('debug', `inbound TLS rejected: authorized=${ts.authorized} san=${san}`);
      ts.destroy();
      return;
    }
    (ts as tls.TLSSocket & { labPeer?: PeerInfo }).labPeer = {
      mtls: true,
      principal: san,
      sni: (ts as tls.TLSSocket & { servername?: string }).servername || undefined,
    };
    httpServer.emit('connection', ts);
  });
  tlsServer.on('tlsClientError', () => undefined);

  return net.createServer((socket) => {
    socket.once('error', () => socket.destroy());
    socket.setTimeout(30_000, () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.pause();
      if (first[0] === 0x16) {
        if (!agent.state.secret) return socket.destroy();
        tlsServer.emit('connection', replayDuplex(socket, first));
        return;
      }
      const mode = mtlsMode(agent);
      if (mode === 'STRICT' && !o.acceptPlaintext()) return socket.destroy(); // no plaintext filter chain
      if (!HTTP_METHOD.test(first.toString('latin1', 0, 16))) return socket.destroy(); // cannot attribute
      httpServer.emit('connection', replayDuplex(socket, first));
    });
  });
}

export function findCluster(clusters: LabCluster[], hostHeader: string | undefined): LabCluster | undefined {
  if (!hostHeader) return undefined;
  const port = portFromHost(hostHeader);
  const host = hostHeader.replace(/:\d+$/, '');
  return clusters.find((c) => {
    if (c.port !== port) return false;
    if (c.vip === host || c.host === host) return true;
    const [svc, ns] = c.host.split('.');
    return host === `${svc}.${ns}` || host === `${svc}.${ns}.svc`;
  });
}

export function createOutboundServer(o: TrafficOptions): net.Server {
  const { cfg, agent, stats } = o;
  const httpServer = http.createServer((req, res) => {
    const cluster = findCluster(agent.state.clusters, req.headers.host);
    const record = (code: number, c: LabCluster) => {
      const [svc, ns] = c.host.split('.');
      const labels: Record<string, string> = {
        reporter: 'source',
        source_workload: cfg.env.ISTIO_META_WORKLOAD_NAME || 'unknown',
        source_canonical_service: cfg.env.CANONICAL_SERVICE || 'unknown',
        source_canonical_revision: cfg.env.CANONICAL_REVISION || 'latest',
        source_workload_namespace: cfg.namespace,
        source_principal: ownPrincipal(agent),
        source_app: cfg.labels.app ?? 'unknown',
        source_version: cfg.labels.version ?? 'unknown',
        source_cluster: cfg.env.ISTIO_META_CLUSTER_ID || 'unknown',
        destination_workload: svc ?? 'unknown',
        destination_workload_namespace: ns ?? 'unknown',
        destination_principal: `spiffe://${trustDomainOf(ownPrincipal(agent))}/ns/${ns}/sa/${svc}`,
        destination_app: svc ?? 'unknown',
        destination_version: 'unknown',
        destination_service: c.host,
        destination_canonical_service: svc ?? 'unknown',
        destination_canonical_revision: 'latest',
        destination_service_name: svc ?? 'unknown',
        destination_service_namespace: ns ?? 'unknown',
        destination_cluster: 'Kubernetes',
        request_protocol: 'http',
        response_code: String(code),
        grpc_response_status: '',
        response_flags: code === 503 ? 'UF' : '-',
        connection_security_policy: 'unknown',
      };
      stats.inc(istioStatName('istio_requests_total', labels, ISTIO_REQUEST_LABEL_ORDER));
    };
    if (!cluster) {
      // PassthroughCluster: forward to the Host header's address (the proxy's own traffic is not captured).
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (!host) {
        res.writeHead(404);
        return res.end();
      }
      const up = http.request(
        {
          host,
          port: portFromHost(req.headers.host),
          method: req.method,
          path: req.url,
          headers: req.headers,
          timeout: 10_000,
        },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('timeout', () => up.destroy());
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(503);
        res.end();
      });
      req.pipe(up);
      return;
    }
    const ep = cluster.endpoints[0];
    const secret = agent.state.secret;
    if (!ep || !secret || !agent.state.rootCertPem) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('no healthy upstream');
      record(503, cluster);
      return;
    }
    const upOptions: https.RequestOptions & tls.ConnectionOptions = {
      host: ep.address,
      port: ep.port,
      method: req.method,
      path: req.url,
      headers: {
        ...req.headers,
        'x-envoy-peer-metadata-id': `sidecar~${cfg.instanceIp}~${cfg.podName}.${cfg.namespace}~${cfg.namespace}.svc.cluster.local`,
      },
      servername: `outbound_.${cluster.port}_._.${cluster.host}`,
      key: secret.keyPem,
      cert: secret.chainPem.join(''),
      ca: agent.state.rootCertPem,
      ALPNProtocols: ['istio-http/1.1', 'istio', 'http/1.1'],
      checkServerIdentity: () => undefined, // Istio verifies the SPIFFE SAN, not the hostname
      timeout: 10_000,
      agent: false,
    };
    const up = https.request(upOptions, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
      record(ur.statusCode ?? 502, cluster);
    });
    up.on('timeout', () => up.destroy(new Error('timeout')));
    up.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
      }
      record(503, cluster);
    });
    req.pipe(up);
  });
  return net.createServer((socket) => {
    socket.once('error', () => socket.destroy());
    socket.setTimeout(30_000, () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.pause();
      if (!HTTP_METHOD.test(first.toString('latin1', 0, 16))) return socket.destroy(); // no original-dst in Node
      httpServer.emit('connection', replayDuplex(socket, first));
    });
  });
}
