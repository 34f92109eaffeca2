// Envoy admin (127.0.0.1:15000), Envoy's prometheus listener (15090), pilot-agent's status server
// (15020) and Envoy's static readiness listener (15021). Formats follow shared/envoy-reference/.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { certFacts, rfc3339Seconds, type CertFacts } from './identity.js';
import type { Agent } from './agent.js';
import type { StatsStore } from './stats.js';
import { log } from './log.js';

/** Envoy/protobuf JSON: 1-space indent, `<`, `>`, `&` escaped as \u003c \u003e \u0026. */
export function envoyJson(value: unknown): string {
  return (
    JSON.stringify(value, null, 1).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026') + '\n'
  );
}

function certDetails(pem: string, now: Date, isCa: boolean): Record<string, unknown> {
  const f: CertFacts = certFacts(pem);
  const sans = isCa
    ? []
    : [
        ...f.uriSans.map((uri) => ({ uri })),
        ...f.dnsSans.map((dns) => ({ dns })),
        ...f.ipSans.map((ip_address) => ({ ip_address })),
      ];
  const days = Math.max(0, Math.floor((f.expiration.getTime() - now.getTime()) / 86_400_000));
  return {
    path: '<inline>',
    serial_number: f.serialNumber,
    subject_alt_names: sans,
    days_until_expiration: String(days),
    valid_from: rfc3339Seconds(f.validFrom),
    expiration_time: rfc3339Seconds(f.expiration),
  };
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

export interface AdminDeps {
  agent: Agent;
  stats: StatsStore;
  /** Number of TLS contexts using default/ROOTCA (inbound + one per mesh cluster). */
  tlsContextCount(): number;
  quit(): void;
}

function secretsDump(agent: Agent): Record<string, unknown>[] {
  const s = agent.state;
  const out: Record<string, unknown>[] = [];
  if (s.secret) {
    out.push({
      name: 'default',
      last_updated: s.secret.updated.toISOString(),
      secret: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
        name: 'default',
        tls_certificate: {
          certificate_chain: { inline_bytes: b64(s.secret.chainPem.join('')) },
          private_key: { inline_bytes: b64('[redacted]') },
        },
      },
    });
  }
  if (s.secret && s.rootCertPem) {
    out.push({
      name: 'ROOTCA',
      last_updated: (s.rootUpdated ?? s.startedAt).toISOString(),
      secret: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
        name: 'ROOTCA',
        validation_context: { trusted_ca: { inline_bytes: b64(s.rootCertPem) } },
      },
    });
  }
  return out;
}

function clustersDump(agent: Agent): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
    version_info: agent.state.clusters.length ? '1' : undefined,
    static_clusters: ['prometheus_stats', 'agent', 'sds-grpc', 'xds-grpc'].map((name) => ({
      cluster: {
        '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
        name,
        alt_stat_name: `${name};`,
        type: 'STATIC',
      },
      last_updated: agent.state.startedAt.toISOString(),
    })),
    dynamic_active_clusters: agent.state.clusters.map((c) => ({
      version_info: '1',
      cluster: {
        '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
        name: c.name,
        alt_stat_name: `${c.name};`,
        type: 'EDS',
        eds_cluster_config: {
          eds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
          service_name: c.name,
        },
      },
      last_updated: agent.state.startedAt.toISOString(),
    })),
  };
}

function listenersDump(agent: Agent): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
    version_info: agent.state.listeners.length ? '1' : undefined,
    static_listeners: [15090, 15021].map((port) => ({
      listener: {
        '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
        address: { socket_address: { address: '0.0.0.0', port_value: port } },
      },
      last_updated: agent.state.startedAt.toISOString(),
    })),
    dynamic_listeners: agent.state.listeners.map((l) => ({
      name: l.name,
      active_state: {
        version_info: '1',
        listener: {
          '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
          name: l.name,
          address: { socket_address: { address: '0.0.0.0', port_value: l.port } },
        },
        last_updated: agent.state.startedAt.toISOString(),
      },
    })),
  };
}

export function renderConfigDump(deps: AdminDeps, resource: string | null): string {
  const a = deps.agent;
  if (resource === 'dynamic_active_secrets') {
    return envoyJson({
      configs: secretsDump(a).map((s) => ({
        '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret',
        ...s,
      })),
    });
  }
  if (resource === 'dynamic_active_clusters') {
    return envoyJson({
      configs: (clustersDump(a).dynamic_active_clusters as object[]).map((c) => ({
        '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster',
        ...c,
      })),
    });
  }
  const configs = [
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump',
      bootstrap: {
        node: { id: `sidecar~${a.state ? '' : ''}`, user_agent_name: 'envoy' },
        stats_config: { stats_matcher: { inclusion_list: { patterns: [] } } },
      },
      last_updated: a.state.startedAt.toISOString(),
    },
    clustersDump(a),
    { '@type': 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump' },
    listenersDump(a),
    { '@type': 'type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump' },
    { '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump' },
    { '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump', dynamic_active_secrets: secretsDump(a) },
  ];
  return envoyJson({ configs });
}

