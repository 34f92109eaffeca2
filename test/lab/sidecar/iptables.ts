// `pilot-agent istio-iptables [--cleanup-only]`: the nat rules of Istio's REDIRECT mode, built from
// cluster.env (ISTIO_INBOUND_PORTS, ISTIO_LOCAL_EXCLUDE_PORTS, ISTIO_SERVICE_CIDR, DNS capture).
import { execFileSync } from 'node:child_process';
import type { SidecarConfig } from './config.js';

const CHAINS = ['ISTIO_INBOUND', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT', 'ISTIO_REDIRECT'];

/** The iptables-restore style rule list (table nat), in the order istio-iptables writes them. */
export function buildNatRules(cfg: SidecarConfig, proxyGid: string): string[][] {
  const r: string[][] = [];
  r.push(['-A', 'ISTIO_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15001']);
  r.push(['-A', 'ISTIO_IN_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15006']);
  const inbound = cfg.inboundPorts.trim();
  if (inbound) {
    r.push(['-A', 'PREROUTING', '-p', 'tcp', '-j', 'ISTIO_INBOUND']);
    if (inbound === '*') {
      for (const p of [15008, 15090, 15021, 15020, ...cfg.localExcludePorts]) r.push(['-A', 'ISTIO_INBOUND', '-p', 'tcp', '--dport', String(p), '-j', 'RETURN']);
      r.push(['-A', 'ISTIO_INBOUND', '-p', 'tcp', '-j', 'ISTIO_IN_REDIRECT']);
    } else {
      for (const p of inbound.split(',').map((s) => s.trim()).filter(Boolean)) {
        r.push(['-A', 'ISTIO_INBOUND', '-p', 'tcp', '--dport', p, '-j', 'ISTIO_IN_REDIRECT']);
      }
    }
  }
  r.push(['-A', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT']);
  r.push(['-A', 'ISTIO_OUTPUT', '-o', 'lo', '-s', '127.0.0.6/32', '-j', 'RETURN']);
  r.push(['-A', 'ISTIO_OUTPUT', '-m', 'owner', '--gid-owner', proxyGid, '-j', 'RETURN']);
  r.push(['-A', 'ISTIO_OUTPUT', '-d', '127.0.0.1/32', '-j', 'RETURN']);
  const cidr = (cfg.env.ISTIO_SERVICE_CIDR ?? '*').trim();
  if (cidr === '*') r.push(['-A', 'ISTIO_OUTPUT', '-j', 'ISTIO_REDIRECT']);
  else for (const c of cidr.split(',').filter(Boolean)) r.push(['-A', 'ISTIO_OUTPUT', '-d', c, '-j', 'ISTIO_REDIRECT']);
  if (cfg.dnsCapture) {
    r.push(['-A', 'OUTPUT', '-p', 'udp', '--dport', '53', '-m', 'owner', '!', '--gid-owner', proxyGid, '-j', 'REDIRECT', '--to-ports', '15053']);
    r.push(['-I', 'ISTIO_OUTPUT', '1', '-p', 'tcp', '--dport', '53', '-m', 'owner', '!', '--gid-owner', proxyGid, '-j', 'REDIRECT', '--to-ports', '15053']);
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

export function cleanupIptables(proxyGid: string): void {
  ipt(['-D', 'PREROUTING', '-p', 'tcp', '-j', 'ISTIO_INBOUND'], true);
  ipt(['-D', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT'], true);
  ipt(['-D', 'OUTPUT', '-p', 'udp', '--dport', '53', '-m', 'owner', '!', '--gid-owner', proxyGid, '-j', 'REDIRECT', '--to-ports', '15053'], true);
  for (const c of CHAINS) ipt(['-F', c], true);
  for (const c of CHAINS) ipt(['-X', c], true);
}

export function applyIptables(cfg: SidecarConfig, proxyGid: string): string[][] {
  cleanupIptables(proxyGid);
  for (const c of CHAINS) ipt(['-N', c]);
  const rules = buildNatRules(cfg, proxyGid);
  for (const rule of rules) ipt(rule);
  return rules;
}
