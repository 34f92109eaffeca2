// Bootstrap tokens for VMs: a TokenRequest for the group's ServiceAccount with audience istio-ca,
// as istioctl does (default lifetime 1 h). The token is returned to the caller only; it never goes
// into a message or a log line here.
import type { ClusterContext } from './context.js';
import { KubeRequestError } from './errors.js';

export interface BootstrapTokenRequest {
  namespace: string;
  serviceAccount: string;
  /** Default 'istio-ca' (what istiod's CA checks). */
  audience?: string;
  /** Default 3600, like istioctl. */
  expirationSeconds?: number;
}

export interface BootstrapToken {
  token: string;
  expiresAt: Date;
  audience: string;
}

export async function requestBootstrapToken(ctx: ClusterContext, req: BootstrapTokenRequest): Promise<BootstrapToken> {
  const audience = req.audience ?? 'istio-ca';
  const expirationSeconds = req.expirationSeconds ?? 3600;
  const requestedAt = Date.now();
  let res;
  try {
    res = await ctx.transport.call((o) =>
      ctx.core.createNamespacedServiceAccountToken(
        {
          namespace: req.namespace,
          name: req.serviceAccount,
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: { audiences: [audience], expirationSeconds },
          },
        },
        o,
      ),
    );
  } catch (err) {
    if (err instanceof KubeRequestError && err.kind === 'not-found') {
      throw new KubeRequestError(
        `could not create a token: service account ${req.serviceAccount} not found in namespace ` +
          `${req.namespace} (${err.message})`,
        err.kind,
        err.method,
        err.path,
        err.attempts,
        err.status,
        err.target,
        err.serverMessage,
      );
    }
    throw err;
  }
  const token = res.status?.token;
  if (!token) throw new Error(`TokenRequest for ${req.namespace}/${req.serviceAccount} returned no token`);
  const exp = res.status?.expirationTimestamp;
  const expiresAt = exp ? new Date(exp) : new Date(requestedAt + expirationSeconds * 1000);
  return { token, expiresAt, audience };
}