export function renderCerts(deps: AdminDeps, now = new Date()): string {
  const s = deps.agent.state;
  if (!s.secret || !s.rootCertPem) return envoyJson({ certificates: [] });
  const ca = [certDetails(s.rootCertPem, now, true)];
  const chain = [certDetails(s.secret.chainPem[0]!, now, false)];
  const certificates = Array.from({ length: Math.max(1, deps.tlsContextCount()) }, () => ({
    ca_cert: ca,
    cert_chain: chain,
  }));
  return envoyJson({ certificates });
}

export interface HostStats {
  cx_active: number;
  cx_connect_fail: number;
  cx_total: number;
  rq_active: number;
  rq_error: number;
  rq_success: number;
  rq_timeout: number;
  rq_total: number;
}

export function renderClusters(deps: AdminDeps, hostStats: (cluster: string, host: string) => HostStats): string {
  const lines: string[] = [];
  const block = (
    name: string,
    addedViaApi: boolean,
    edsName: string | undefined,
    hosts: Array<{ host: string; healthy: boolean }>,
    defaults: number[],
    high: number[],
  ) => {
    lines.push(`${name}::observability_name::${name};`);
    const keys = ['max_connections', 'max_pending_requests', 'max_requests', 'max_retries'];
    keys.forEach((k, i) => lines.push(`${name}::default_priority::${k}::${defaults[i]}`));
    keys.forEach((k, i) => lines.push(`${name}::high_priority::${k}::${high[i]}`));
    lines.push(`${name}::added_via_api::${addedViaApi}`);
    if (edsName) lines.push(`${name}::eds_service_name::${edsName}`);
    for (const h of hosts) {
      const st = hostStats(name, h.host);
      for (const [k, v] of Object.entries(st).sort(([x], [y]) => (x < y ? -1 : 1)))
        lines.push(`${name}::${h.host}::${k}::${v}`);
      lines.push(`${name}::${h.host}::hostname::`);
      lines.push(`${name}::${h.host}::health_flags::${h.healthy ? 'healthy' : '/failed_active_hc'}`);
      lines.push(`${name}::${h.host}::weight::1`);
      for (const k of ['region', 'zone', 'sub_zone']) lines.push(`${name}::${h.host}::${k}::`);
      lines.push(
        `${name}::${h.host}::canary::false`,
        `${name}::${h.host}::priority::0`,
        `${name}::${h.host}::success_rate::-1`,
        `${name}::${h.host}::local_origin_success_rate::-1`,
      );
    }
  };
  const big = 4294967295;
  for (const c of deps.agent.state.clusters) {
    block(
      c.name,
      true,
      c.name,
      c.endpoints.map((e) => ({ host: `${e.address}:${e.port}`, healthy: true })),
      [big, big, big, big],
      [1024, 1024, 1024, 3],
    );
  }
  block(
    'xds-grpc',
    false,
    undefined,
    [{ host: './etc/istio/proxy/XDS', healthy: true }],
    [100000, 100000, 100000, 3],
    [100000, 100000, 100000, 3],
  );
  for (const name of ['agent', 'prometheus_stats']) {
    block(
      name,
      false,
      undefined,
      [{ host: name === 'agent' ? '127.0.0.1:15020' : '127.0.0.1:15000', healthy: true }],
      [1024, 1024, 1024, 3],
      [1024, 1024, 1024, 3],
    );
  }
  return lines.join('\n') + '\n';
}

function send(res: http.ServerResponse, code: number, body: string, type = 'text/plain; charset=UTF-8'): void {
  res.writeHead(code, {
    'content-type': type,
    'cache-control': 'no-cache, max-age=0',
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
}

export function createAdminServer(
  deps: AdminDeps,
  hostStats: (cluster: string, host: string) => HostStats,
): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname;
    try {
      if (p === '/stats') {
        const filter = url.searchParams.get('filter') ?? undefined;
        if (filter) {
          try {
            new RegExp(filter);
          } catch {
            return send(res, 400, `Invalid re2 regex`);
          }
        }
        return send(res, 200, deps.stats.renderText({ usedOnly: url.searchParams.has('usedonly'), filter }));
      }
      if (p === '/stats/prometheus') return send(res, 200, deps.stats.renderPrometheus(), 'text/plain; charset=UTF-8');
      if (p === '/certs') return send(res, 200, renderCerts(deps), 'application/json');
      if (p === '/config_dump')
        return send(res, 200, renderConfigDump(deps, url.searchParams.get('resource')), 'application/json');
      if (p === '/clusters') return send(res, 200, renderClusters(deps, hostStats));
      if (p === '/ready') return send(res, 200, 'LIVE\n');
      if (p === '/server_info') {
        return send(
          res,
          200,
          envoyJson({
            version: 'lab-simulator/1.0/Clean/RELEASE/BoringSSL',
            state: 'LIVE',
            hot_restart_version: 'disabled',
            command_line_options: { concurrency: 2, mode: 'Serve' },
            uptime_current_epoch: `${Math.floor((Date.now() - deps.agent.state.startedAt.getTime()) / 1000)}s`,
            uptime_all_epochs: `${Math.floor((Date.now() - deps.agent.state.startedAt.getTime()) / 1000)}s`,
            node: { id: '', user_agent_name: 'envoy' },
          }),
          'application/json',
        );
      }
      if (p === '/quitquitquit') {
        if (req.method !== 'POST') return send(res, 405, 'This endpoint requires POST.\n');
        send(res, 200, 'OK\n');
        setTimeout(() => deps.quit(), 50);
        return;
      }
      return send(
        res,
        404,
        'invalid path. admin commands are:\n  /certs\n  /clusters\n  /config_dump\n  /quitquitquit\n  /ready\n  /server_info\n  /stats\n  /stats/prometheus\n',
      );
    } catch (e) {
      send(res, 500, `${(e as Error).message}\n`);
    }
  });
}

