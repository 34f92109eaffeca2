// The east-west gateway's route to istiod when a cluster runs more than one revision: Istio exposes each
// istiod through the gateway on 15012 as TLS passthrough chosen by SNI (samples/multicluster/expose-istiod.yaml
// and expose-istiod-rev.yaml.tmpl: `sniHosts: istiod-REV.istio-system.svc` → `istiod-REV.istio-system.svc:15012`).
// A VM's hosts file points every istiod name at the gateway, and pilot-agent's TLS client sends the host of
// CA_ADDR / discoveryAddress as SNI (pilot/pkg/grpc/tls.go: `config.ServerName = host`), so the SNI alone
// tells which istiod a connection is for. This stand-in for that part of the gateway's Envoy reads the
// ClientHello's server_name, opens the chosen istiod and then only copies bytes: the TLS session is between
// pilot-agent and the real istiod, as through the gateway. Every wait is bounded; `stop` closes every socket.
import net from 'node:net';

export interface SniRoute {
  /** server_name of the ClientHello, e.g. istiod-canary.istio-system.svc. */
  sni: string;
  host: string;
  port: number;
}

export interface IstiodSniRouterOptions {
  listenHost: string;
  listenPort: number;
  routes: SniRoute[];
  /** Where a ClientHello without a matching server_name goes (the default revision's istiod). */
  fallback: { host: string; port: number };
  log?: (line: string) => void;
}

export interface IstiodSniRouter {
  /** How many connections went to each SNI (the fallback under ''), for tests. */
  readonly routed: ReadonlyMap<string, number>;
  /** Replaces the SNI routes for new connections (a lab fault removes one; open connections stay). */
  setRoutes(routes: SniRoute[]): void;
  stop(): Promise<void>;
}

/** A TLS record header (5 bytes) plus the largest record TLS allows. */
const MAX_HELLO_BYTES = 5 + 16_384;
const HELLO_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The server_name of a TLS ClientHello in `data` (RFC 8446 4.1.2, RFC 6066 3): a string, '' when the hello has
 * none, undefined when `data` does not yet hold the whole first record; throws when it is not a ClientHello.
 */
export function clientHelloServerName(data: Buffer): string | undefined {
  if (data.length < 5) return undefined;
  if (data[0] !== 0x16) throw new Error(`not a TLS handshake record (first byte 0x${data[0]!.toString(16)})`);
  const recordLength = data.readUInt16BE(3);
  if (data.length < 5 + recordLength) return undefined;
  const hello = data.subarray(5, 5 + recordLength);
  let at = 0;
  const need = (n: number): void => {
    if (at + n > hello.length) throw new Error('ClientHello cut short in its first record');
  };
  need(4);
  if (hello[0] !== 0x01) throw new Error(`not a ClientHello (handshake type ${hello[0]})`);
  at = 4 + 2 + 32; // type, length(3), legacy_version, random
  need(1);
  at += 1 + hello[at]!; // legacy_session_id
  need(2);
  at += 2 + hello.readUInt16BE(at); // cipher_suites
  need(1);
  at += 1 + hello[at]!; // legacy_compression_methods
  if (at === hello.length) return '';
  need(2);
  const extensionsEnd = at + 2 + hello.readUInt16BE(at);
  at += 2;
  while (at + 4 <= Math.min(extensionsEnd, hello.length)) {
    const type = hello.readUInt16BE(at);
    const length = hello.readUInt16BE(at + 2);
    at += 4;
    need(length);
    if (type === 0) {
      // server_name_list: length(2), then entries of name_type(1) length(2) name
      let entry = at + 2;
      while (entry + 3 <= at + length) {
        const nameType = hello[entry]!;
        const nameLength = hello.readUInt16BE(entry + 1);
        if (nameType === 0) return hello.subarray(entry + 3, entry + 3 + nameLength).toString('ascii');
        entry += 3 + nameLength;
      }
      return '';
    }
    at += length;
  }
  return '';
}

export async function startIstiodSniRouter(options: IstiodSniRouterOptions): Promise<IstiodSniRouter> {
  const sockets = new Set<net.Socket>();
  const routed = new Map<string, number>();
  let routes = [...options.routes];
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    track(client);
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => client.destroy(), HELLO_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      let sni: string | undefined;
      try {
        sni = clientHelloServerName(buffered);
        if (sni === undefined && buffered.length >= MAX_HELLO_BYTES) throw new Error('no ClientHello in 16 KiB');
      } catch (error) {
        options.log?.(`sni-router: closed a connection from ${client.remoteAddress}: ${String(error)}`);
        clearTimeout(timer);
        client.destroy();
        return;
      }
      if (sni === undefined) return;
      clearTimeout(timer);
      client.off('data', onData);
      client.pause();
      const route = routes.find((r) => r.sni === sni) ?? options.fallback;
      routed.set(sni, (routed.get(sni) ?? 0) + 1);
      const upstream = net.connect({ host: route.host, port: route.port, timeout: CONNECT_TIMEOUT_MS });
      track(upstream);
      upstream.once('connect', () => {
        upstream.setTimeout(0);
        upstream.write(buffered);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.once('timeout', () => upstream.destroy());
      const closeBoth = (): void => {
        client.destroy();
        upstream.destroy();
      };
      upstream.once('error', closeBoth);
      upstream.once('close', closeBoth);
      client.once('close', closeBoth);
    };
    client.on('data', onData);
    client.once('error', () => client.destroy());
    client.once('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenPort, options.listenHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  options.log?.(
    `sni-router on ${options.listenHost}:${options.listenPort}: ` +
      `${options.routes.map((r) => `${r.sni} → ${r.host}:${r.port}`).join(', ')}; ` +
      `others → ${options.fallback.host}:${options.fallback.port}`,
  );
  return {
    routed,
    setRoutes(next) {
      routes = [...next];
      options.log?.(
        `sni-router: routes now ${routes.map((r) => `${r.sni} → ${r.host}:${r.port}`).join(', ') || 'none'}`,
      );
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
