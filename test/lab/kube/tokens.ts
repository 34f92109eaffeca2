// ServiceAccount tokens as kube-apiserver issues them (TokenRequest): RS256 JWTs with the bound-token
// claims, signed by the double's signing key, and their review (TokenReview semantics).
import { createSign, createVerify, randomUUID } from 'node:crypto';
import { keyIdOf, type KeyPairPem } from './pki.js';

export const DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** The API server's own audience (what tokens without explicit audiences get). */
export const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

export interface ServiceAccountTokenClaims {
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  iss: string;
  jti: string;
  sub: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
  };
}

export interface IssuedToken {
  token: string;
  expirationTimestamp: string;
  claims: ServiceAccountTokenClaims;
}

export interface TokenVerification {
  ok: boolean;
  claims?: ServiceAccountTokenClaims;
  error?: string;
}

function b64url(v: object): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

export class ServiceAccountTokenSigner {
  readonly keyId: string;
  constructor(
    private readonly keys: KeyPairPem,
    readonly issuer = DEFAULT_ISSUER,
  ) {
    this.keyId = keyIdOf(keys.publicKeyPem);
  }

  get publicKeyPem(): string {
    return this.keys.publicKeyPem;
  }

  issue(opts: {
    namespace: string;
    name: string;
    uid: string;
    audiences: string[];
    expirationSeconds: number;
    now?: number;
  }): IssuedToken {
    const now = Math.floor((opts.now ?? Date.now()) / 1000);
    const claims: ServiceAccountTokenClaims = {
      aud: opts.audiences,
      exp: now + opts.expirationSeconds,
      iat: now,
      nbf: now,
      iss: this.issuer,
      jti: randomUUID(),
      sub: `system:serviceaccount:${opts.namespace}:${opts.name}`,
      'kubernetes.io': { namespace: opts.namespace, serviceaccount: { name: opts.name, uid: opts.uid } },
    };
    const signingInput = `${b64url({ alg: 'RS256', kid: this.keyId })}.${b64url(claims)}`;
    const signature = createSign('RSA-SHA256').update(signingInput).sign(this.keys.privateKeyPem).toString('base64url');
    return {
      token: `${signingInput}.${signature}`,
      expirationTimestamp: new Date(claims.exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      claims,
    };
  }

  /** Signature, issuer, time window; audiences are checked by the caller (they differ per use). */
  verify(token: string, now = Date.now()): TokenVerification {
    const parts = token.split('.');
    if (parts.length !== 3) return { ok: false, error: 'invalid bearer token, not a compact JWS' };
    const [h, p, sig] = parts as [string, string, string];
    let header: { alg?: string; kid?: string };
    let claims: ServiceAccountTokenClaims;
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString());
      claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    } catch {
      return { ok: false, error: 'invalid bearer token, malformed JWT' };
    }
    if (header.alg !== 'RS256')
      return { ok: false, error: `invalid bearer token, unexpected signing algorithm ${String(header.alg)}` };
    const valid = createVerify('RSA-SHA256')
      .update(`${h}.${p}`)
      .verify(this.keys.publicKeyPem, Buffer.from(sig, 'base64url'));
    if (!valid) return { ok: false, error: 'invalid bearer token, square/go-jose: error in cryptographic primitive' };
    if (claims.iss !== this.issuer) return { ok: false, error: 'invalid bearer token, token issuer is not trusted' };
    const t = Math.floor(now / 1000);
    if (typeof claims.exp !== 'number' || t > claims.exp)
      return { ok: false, claims, error: 'invalid bearer token, service account token has expired' };
    if (typeof claims.nbf === 'number' && t + 60 < claims.nbf)
      return { ok: false, claims, error: 'invalid bearer token, service account token is not valid yet' };
    return { ok: true, claims };
  }
}