/** pilot-agent's readiness: ask Envoy admin for stats, like status/ready/probe.go. */
export async function checkReady(adminPort: number): Promise<string | null> {
  const get = (path: string) =>
    new Promise<string>((resolve, reject) => {
      const r = http.get({ host: '127.0.0.1', port: adminPort, path, timeout: 3000 }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(b));
      });
      r.on('timeout', () => r.destroy(new Error('timeout')));
      r.on('error', reject);
    });
  const parse = (text: string) => {
    const m = new Map<string, number>();
    for (const l of text.split('\n')) {
      const i = l.indexOf(': ');
      if (i > 0) m.set(l.slice(0, i), Number(l.slice(i + 2)));
    }
    return m;
  };
  let s: Map<string, number>;
  try {
    s = parse(
      await get(
        '/stats?usedonly&filter=' +
          encodeURIComponent('^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$'),
      ),
    );
  } catch (e) {
    return `failed to get readiness stats: ${(e as Error).message}`;
  }
  const cs = s.get('cluster_manager.cds.update_success') ?? 0;
  const cr = s.get('cluster_manager.cds.update_rejected') ?? 0;
  const ls = s.get('listener_manager.lds.update_success') ?? 0;
  const lr = s.get('listener_manager.lds.update_rejected') ?? 0;
  const detail = `cds updates: ${cs} successful, ${cr} rejected; lds updates: ${ls} successful, ${lr} rejected`;
  if (cs === 0 && ls === 0) return `config not received from XDS server (is Istiod running?): ${detail}`;
  if (cs === 0 || ls === 0)
    return cr > 0 || lr > 0
      ? `config received from XDS server, but was rejected: ${detail}`
      : `config not fully received from XDS server: ${detail}`;
  let live: Map<string, number>;
  try {
    live = parse(
      await get('/stats?usedonly&filter=' + encodeURIComponent('^(server\\.state|listener_manager\\.workers_started)')),
    );
  } catch (e) {
    return `failed to get readiness stats: ${(e as Error).message}`;
  }
  const state = live.get('server.state');
  if (state !== 0)
    return `server is not live, current state is: ${['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'][state ?? 2]}`;
  if (live.get('listener_manager.workers_started') !== 1) return 'workers have not yet started';
  return null;
}

export interface StatusServerDeps {
  adminPort: number;
  stats: StatsStore;
  quit(): void;
}

/** pilot-agent status server (15020): /healthz/ready, /stats/prometheus (merged), /quitquitquit. */
export function createStatusServer(deps: StatusServerDeps): http.Server {
  let wasReady = false;
  let configSeen = false;
  return http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz/ready') {
      const reason = await checkReady(deps.adminPort);
      if (reason) {
        log('warn', `Envoy proxy is NOT ready: ${reason}`);
        wasReady = false;
        res.writeHead(503);
        return res.end();
      }
      if (!wasReady) log('info', 'Envoy proxy is ready');
      wasReady = true;
      configSeen = true;
      res.writeHead(200);
      return res.end();
    }
    if (url.pathname === '/stats/prometheus') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      return res.end(deps.stats.renderPrometheus());
    }
    if (url.pathname === '/quitquitquit' && req.method === 'POST') {
      res.writeHead(200);
      res.end();
      setTimeout(() => deps.quit(), 50);
      return;
    }
    void configSeen;
    res.writeHead(404);
    res.end();
  });
}

/** Envoy's static listener on 15021: only prefix /healthz/ready is routed to the agent (15020). */
export function createReadinessListener(statusPort: number): http.Server {
  return http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (!url.startsWith('/healthz/ready')) {
      res.writeHead(404, { 'content-length': '0' });
      return res.end();
    }
    const up = http.get({ host: '127.0.0.1', port: statusPort, path: url, timeout: 5000 }, (ur) => {
      res.writeHead(ur.statusCode ?? 503, { 'content-length': '0' });
      ur.resume();
      res.end();
    });
    up.on('timeout', () => up.destroy(new Error('timeout')));
    up.on('error', () => {
      const body = 'upstream connect error or disconnect/reset before headers. reset reason: connection failure';
      res.writeHead(503, { 'content-type': 'text/plain', 'content-length': String(body.length) });
      res.end(body);
    });
  });
}

export function listen(server: http.Server | import('node:net').Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}
