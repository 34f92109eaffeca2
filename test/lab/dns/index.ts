// Lab DNS: a UDP DNS server on loopback answering A/AAAA for the lab's names (the east-west gateway's
// LB hostname), NXDOMAIN for unknown names. The machine's resolver configuration is never touched:
// clients point at it explicitly (dns.Resolver#setServers, dig @127.0.0.1 -p PORT).
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import dnsPacket from 'dns-packet';

export interface LabDnsOptions {
  host?: string;
  /** 0 = a random free port. */
  port?: number;
  /** name → addresses (IPv4 answer A queries, IPv6 answer AAAA queries). */
  records: Record<string, string[]>;
  /** TTL of answers, seconds (default 5). */
  ttl?: number;
}

export interface LabDns {
  /** `127.0.0.1:PORT`, the form dns.Resolver#setServers accepts. */
  address: string;
  host: string;
  port: number;
  setRecords(records: Record<string, string[]>): void;
  /** Number of queries answered (for tests). */
  readonly queries: number;
  stop(): Promise<void>;
}

function normalize(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function toTable(records: Record<string, string[]>): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [name, addrs] of Object.entries(records)) {
    for (const a of addrs)
      if (!isIPv4(a) && !isIPv6(a)) throw new Error(`lab DNS: ${a} (for ${name}) is not an IP address`);
    m.set(normalize(name), [...addrs]);
  }
  return m;
}

export async function startLabDns(opts: LabDnsOptions): Promise<LabDns> {
  const host = opts.host ?? '127.0.0.1';
  const ttl = opts.ttl ?? 5;
  let table = toTable(opts.records);
  let queries = 0;
  const socket: Socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');

  function answer(msg: Buffer, rinfo: RemoteInfo): void {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return; // not DNS: drop, as a real server would
    }
    queries += 1;
    const question = query.questions?.[0];
    const answers: dnsPacket.Answer[] = [];
    let rcode: 'NOERROR' | 'NXDOMAIN' | 'FORMERR' | 'NOTIMP' = 'NOERROR';
    if (!question) rcode = 'FORMERR';
    else {
      const addrs = table.get(normalize(question.name));
      if (!addrs) rcode = 'NXDOMAIN';
      else {
        for (const a of addrs) {
          if (question.type === 'A' && isIPv4(a))
            answers.push({ type: 'A', name: question.name, ttl, class: 'IN', data: a });
          if (question.type === 'AAAA' && isIPv6(a))
            answers.push({ type: 'AAAA', name: question.name, ttl, class: 'IN', data: a });
        }
      }
      // A known name without records of the asked type: NOERROR with no answers (NODATA).
    }
    const response = dnsPacket.encode({
      id: query.id ?? 0,
      type: 'response',
      flags:
        dnsPacket.AUTHORITATIVE_ANSWER |
        ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
        (rcode === 'NXDOMAIN' ? 3 : rcode === 'FORMERR' ? 1 : 0),
      questions: query.questions ?? [],
      answers,
    });
    socket.send(response, rinfo.port, rinfo.address);
  }

  socket.on('message', answer);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(opts.port ?? 0, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {
    // UDP send errors to a vanished client are not fatal.
  });
  const port = socket.address().port;
  let stopped = false;
  return {
    address: `${isIPv6(host) ? `[${host}]` : host}:${port}`,
    host,
    port,
    setRecords(records) {
      table = toTable(records);
    },
    get queries() {
      return queries;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (stopped) return resolve();
        stopped = true;
        socket.close(() => resolve());
      }),
  };
}
