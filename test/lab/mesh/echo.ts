// The lab's in-cluster mesh service `echo` (namespace mesh-test): an mTLS-only HTTPS server on the
// east-west gateway address, identity spiffe://TD/ns/mesh-test/sa/echo, answering `echo from mesh`.
// VMs reach it as echo.mesh-test.svc.cluster.local:8080 through their sidecar (VIP from the registry).
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { MeshCa } from '../istiod/ca.js';
import type { MeshService } from '../istiod/server.js';

export interface EchoServiceOptions {
  ca: MeshCa;
  host: string;
  port?: number;
  /** The service's VIP in the registry (ClusterIP-like; inside the lab subnet, never routed). */
  vip: string;
  servicePort?: number;
}

export class EchoService {
  private server?: https.Server;
  boundPort = 0;
  requests = 0;
  constructor(private readonly o: EchoServiceOptions) {}

  get registryEntry(): MeshService {
    return {
      name: 'echo',
      namespace: 'mesh-test',
      port: this.o.servicePort ?? 8080,
      vip: this.o.vip,
      endpoints: [{ address: this.o.host, port: this.boundPort || this.o.port || 8080 }],
    };
  }

  get running(): boolean {
    return !!this.server;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const id = this.o.ca.issueWorkloadCert('mesh-test', 'echo');
    const server = https.createServer(
      {
        key: id.keyPem,
        cert: id.certPem,
        ca: this.o.ca.rootCertPem,
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ['istio-http/1.1', 'http/1.1'],
      },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        const san =
          (peer?.subjectaltname ?? '')
            .split(', ')
            .find((s) => s.startsWith('URI:'))
            ?.slice(4) ?? '';
        if (!san.startsWith('spiffe://')) {
          res.writeHead(403);
          return res.end('RBAC: access denied\n');
        }
        this.requests++;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('echo from mesh\n');
      },
    );
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || this.o.port || 8080, this.o.host, () => resolve());
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
