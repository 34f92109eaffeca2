// Reads the sidecar's inputs from Istio's real VM paths (prefixed by --root for standalone runs):
// cluster.env, the mesh config, the bootstrap token and the root cert.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMiniYaml } from './mini-yaml.js';
import type { StatsMatcherConfig } from './stats.js';

export const PATHS = {
  clusterEnv: '/var/lib/istio/envoy/cluster.env',
  sidecarEnv: '/var/lib/istio/envoy/sidecar.env',
  mesh: '/etc/istio/config/mesh',
  token: '/var/run/secrets/tokens/istio-token',
  rootCert: '/etc/certs/root-cert.pem',
  hosts: '/etc/hosts',
  resolvConf: '/etc/resolv.conf',
  crashLoopFlag: '/var/lib/istio/lab/crash-loop',
  plaintextFlag: '/var/lib/istio/lab/accept-plaintext',
  dnsBrokenFlag: '/var/lib/istio/lab/dns-capture-broken',
  certsDir: '/etc/certs',
} as const;

export function rooted(root: string, path: string): string {
  return root ? join(root, path) : path;
}

/** Parses a shell-sourceable `K='V'` file (istioctl's shellescape output). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    out[m[1]!] = unquoteShell(m[2]!);
  }
  return out;
}

function unquoteShell(v: string): string {
  let out = '';
  let i = 0;
  while (i < v.length) {
    const c = v[i]!;
    if (c === "'") {
      const end = v.indexOf("'", i + 1);
      out += v.slice(i + 1, end < 0 ? v.length : end);
      i = end < 0 ? v.length : end + 1;
    } else if (c === '"') {
      let j = i + 1;
      while (j < v.length && v[j] !== '"') {
        if (v[j] === '\\' && j + 1 < v.length) j++;
        out += v[j];
        j++;
      }
      i = j + 1;
    } else if (c === '\\' && i + 1 < v.length) {
      out += v[i + 1];
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

export interface HttpProbe {
  port: number;
  path: string;
  host?: string;
}

export interface SidecarConfig {
  root: string;
  env: Record<string, string>;
  discoveryAddress: string;
  caAddress: string;
  namespace: string;
  serviceAccount: string;
  trustDomainHint: string;
  instanceIp: string;
  podName: string;
  labels: Record<string, string>;
  proxyStatsMatcher: StatsMatcherConfig;
  readinessProbe?: HttpProbe;
  tcpProbePort?: number;
  probePeriodSeconds: number;
  inboundPorts: string;
  localExcludePorts: number[];
  dnsCapture: boolean;
  meshProxyMetadata: Record<string, string>;
}

export class ConfigError extends Error {}

function readText(root: string, path: string): string | undefined {
  const p = rooted(root, path);
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

/** Loads the configuration the same way istio-start.sh + pilot-agent combine it. */
export function loadSidecarConfig(root: string, processEnv: NodeJS.ProcessEnv): SidecarConfig {
  const meshText = readText(root, PATHS.mesh) ?? '';
  let mesh: Record<string, unknown> = {};
  try {
    mesh = (parseMiniYaml(meshText) as Record<string, unknown>) ?? {};
  } catch (e) {
    throw new ConfigError(`failed to read mesh config ${PATHS.mesh}: ${(e as Error).message}`);
  }
  const defaultConfig = (mesh.defaultConfig ?? {}) as Record<string, unknown>;
  const proxyMetadata: Record<string, string> = {};
  for (const [k, v] of Object.entries((defaultConfig.proxyMetadata ?? {}) as Record<string, unknown>))
    proxyMetadata[k] = String(v ?? '');
  const fileEnv = {
    ...parseEnvFile(readText(root, PATHS.sidecarEnv) ?? ''),
    ...parseEnvFile(readText(root, PATHS.clusterEnv) ?? ''),
  };
  // Precedence (lowest first): mesh proxyMetadata, cluster.env, explicit process env set by istio-start.sh.
  const env: Record<string, string> = { ...proxyMetadata, ...fileEnv };
  for (const k of ['INSTANCE_IP', 'POD_NAME', 'POD_NAMESPACE', 'ISTIO_SVC_IP']) {
    const v = processEnv[k];
    if (v) env[k] = v;
  }
  const sysNs = env.ISTIO_SYSTEM_NAMESPACE || 'istio-system';
  const discoveryAddress = String(defaultConfig.discoveryAddress || env.PILOT_ADDRESS || `istiod.${sysNs}.svc:15012`);
  const caAddress = env.CA_ADDR || discoveryAddress;
  let labels: Record<string, string> = {};
  if (env.ISTIO_METAJSON_LABELS) {
    try {
      labels = JSON.parse(env.ISTIO_METAJSON_LABELS) as Record<string, string>;
    } catch {
      throw new ConfigError('ISTIO_METAJSON_LABELS is not valid JSON');
    }
  }
  const matcher = (defaultConfig.proxyStatsMatcher ?? {}) as StatsMatcherConfig;
  const probe = (defaultConfig.readinessProbe ?? {}) as {
    periodSeconds?: number;
    httpGet?: { port?: number; path?: string; host?: string };
    tcpSocket?: { port?: number };
  };
  const instanceIp = env.INSTANCE_IP || env.ISTIO_SVC_IP || '';
  return {
    root,
    env,
    discoveryAddress,
    caAddress,
    namespace: env.POD_NAMESPACE || env.ISTIO_NAMESPACE || 'default',
    serviceAccount: env.SERVICE_ACCOUNT || 'default',
    trustDomainHint: env.TRUST_DOMAIN || '',
    instanceIp,
    podName: env.POD_NAME || processEnv.HOSTNAME || 'vm',
    labels,
    proxyStatsMatcher: matcher,
    readinessProbe: probe.httpGet?.port
      ? { port: Number(probe.httpGet.port), path: probe.httpGet.path ?? '/', host: probe.httpGet.host }
      : undefined,
    tcpProbePort: probe.tcpSocket?.port ? Number(probe.tcpSocket.port) : undefined,
    probePeriodSeconds: Number(probe.periodSeconds ?? 10) || 10,
    inboundPorts: env.ISTIO_INBOUND_PORTS ?? '*',
    localExcludePorts: (env.ISTIO_LOCAL_EXCLUDE_PORTS ?? '')
      .split(',')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0),
    dnsCapture: (env.ISTIO_META_DNS_CAPTURE ?? 'false') === 'true',
    meshProxyMetadata: proxyMetadata,
  };
}

