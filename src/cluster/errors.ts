// Errors of the cluster layer and the pure helpers that word them. Messages name the API server,
// the request (method + path) and, for 403, the verb/resource/namespace to grant — never a
// credential: the kubeconfig, tokens and keys are not known to this module.

export type KubeFailureKind =
  | 'forbidden'
  | 'unauthorized'
  | 'not-found'
  | 'conflict'
  | 'invalid'
  | 'server'
  | 'throttled'
  | 'unreachable'
  | 'timeout'
  | 'other';

/** What a REST path asks for, in RBAC terms. */
export interface RequestTarget {
  verb: string;
  /** API group, '' for the core group. */
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** A failed Kubernetes API request, after retries. */
export class KubeRequestError extends Error {
  constructor(
    message: string,
    readonly kind: KubeFailureKind,
    readonly method: string,
    readonly path: string,
    readonly attempts: number,
    readonly status?: number,
    readonly target?: RequestTarget,
    readonly serverMessage?: string,
  ) {
    super(message);
    this.name = 'KubeRequestError';
  }
}

/** A configuration problem found before or instead of talking to the API (kubeconfig, preflight). */
export class ClusterConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterConfigError';
  }
}

/** Maps an HTTP method on a REST path to the RBAC verb kube-apiserver authorizes. */
export function rbacVerbOf(method: string, target: { name?: string }, query: URLSearchParams): string {
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD':
      if (query.get('watch') === 'true' || query.get('watch') === '1') return 'watch';
      return target.name ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return target.name ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

/**
 * Reads a Kubernetes REST path (`/api/v1/namespaces/ns/pods/p/log`, `/apis/g/v/...`) into the
 * RBAC target. Returns undefined for non-resource paths (`/version`, `/apis` discovery).
 */
export function describeRequest(method: string, pathWithQuery: string): RequestTarget | undefined {
  const url = new URL(pathWithQuery, 'https://kube.invalid');
  const parts = url.pathname
    .split('/')
    .filter((p) => p !== '')
    .map(decodeURIComponent);
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 2) {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    group = parts[1] ?? '';
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  if (rest.length === 0) return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (!resource) return undefined;
  const target: RequestTarget = { verb: '', group, resource };
  if (name !== undefined) target.name = name;
  if (subresource !== undefined) target.subresource = subresource;
  if (namespace !== undefined) target.namespace = namespace;
  target.verb = rbacVerbOf(method, target, url.searchParams);
  return target;
}

/** `workloadgroups.networking.istio.io`, `pods/log`, `serviceaccounts/token`. */
export function qualifiedResourceName(t: { group: string; resource: string; subresource?: string }): string {
  const base = t.group ? `${t.resource}.${t.group}` : t.resource;
  return t.subresource ? `${base}/${t.subresource}` : base;
}

/** `create serviceaccounts/token in namespace "vm-ns"`, `patch namespaces (cluster-scoped)`. */
export function describePermission(p: {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
}): string {
  const where = p.namespace ? `in namespace "${p.namespace}"` : '(cluster-scoped)';
  return `${p.verb} ${qualifiedResourceName(p)} ${where}`;
}

export function formatForbidden(
  server: string,
  method: string,
  path: string,
  serverMessage: string | undefined,
): string {
  const target = describeRequest(method, path);
  const what = target ? describePermission(target) : `${method} ${path}`;
  const canI = target
    ? ` Check with: kubectl auth can-i ${target.verb} ` +
      `${target.group ? `${target.resource}.${target.group}` : target.resource}` +
      (target.subresource ? ` --subresource=${target.subresource}` : '') +
      `${target.namespace ? ` -n ${target.namespace}` : ''}.`
    : '';
  const detail = serverMessage ? ` Server said: ${serverMessage}` : '';
  return (
    `Kubernetes API ${server} refused (403 Forbidden) to ${what} (${method} ${pathOnly(path)}).` +
    ` The credentials need this permission; see the minimal RBAC in the README (renderMinimalRbacYaml).${canI}${detail}`
  );
}

export function formatRetriesExhausted(
  server: string,
  method: string,
  path: string,
  attempts: number,
  failure: { status?: number; code?: string; serverMessage?: string },
): string {
  const answered =
    failure.status !== undefined
      ? `answered ${failure.status}`
      : `was unreachable (${failure.code ?? 'connection error'})`;
  const detail = failure.serverMessage ? `: ${failure.serverMessage}` : '';
  return (
    `Kubernetes API ${server} ${answered} after ${attempts} ` +
    `attempt${attempts === 1 ? '' : 's'} for ${method} ${pathOnly(path)}${detail}`
  );
}

export function formatRequestFailure(
  server: string,
  method: string,
  path: string,
  status: number,
  serverMessage: string | undefined,
): string {
  const detail = serverMessage ? `: ${serverMessage}` : '';
  const hint =
    status === 401
      ? ' (401 Unauthorized: the kubeconfig credentials were rejected — expired token or certificate?)'
      : '';
  return `Kubernetes API ${server} answered ${status} for ${method} ${pathOnly(path)}${hint}${detail}`;
}

/** The path without a query string (queries can hold label selectors but never secrets; keep messages short). */
export function pathOnly(path: string): string {
  const i = path.indexOf('?');
  return i === -1 ? path : path.slice(0, i);
}

/** Replaces every occurrence of each secret (longest first) with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].filter((x) => x.length >= 4).sort((a, b) => b.length - a.length)) {
    out = out.split(s).join('***');
  }
  return out;
}
