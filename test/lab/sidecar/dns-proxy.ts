// pilot-agent's DNS proxy (127.0.0.1:15053, UDP+TCP): answers A queries for mesh names from the
// NameTable istiod sent (NDS); forwards everything else to the VM's original resolver.
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import type { NameTable } from './wire.js';

interface Question {
  name: string;
  type: number;
  qclass: number;
  end: number;
}

function readName(buf: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = offset;
  for (let i = 0; i < 128; i++) {
    const len = buf[pos];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) return { name: labels.join('.'), end: pos + 1 };
    if ((len & 0xc0) === 0xc0) throw new Error('compressed question name');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  throw new Error('name too long');
}

export function parseQuestion(msg: Buffer): Question | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) < 1) return undefined;
  const { name, end } = readName(msg, 12);
  return {
    name: name.toLowerCase().replace(/\.$/, ''),
    type: msg.readUInt16BE(end),
    qclass: msg.readUInt16BE(end + 2),
    end: end + 4,
  };
}

export function buildAnswer(query: Buffer, q: Question, ips: string[]): Buffer {
  const header = Buffer.from(query.subarray(0, 12));
  const flags = 0x8000 | (query.readUInt16BE(2) & 0x0100) | 0x0400 | 0x0080; // QR, RD copied, AA, RA
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(1, 4);
  const v4 = q.type === 1 ? ips.filter((ip) => net.isIPv4(ip)) : [];
  header.writeUInt16BE(v4.length, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  const question = query.subarray(12, q.end);
  const answers = v4.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(1, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(30, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
    return rr;
  });
  return Buffer.concat([header, question, ...answers]);
}

export function upstreamResolver(resolvConfPath: string): string | undefined {
  try {
    const m = /^\s*nameserver\s+(\S+)/m.exec(readFileSync(resolvConfPath, 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}

export interface DnsProxyOptions {
  nameTable(): NameTable['table'];
  /** Lab fault dns-capture-broken: stop answering mesh names. */
  broken(): boolean;
  resolvConf: string;
}

export function lookupMeshName(table: NameTable['table'], name: string): string[] | undefined {
  return table[name]?.ips;
}

function forwardUdp(upstream: string, msg: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(net.isIPv6(upstream) ? 'udp6' : 'udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, 3000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.on('error', () => {
      clearTimeout(t);
      s.close();
      resolve(undefined);
    });
    s.send(msg, 53, upstream);
  });
}

async function answer(o: DnsProxyOptions, msg: Buffer): Promise<Buffer | undefined> {
  let q: Question | undefined;
  try {
    q = parseQuestion(msg);
  } catch {
    return undefined;
  }
  if (q && !o.broken()) {
    const ips = lookupMeshName(o.nameTable(), q.name);
    if (ips) return buildAnswer(msg, q, ips);
  }
  const up = upstreamResolver(o.resolvConf);
  if (!up || up.startsWith('127.')) return undefined; // never loop back into ourselves
  return forwardUdp(up, msg);
}

export interface DnsProxy {
  close(): void;
}

export async function startDnsProxy(o: DnsProxyOptions, port = 15053, host = '127.0.0.1'): Promise<DnsProxy> {
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    void answer(o, msg).then((r) => r && udp.send(r, rinfo.port, rinfo.address));
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, host, () => resolve());
  });
  const tcp = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => sock.destroy());
    sock.setTimeout(10_000, () => sock.destroy());
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void answer(o, msg).then((r) => {
          if (!r) return sock.end();
          const l = Buffer.alloc(2);
          l.writeUInt16BE(r.length, 0);
          sock.write(Buffer.concat([l, r]));
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });
  return {
    close() {
      udp.close();
      tcp.close();
    },
  };
}