export function readToken(root: string): string {
  const p = rooted(root, PATHS.token);
  if (!existsSync(p))
    throw new ConfigError(`failed to read token file "${PATHS.token}": open ${PATHS.token}: no such file or directory`);
  return readFileSync(p, 'utf8').trim();
}

export function readRootCert(root: string): string {
  const p = rooted(root, PATHS.rootCert);
  if (!existsSync(p))
    throw new ConfigError(
      `failed to read root cert "${PATHS.rootCert}": open ${PATHS.rootCert}: no such file or directory`,
    );
  return readFileSync(p, 'utf8');
}

/** Node metadata the agent sends to istiod: ISTIO_META_* (prefix stripped) + standard keys. */
export function nodeMetadata(cfg: SidecarConfig): Record<string, unknown> {
  const md: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg.env)) {
    if (k.startsWith('ISTIO_METAJSON_')) continue;
    if (k.startsWith('ISTIO_META_')) md[k.slice('ISTIO_META_'.length)] = v;
  }
  md.LABELS = cfg.labels;
  md.NAMESPACE = cfg.namespace;
  md.SERVICE_ACCOUNT = cfg.serviceAccount;
  md.INSTANCE_IPS = cfg.instanceIp;
  md.ENVOY_STATUS_PORT = 15021;
  md.ENVOY_PROMETHEUS_PORT = 15090;
  if (cfg.env.CANONICAL_SERVICE) md.CANONICAL_SERVICE = cfg.env.CANONICAL_SERVICE;
  if (cfg.env.CANONICAL_REVISION) md.CANONICAL_REVISION = cfg.env.CANONICAL_REVISION;
  return md;
}

export function nodeId(cfg: SidecarConfig): string {
  return `sidecar~${cfg.instanceIp}~${cfg.podName}.${cfg.namespace}~${cfg.namespace}.svc.cluster.local`;
}
