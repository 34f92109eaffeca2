// The istiod double's Kubernetes client: plain REST over HTTPS against the lab's API double, the
// way istiod talks to kube-apiserver (TokenReview, WorkloadGroup/WorkloadEntry, PeerAuthentication,
// the istiod Deployment's env).
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export class KubeRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface KubeRestOptions {
  server: string; // https://127.0.0.1:PORT
  caPem: string;
  token: string;
}

export function kubeRestFromKubeconfig(path: string): KubeRestOptions {
  const kc = parseYaml(readFileSync(path, 'utf8')) as {
    'current-context'?: string;
    contexts: Array<{ name: string; context: { cluster: string; user: string } }>;
    clusters: Array<{ name: string; cluster: { server: string; 'certificate-authority-data'?: string } }>;
    users: Array<{ name: string; user: { token?: string } }>;
  };
  const ctx = kc.contexts.find((c) => c.name === kc['current-context']) ?? kc.contexts[0]!;
  const cluster = kc.clusters.find((c) => c.name === ctx.context.cluster)!.cluster;
  const user = kc.users.find((u) => u.name === ctx.context.user)!.user;
  return {
    server: cluster.server,
    caPem: Buffer.from(cluster['certificate-authority-data'] ?? '', 'base64').toString('utf8'),
    token: user.token ?? '',
  };
}

export class KubeRest {
  constructor(private readonly o: KubeRestOptions) {}

  request<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    const url = new URL(path, this.o.server);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          method,
          hostname: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          ca: this.o.caPem,
          headers: {
            authorization: `Bearer ${this.o.token}`,
            accept: 'application/json',
            ...(data ? { 'content-type': contentType, 'content-length': String(data.length) } : {}),
          },
          timeout: 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const code = res.statusCode ?? 0;
            if (code >= 200 && code < 300) {
              try {
                resolve(JSON.parse(text) as T);
              } catch {
                resolve({} as T);
              }
            } else {
              let msg = text;
              try {
                msg = (JSON.parse(text) as { message?: string }).message ?? text;
              } catch {
                /* keep text */
              }
              reject(new KubeRequestError(code, `${method} ${url.pathname}: ${code} ${msg}`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: timeout`)));
      req.on('error', reject);
      if (data) req.write(data);
      req.end();
    });
  }

  async getOrUndefined<T = Record<string, unknown>>(path: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path);
    } catch (e) {
      if (e instanceof KubeRequestError && e.status === 404) return undefined;
      throw e;
    }
  }
}
