// Serves the lab's sidecar packages over HTTP at Istio's release URL layout,
// http://GATEWAY:8081/releases/<version>/deb/<istio-sidecar[-arch].deb> (+ `.sha256`), reachable from the VMs.
import { createReadStream } from 'node:fs';
import { createServer, type Server } from 'node:http';

export const PACKAGE_PORT = 8081;

export interface ServedPackage {
  version: string;
  fileName: string;
  path: string;
  sha256: string;
  sizeBytes: number;
}

export function packageUrlPath(version: string, fileName: string): string {
  return `/releases/${version}/deb/${fileName}`;
}

export interface PackageServer {
  server: Server;
  /** Requests served so far, by URL path (for benchmarks and tests). */
  requests: Map<string, number>;
  close(): Promise<void>;
}

export function startPackageServer(
  host: string,
  port: number,
  packages: ServedPackage[],
  log: (line: string) => void,
): Promise<PackageServer> {
  const byPath = new Map<string, ServedPackage>();
  for (const p of packages) byPath.set(packageUrlPath(p.version, p.fileName), p);
  const requests = new Map<string, number>();
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0] as string;
    requests.set(url, (requests.get(url) ?? 0) + 1);
    const isSha = url.endsWith('.sha256');
    const pkg = byPath.get(isSha ? url.slice(0, -'.sha256'.length) : url);
    if (!pkg || (req.method !== 'GET' && req.method !== 'HEAD')) {
      log(`package server: ${req.method} ${url} -> 404`);
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    log(`package server: ${req.method} ${url} -> 200 (from ${req.socket.remoteAddress})`);
    if (isSha) {
      const body = `${pkg.sha256}  ${pkg.fileName}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/vnd.debian.binary-package', 'content-length': pkg.sizeBytes });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(pkg.path).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({
        server,
        requests,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
