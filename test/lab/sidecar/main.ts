// Envoy/pilot-agent simulator, bundled into the lab's istio-sidecar.deb as
// /usr/local/lib/istio-lab/sidecar.mjs and run by /usr/local/bin/{pilot-agent,envoy}.
// Subcommands: `proxy`, `istio-iptables [--cleanup-only]`; `--root DIR` prefixes every path and
// `--port-offset N` / `--bind ADDR` let tests run it standalone on loopback.
import http from 'node:http';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { Agent, rootedLookup, setLookup } from './agent.js';
import {
  createAdminServer,
  createReadinessListener,
  createStatusServer,
  checkReady,
  listen,
  type HostStats,
} from './admin.js';
import { ConfigError, PATHS, loadSidecarConfig, rooted, type SidecarConfig } from './config.js';
import { startDnsProxy } from './dns-proxy.js';
import { applyIptables, cleanupIptables, proxyOwnerFromEnv } from './iptables.js';
import { log } from './log.js';
import { StatsMatcher, StatsStore } from './stats.js';
import { createInboundServer, createOutboundServer } from './traffic.js';

interface Args {
  command: string;
  root: string;
  portOffset: number;
  bind: string;
  cleanupOnly: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    command: argv[0] ?? '',
    root: process.env.ISTIO_LAB_ROOT ?? '',
    portOffset: 0,
    bind: '0.0.0.0',
    cleanupOnly: false,
  };
  for (let i = 1; i < argv.length; i++) {
    const v = argv[i]!;
    if (v === '--root') a.root = argv[++i] ?? '';
    else if (v === '--port-offset') a.portOffset = Number(argv[++i] ?? 0);
    else if (v === '--bind') a.bind = argv[++i] ?? '0.0.0.0';
    else if (v === '--cleanup-only') a.cleanupOnly = true;
  }
  return a;
}

