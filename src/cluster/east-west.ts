// The address VMs use to reach istiod through the east-west gateway: an explicit input, else the
// gateway Service's load-balancer IP, else its externalIPs, else its load-balancer hostname
// resolved by DNS (A and AAAA; AWS ELBs). istioctl stops at the first two and leaves the hostname
// case as a TODO. DNS answers of a load balancer rotate, so the choice is made stable: the
// numerically first IPv4 address, else the first IPv6 address; the others are reported.
import { isIP } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { ClusterConfigError } from './errors.js';

export type EastWestSource = 'input' | 'lb-ip' | 'external-ip' | 'lb-hostname';

export interface EastWestAddress {
  address: string;
  source: EastWestSource;
  /** The DNS name resolved, for `lb-hostname` (and `input` when the input was a name). */
  hostname?: string;
  /** Every address that could have been used, the chosen one included, in preference order. */
  candidates: string[];
}

export interface GatewayServiceLike {
  spec?: { externalIPs?: string[] };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } };
}

/** What the Service offers, before DNS. Pure. */
export type GatewayChoice =
  | { kind: 'address'; address: string; source: EastWestSource; candidates: string[] }
  | { kind: 'hostname'; hostname: string; source: EastWestSource; otherHostnames: string[] }
  | { kind: 'none' };

export function chooseFromService(svc: GatewayServiceLike | undefined): GatewayChoice {
  const ingress = svc?.status?.loadBalancer?.ingress ?? [];
  const ips = ingress.map((i) => i.ip).filter((ip): ip is string => !!ip && isIP(ip) !== 0);
  if (ips.length > 0) return { kind: 'address', address: ips[0]!, source: 'lb-ip', candidates: ips };
  const external = (svc?.spec?.externalIPs ?? []).filter((ip) => isIP(ip) !== 0);
  if (external.length > 0)
    return { kind: 'address', address: external[0]!, source: 'external-ip', candidates: external };
  const hostnames = ingress.map((i) => i.hostname).filter((h): h is string => !!h);
  if (hostnames.length > 0) {
    return { kind: 'hostname', hostname: hostnames[0]!, source: 'lb-hostname', otherHostnames: hostnames.slice(1) };
  }
  return { kind: 'none' };
}

function ipv4Key(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function expandIpv6(ip: string): string {
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const missing = ip.includes('::') ? 8 - h.length - t.length : 0;
  return [...h, ...Array(missing).fill('0'), ...t].map((g) => g.padStart(4, '0')).join(':');
}

/** Stable order of DNS answers: IPv4 numerically, then IPv6 by expanded form. Pure. */
export function orderResolvedAddresses(addresses: readonly string[]): string[] {
  const v4 = [...new Set(addresses.filter((a) => isIP(a) === 4))].sort((a, b) => ipv4Key(a) - ipv4Key(b));
  const v6 = [...new Set(addresses.filter((a) => isIP(a) === 6))].sort((a, b) =>
    expandIpv6(a).localeCompare(expandIpv6(b)),
  );
  return [...v4, ...v6];
}

/** One line for logs and the report: which address was used and why. */
export function describeEastWest(e: EastWestAddress): string {
  const from =
    e.source === 'input'
      ? 'the east-west address input'
      : e.source === 'lb-ip'
        ? 'the gateway Service load-balancer IP'
        : e.source === 'external-ip'
          ? 'the gateway Service externalIPs'
          : 'the gateway Service load-balancer hostname';
  const name = e.hostname ? ` ${e.hostname} resolved;` : '';
  const others = e.candidates.filter((c) => c !== e.address);
  return (
    `east-west gateway ${e.address} from ${from};${name} ` +
    `${others.length ? `other candidates: ${others.join(', ')}` : 'no other candidates'}`
  );
}

export interface HostnameResolver {
  resolve(hostname: string): Promise<string[]>;
}

/** `dns.Resolver` with optional servers (`127.0.0.1:5353`), bounded by timeout and tries. */
export function createDnsResolver(servers?: readonly string[], timeoutMs = 2000): HostnameResolver {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers && servers.length > 0) resolver.setServers([...servers]);
  const tolerant = async (f: () => Promise<string[]>): Promise<{ addrs: string[]; error?: string }> => {
    try {
      return { addrs: await f() };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return { addrs: [], error: code };
    }
  };
  return {
    async resolve(hostname: string): Promise<string[]> {
      const [a, aaaa] = await Promise.all([
        tolerant(() => resolver.resolve4(hostname)),
        tolerant(() => resolver.resolve6(hostname)),
      ]);
      const all = [...a.addrs, ...aaaa.addrs];
      if (all.length === 0) {
        const via = servers && servers.length ? ` via ${servers.join(', ')}` : '';
        throw new ClusterConfigError(
          `DNS name ${hostname} of the east-west gateway did not resolve${via} (A: ` +
            `${a.error ?? 'no answer'}, AAAA: ${aaaa.error ?? 'no answer'}); ` +
            'give the address explicitly (east-west address input) or fix DNS',
        );
      }
      return all;
    },
  };
}

/** Turns a hostname into a stable address choice. */
export async function resolveHostnameChoice(
  hostname: string,
  source: EastWestSource,
  resolver: HostnameResolver,
): Promise<EastWestAddress> {
  const ordered = orderResolvedAddresses(await resolver.resolve(hostname));
  const address = ordered[0];
  if (!address) throw new ClusterConfigError(`DNS name ${hostname} of the east-west gateway gave no usable address`);
  return { address, source, hostname, candidates: ordered };
}
