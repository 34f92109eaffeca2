// The lab daemon's control socket (DIR/control.sock): one JSON request per line, one JSON reply per line.
import type { PolicyRule } from './kube/auth.js';
import net from 'node:net';

export type ControlRequest =
  | { op: 'status' }
  | { op: 'fault'; name: string; vm?: string; options?: Record<string, string> }
  | { op: 'heal'; name: string; vm?: string; options?: Record<string, string> }
  | { op: 'shutdown' }
  /** Replace the Kubernetes double's RBAC rules of one kubeconfig user (e.g. lab-restricted). */
  | { op: 'kube-user-rules'; user: string; rules: PolicyRule[] }
  /**
   * The Kubernetes double's requests after the `since`-th (default: all it keeps), and `total`, the mark
   * to pass next time. Each: method, path (no query), verb, user, status, and resource, subresource,
   * namespace, name when the path names them.
   */
  | { op: 'kube-requests'; since?: number };

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: string };

export function controlRequest(
  socketPath: string,
  request: ControlRequest,
  timeoutMs = 120_000,
): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`lab daemon did not answer ${request.op} within ${timeoutMs} ms (${socketPath})`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (b) => {
      data += b.toString();
      const nl = data.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        socket.end();
        try {
          resolve(JSON.parse(data.slice(0, nl)) as ControlReply);
        } catch (e) {
          reject(e as Error);
        }
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export function startControlServer(
  socketPath: string,
  handle: (req: ControlRequest) => Promise<unknown>,
): Promise<net.Server> {
  const server = net.createServer((socket) => {
    let data = '';
    socket.on('data', (b) => {
      data += b.toString();
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      const line = data.slice(0, nl);
      data = '';
      let request: ControlRequest;
      try {
        request = JSON.parse(line) as ControlRequest;
      } catch {
        socket.end(JSON.stringify({ ok: false, error: 'bad request (not JSON)' }) + '\n');
        return;
      }
      handle(request).then(
        (result) => socket.end(JSON.stringify({ ok: true, result: result ?? null }) + '\n'),
        (e: unknown) => socket.end(JSON.stringify({ ok: false, error: (e as Error).message ?? String(e) }) + '\n'),
      );
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