function probeOnce(cfg: SidecarConfig): Promise<{ healthy: boolean; message: string }> {
  return new Promise((resolve) => {
    if (cfg.readinessProbe) {
      const { port, path } = cfg.readinessProbe;
      const host = cfg.readinessProbe.host || '127.0.0.1';
      const url = `http://${host}:${port}${path}`;
      const r = http.get({ host, port, path, timeout: 1000 }, (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(
          code >= 200 && code < 400
            ? { healthy: true, message: '' }
            : { healthy: false, message: `HTTP probe failed with statuscode: ${code}` },
        );
      });
      r.on('timeout', () => r.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      r.on('error', (e: Error & { code?: string }) =>
        resolve({
          healthy: false,
          message: `Get "${url}": dial tcp ${host}:${port}: ${e.code === 'ECONNREFUSED' ? 'connect: connection refused' : e.code === 'ETIMEDOUT' ? 'i/o timeout' : e.message}`,
        }),
      );
      return;
    }
    const port = cfg.tcpProbePort!;
    const s = net.connect({ host: '127.0.0.1', port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve({ healthy: true, message: '' });
    });
    s.once('timeout', () => s.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    s.once('error', (e: Error & { code?: string }) =>
      resolve({
        healthy: false,
        message: `dial tcp 127.0.0.1:${port}: ${e.code === 'ECONNREFUSED' ? 'connect: connection refused' : 'i/o timeout'}`,
      }),
    );
  });
}

async function runProxy(args: Args): Promise<void> {
  if (existsSync(rooted(args.root, PATHS.crashLoopFlag))) {
    log('error', 'failed to start envoy: exit status 1 (lab fault: sidecar-crash-loop)');
    process.exit(1);
  }
  let cfg: SidecarConfig;
  try {
    cfg = loadSidecarConfig(args.root, process.env);
  } catch (e) {
    log('error', e instanceof ConfigError ? e.message : String(e));
    process.exit(1);
  }
  setLookup(rootedLookup(args.root));
  const started = Date.now();
  const stats = new StatsStore(new StatsMatcher(cfg.proxyStatsMatcher));
  for (const [n, k, v] of [
    ['server.state', 'gauge', 2],
    ['server.live', 'gauge', 0],
    ['server.concurrency', 'gauge', 2],
    ['server.hot_restart_epoch', 'gauge', 0],
    ['server.version', 'gauge', 0],
    ['server.uptime', 'gauge', 0],
    ['server.total_connections', 'gauge', 0],
    ['server.days_until_first_cert_expiring', 'gauge', 0],
    ['listener_manager.workers_started', 'gauge', 0],
    ['listener_manager.total_listeners_active', 'gauge', 0],
    ['cluster_manager.active_clusters', 'gauge', 4],
    ['cluster_manager.warming_clusters', 'gauge', 0],
  ] as const) {
    stats.define(n, k);
    stats.set(n, v);
  }
  const port = (p: number) => p + args.portOffset;
  const agent = new Agent(cfg, stats, {
    onConfig: () => {
      stats.set('cluster_manager.active_clusters', 4 + agent.state.clusters.length);
      stats.set('listener_manager.total_listeners_active', 2 + agent.state.listeners.length);
    },
  });
  const servers: Array<{ close(): void }> = [];
  const quit = () => {
    log('info', 'Agent draining Proxy');
    agent.stop();
    for (const s of servers) s.close();
    setTimeout(() => process.exit(0), 100).unref();
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  const hostStats = (): HostStats => ({
    cx_active: 0,
    cx_connect_fail: 0,
    cx_total: 0,
    rq_active: 0,
    rq_error: 0,
    rq_success: 0,
    rq_timeout: 0,
    rq_total: 0,
  });
  const deps = { agent, stats, tlsContextCount: () => 1 + agent.state.clusters.length, quit };
  const admin = createAdminServer(deps, hostStats);
  const status = createStatusServer({ adminPort: port(15000), stats, quit });
  const prom = http.createServer((req, res) => {
    if ((req.url ?? '').startsWith('/stats/prometheus')) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' });
      return res.end(stats.renderPrometheus());
    }
    res.writeHead(404);
    res.end();
  });
  const ready = createReadinessListener(port(15020));
  const fault = (flag: string) => () => existsSync(rooted(args.root, flag));
  const inbound = createInboundServer({ cfg, agent, stats, acceptPlaintext: fault(PATHS.plaintextFlag) });
  const outbound = createOutboundServer({ cfg, agent, stats, acceptPlaintext: () => false });
  try {
    await listen(admin, port(15000), '127.0.0.1');
    await listen(status, port(15020), args.bind);
    await listen(prom, port(15090), args.bind);
    await listen(ready, port(15021), args.bind);
    await listen(inbound, port(15006), args.bind);
    await listen(outbound, port(15001), args.bind);
    servers.push(admin, status, prom, ready, inbound, outbound);
    if (cfg.dnsCapture) {
      servers.push(
        await startDnsProxy(
          {
            nameTable: () => agent.state.nameTable,
            broken: fault(PATHS.dnsBrokenFlag),
            resolvConf: rooted(args.root, PATHS.resolvConf),
          },
          port(15053),
          '127.0.0.1',
        ),
      );
    }
  } catch (e) {
    log('error', `failed to start listeners: ${(e as Error).message}`);
    process.exit(1);
  }
  stats.set('server.state', 0);
  stats.set('server.live', 1);
  stats.set('listener_manager.workers_started', 1);
  stats.recordInitializationTime(Date.now() - started);
  log(
    'info',
    `Starting proxy agent: discovery ${cfg.discoveryAddress}, CA ${cfg.caAddress}, namespace ${cfg.namespace}, service account ${cfg.serviceAccount}`,
  );

  const crashWatch = setInterval(() => {
    if (existsSync(rooted(args.root, PATHS.crashLoopFlag))) {
      log('error', 'Envoy exited with error: signal: segmentation fault (lab fault: sidecar-crash-loop)');
      process.exit(1);
    }
  }, 1000);
  crashWatch.unref();
  const uptime = setInterval(() => {
    stats.set('server.uptime', Math.floor((Date.now() - started) / 1000));
    const leaf = agent.state.secret?.chainPem[0];
    if (leaf)
      stats.set(
        'server.days_until_first_cert_expiring',
        Math.max(0, Math.floor((Date.parse(new X509Certificate(leaf).validTo) - Date.now()) / 86_400_000)),
      );
  }, 1000);
  uptime.unref();
  // The agent notices readiness itself too (logs the real NOT ready lines while it waits).
  const readyLog = setInterval(() => {
    void checkReady(port(15000)).then((reason) => {
      if (reason) log('warn', `Envoy proxy is NOT ready: ${reason}`);
    });
  }, 15_000);
  readyLog.unref();
  if (cfg.readinessProbe || cfg.tcpProbePort) {
    const tick = async () => {
      const r = await probeOnce(cfg);
      agent.sendHealth(r.healthy, r.message);
    };
    void tick();
    const t = setInterval(() => void tick(), cfg.probePeriodSeconds * 1000);
    t.unref();
  }
  await agent.run();
}

function runIptables(args: Args): void {
  const owner = proxyOwnerFromEnv(process.env);
  if (args.cleanupOnly) {
    cleanupIptables(owner);
    log('info', 'iptables cleanup done');
    return;
  }
  const cfg = loadSidecarConfig(args.root, process.env);
  const rules = applyIptables(cfg, owner);
  for (const r of rules) log('info', `iptables -t nat ${r.join(' ')}`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  switch (args.command) {
    case 'proxy':
      return runProxy(args);
    case 'istio-iptables':
      return runIptables(args);
    case 'version':
    case '--version':
      process.stdout.write('pilot-agent version: lab-simulator 1.0\n');
      return;
    default:
      process.stderr.write(`usage: pilot-agent proxy [--root DIR] | pilot-agent istio-iptables [--cleanup-only]\n`);
      process.exit(64);
  }
}

void main().catch((e) => {
  log('error', (e as Error).stack ?? String(e));
  process.exit(1);
});
