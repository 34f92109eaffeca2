// `pilot-agent istio-iptables [--cleanup-only]`: the nat rules of Istio's REDIRECT mode, built from
// cluster.env (ISTIO_INBOUND_PORTS, ISTIO_LOCAL_EXCLUDE_PORTS, ISTIO_SERVICE_CIDR, DNS capture).
// Like Istio's istio-iptables, the capture spares the proxy's own traffic by owner: `--uid-owner
// PROXY_UID` and `--gid-owner PROXY_GID` RETURN rules, where PROXY_UID defaults to the uid of
// ENVOY_USER (istio-proxy; 1337 when there is no such user) and PROXY_GID defaults to PROXY_UID
// (the same number, not the istio-proxy group's gid). The `-o lo` owner rules of Istio are left out.
import { execFileSync } from 'node:child_process';
import type { SidecarConfig } from './config.js';

const CHAINS = ['ISTIO_INBOUND', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT', 'ISTIO_REDIRECT'];

/** Istio's DefaultProxyUID, used when ENVOY_USER does not exist. */
export const DEFAULT_PROXY_UID = '1337';

/** Whose traffic the capture spares (numeric ids, as istio-iptables writes them). */
export interface ProxyOwner {
  uid: string;
  gid: string;
}

/**
 * istio-iptables' defaults: PROXY_UID (or `-u`), else the uid of ENVOY_USER (default istio-proxy),
 * else 1337; PROXY_GID (or `-g`), else the same value as the uid.
 */
export function proxyOwnerFromEnv(
  env: NodeJS.ProcessEnv,
  lookupUid: (user: string) => string | undefined = lookupUserUid,
): ProxyOwner {
  const uid = env.PROXY_UID || lookupUid(env.ENVOY_USER || 'istio-proxy') || DEFAULT_PROXY_UID;
  return { uid, gid: env.PROXY_GID || uid };
}

function lookupUserUid(user: string): string | undefined {
  try {
    const out = execFileSync('id', ['-u', '--', user], {
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5_000,
      encoding: 'utf8',
    }).trim();
    return /^\d+$/.test(out) ? out : undefined;
  } catch {
    return undefined;
  }
}

/** `-m owner` negations matching neither the proxy's uid nor its gid (the DNS capture's "not the proxy"). */
function notProxy(owner: ProxyOwner): string[] {
  return ['-m', 'owner', '!', '--uid-owner', owner.uid, '!', '--gid-owner', owner.gid];
}

/** The iptables-restore style rule list (table nat), in the order istio-iptables writes them. */
export function buildNatRules(cfg: SidecarConfig, owner: ProxyOwner): string[][] {
  const r: string[][] = [];
  r.push(['-A', 'ISTIO_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15001']);
  r.push(['-A', 'ISTIO_IN_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15006']);
  const inbound = cfg.inboundPorts.trim();
  if (inbound) {
    r.push(['-A', 'PREROUTING', '-p', 'tcp', '-j', 'ISTIO_INBOUND']);
    if (inbound === '*') {
      for (const p of [15008, 15090, 15021, 15020, ...cfg.localExcludePorts])
        r.push(['-A', 'ISTIO_INBOUND', '-p', 'tcp', '--dport', String(p), '-j', 'RETURN']);
      r.push(['-A', 'ISTIO_INBOUND', '-p', 'tcp', '-j', 'ISTIO_IN_REDIRECT']);
    } else {
      for (const p of inbound
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        r.push(['-A', 'ISTIO_INBOUND', '-p', 'tcp', '--dport', p, '-j', 'ISTIO_IN_REDIRECT']);
      }
    }
  }
  r.push(['-A', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT']);
  r.push(['-A', 'ISTIO_OUTPUT', '-o', 'lo', '-s', '127.0.0.6/32', '-j', 'RETURN']);
  r.push(['-A', 'ISTIO_OUTPUT', '-m', 'owner', '--uid-owner', owner.uid, '-j', 'RETURN']);
  r.push(['-A', 'ISTIO_OUTPUT', '-m', 'owner', '--gid-owner', owner.gid, '-j', 'RETURN']);
  r.push(['-A', 'ISTIO_OUTPUT', '-d', '127.0.0.1/32', '-j', 'RETURN']);
  const cidr = (cfg.env.ISTIO_SERVICE_CIDR ?? '*').trim();
  if (cidr === '*') r.push(['-A', 'ISTIO_OUTPUT', '-j', 'ISTIO_REDIRECT']);
  else for (const c of cidr.split(',').filter(Boolean)) r.push(['-A', 'ISTIO_OUTPUT', '-d', c, '-j', 'ISTIO_REDIRECT']);
  if (cfg.dnsCapture) {
    r.push(['-A', 'OUTPUT', '-p', 'udp', '--dport', '53', ...notProxy(owner), '-j', 'REDIRECT', '--to-ports', '15053']);
    r.push([
      '-I',
      'ISTIO_OUTPUT',
      '1',
      '-p',
      'tcp',
      '--dport',
      '53',
      ...notProxy(owner),
      '-j',
      'REDIRECT',
      '--to-ports',
      '15053',
    ]);
  }
  return r;
}

function ipt(args: string[], allowFail = false): void {
  try {
    execFileSync('iptables', ['-w', '5', '-t', 'nat', ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
  } catch (e) {
    if (!allowFail) throw e;
  }
}

export function cleanupIptables(owner: ProxyOwner): void {
  ipt(['-D', 'PREROUTING', '-p', 'tcp', '-j', 'ISTIO_INBOUND'], true);
  ipt(['-D', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT'], true);
  ipt(
    ['-D', 'OUTPUT', '-p', 'udp', '--dport', '53', ...notProxy(owner), '-j', 'REDIRECT', '--to-ports', '15053'],
    true,
  );
  for (const c of CHAINS) ipt(['-F', c], true);
  for (const c of CHAINS) ipt(['-X', c], true);
}

export function applyIptables(cfg: SidecarConfig, owner: ProxyOwner): string[][] {
  cleanupIptables(owner);
  for (const c of CHAINS) ipt(['-N', c]);
  const rules = buildNatRules(cfg, owner);
  for (const rule of rules) ipt(rule);
  return rules;
}
