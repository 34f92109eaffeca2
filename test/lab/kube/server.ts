// HTTP request handling of the Kubernetes API double: authentication, authorization, request
// faults, the real REST paths, discovery, CRUD + patch + server-side apply, watch, subresources.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { errors, KubeApiError } from './status.js';
import { decodeKubeProtobuf } from './protobuf.js';
import { openApiGroupVersionDoc, openApiRoot } from './openapi.js';
import { apiGroupDoc, apiGroupList, apiResourceList, apiVersions, KUBE_VERSION, toTable } from './discovery.js';
import { kindKeyOf, type ResourceType } from './resources.js';
import type { Authorizer, ResourceAttributes, UserInfo } from './auth.js';
import {
  matchesFieldSelector,
  matchesLabelSelector,
  type KubeObject,
  type ObjectStore,
  type PatchType,
  type StoreEvent,
} from './store.js';
import { clone, isObject, type Json } from './merge.js';
import { API_AUDIENCE, type IssuedToken } from './tokens.js';

export interface RequestRecord {
  time: string;
  method: string;
  path: string;
  query: string;
  verb: string;
  user: string;
  status: number;
  resource?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

export interface RequestLog {
  /** Number of requests seen (every one, including rejected ones). */
  readonly count: number;
  /** Number of requests seen since the double started; never reset, so a reader can take what came after a mark. */
  readonly total: number;
  readonly log: readonly RequestRecord[];
  /** The requests after the `total`-th one (as many as are still kept). */
  since(total: number): RequestRecord[];
  /** Requests whose verb is a write (create, update, patch, delete, deletecollection). */
  writes(): RequestRecord[];
  reset(): void;
}

export class RequestRecorder implements RequestLog {
  private entries: RequestRecord[] = [];
  private seen = 0;
  get count(): number {
    return this.entries.length;
  }
  get total(): number {
    return this.seen;
  }
  since(total: number): RequestRecord[] {
    const kept = this.seen - this.entries.length;
    return this.entries.slice(Math.max(0, total - kept));
  }
  get log(): readonly RequestRecord[] {
    return this.entries;
  }
  writes(): RequestRecord[] {
    return this.entries.filter((r) => ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(r.verb));
  }
  reset(): void {
    this.entries = [];
  }
  add(r: RequestRecord): void {
    this.seen += 1;
    this.entries.push(r);
    if (this.entries.length > 20000) this.entries.splice(0, 10000);
  }
}

/** Switches the fault definitions flip; read on every request. */
export interface RequestFaultState {
  latencyMs: number;
  /** Remaining requests to fail with 500; Infinity = until healed; 0 = off. */
  serverErrorsRemaining: number;
  /** Users whose every resource request is forbidden (RBAC binding removed). */
  forbiddenUsers: Set<string>;
}

export interface TokenReviewResult {
  authenticated: boolean;
  user?: { username: string; uid: string; groups: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  exp?: number;
  error?: string;
}

export interface ApiServerDeps {
  store: ObjectStore;
  authorizer: Authorizer;
  recorder: RequestRecorder;
  faults: RequestFaultState;
  authenticate(bearer: string): UserInfo | undefined;
  reviewToken(token: string, audiences?: string[]): TokenReviewResult;
  issueToken(namespace: string, serviceAccount: string, audiences: string[], expirationSeconds: number): IssuedToken;
  podLog(namespace: string, pod: string, container: string): string | undefined;
  serverAddress(): string;
  /** Upper bound for one watch (seconds). */
  maxWatchSeconds: number;
}

const MAX_BODY = 10 * 1024 * 1024;
const JSON_TYPE = 'application/json';

interface Route {
  kind: 'resource';
  group: string;
  version: string;
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

function send(res: ServerResponse, code: number, body: unknown, contentType = JSON_TYPE): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Audit-Id': cryptoId() });
  res.end(text);
}

let auditCounter = 0;
function cryptoId(): string {
  auditCounter += 1;
  return `00000000-0000-4000-8000-${auditCounter.toString(16).padStart(12, '0')}`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(errors.badRequest('request body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The request body as JSON; typed protobuf bodies (kubectl create …) are decoded first. */
async function readObjectBody(req: IncomingMessage): Promise<Json> {
  const raw = await readBody(req);
  const type = String(req.headers['content-type'] ?? '');
  if (type.startsWith('application/vnd.kubernetes.protobuf')) {
    try {
      return decodeKubeProtobuf(raw) as Json;
    } catch (e) {
      throw errors.unsupportedMediaType(`${type}: ${(e as Error).message}`);
    }
  }
  return parseJsonBody(raw.toString('utf8'));
}

function parseJsonBody(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw errors.badRequest(`the server rejected our request due to an error in our request: ${(e as Error).message}`);
  }
}

function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

/** Converts a stored object to the requested version of its group. */
function served(o: KubeObject, t: ResourceType, version: string): KubeObject {
  const c = clone(o);
  c.apiVersion = t.group ? `${t.group}/${version}` : version;
  c.kind = t.kind;
  return c;
}

function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === 'true' || v === '1';
}

function verbOf(method: string, route: Route, q: URLSearchParams): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (boolParam(q, 'watch')) return 'watch';
      return route.name ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return route.name ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

export function createRequestHandler(deps: ApiServerDeps): {
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  closeWatches: () => void;
} {
  const openWatches = new Set<() => void>();

  function route(pathname: string): Route | { kind: 'discovery'; doc: () => object | undefined } | undefined {
    const segs = pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const types = deps.store.types();
    if (pathname === '/version' || pathname === '/version/') return { kind: 'discovery', doc: () => KUBE_VERSION };
    if (segs[0] === 'openapi' && segs[1] === 'v3') {
      if (segs.length === 2) return { kind: 'discovery', doc: () => openApiRoot(types) };
      if (segs[2] === 'api' && segs.length === 4)
        return { kind: 'discovery', doc: () => openApiGroupVersionDoc(types, '', segs[3] as string) };
      if (segs[2] === 'apis' && segs.length === 5)
        return { kind: 'discovery', doc: () => openApiGroupVersionDoc(types, segs[3] as string, segs[4] as string) };
      return undefined;
    }
    if (segs[0] === 'api') {
      if (segs.length === 1) return { kind: 'discovery', doc: () => apiVersions(deps.serverAddress()) };
      if (segs[1] !== 'v1') return undefined;
      if (segs.length === 2) return { kind: 'discovery', doc: () => apiResourceList(types, '', 'v1') };
      return resourceRoute('', 'v1', segs.slice(2), types);
    }
    if (segs[0] === 'apis') {
      if (segs.length === 1) return { kind: 'discovery', doc: () => apiGroupList(types) };
      if (segs.length === 2) return { kind: 'discovery', doc: () => apiGroupDoc(types, segs[1] as string) };
      if (segs.length === 3)
        return { kind: 'discovery', doc: () => apiResourceList(types, segs[1] as string, segs[2] as string) };
      return resourceRoute(segs[1] as string, segs[2] as string, segs.slice(3), types);
    }
    return undefined;
  }

  function resourceRoute(group: string, version: string, rest: string[], types: ResourceType[]): Route | undefined {
    const find = (resource: string | undefined): ResourceType | undefined =>
      types.find((t) => t.group === group && t.resource === resource && t.versions.includes(version));
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const t = find(rest[2]);
      if (t?.namespaced) {
        if (rest.length > 5) return undefined;
        return {
          kind: 'resource',
          group,
          version,
          type: t,
          namespace: rest[1],
          ...(rest[3] ? { name: rest[3] } : {}),
          ...(rest[4] ? { subresource: rest[4] } : {}),
        };
      }
    }
    const t = find(rest[0]);
    if (!t || rest.length > 3) return undefined;
    // A namespaced resource listed across all namespaces: /api/v1/pods.
    if (t.namespaced && rest.length > 1) return undefined;
    return {
      kind: 'resource',
      group,
      version,
      type: t,
      ...(rest[1] ? { name: rest[1] } : {}),
      ...(rest[2] ? { subresource: rest[2] } : {}),
    };
  }

  async function handleResource(
    req: IncomingMessage,
    res: ServerResponse,
    r: Route,
    q: URLSearchParams,
    verb: string,
    user: UserInfo,
  ): Promise<number> {
    const t = r.type;
    const kindKey = kindKeyOf(t);
    const store = deps.store;
    const bodyType = String(req.headers['content-type'] ?? '');
    if (/cbor/.test(bodyType) || (/protobuf/.test(bodyType) && req.method !== 'POST'))
      throw errors.unsupportedMediaType(bodyType);
    if (r.subresource && !t.subresources.includes(r.subresource)) throw errors.pathNotFound();
    if (!t.verbs.includes(verb) && !r.subresource) throw errors.methodNotSupported(t.group, t.resource, verb);
    const dryRun = q.get('dryRun') === 'All';
    const userAgent = String(req.headers['user-agent'] ?? '');
    const defaultManager = userAgent.split('/')[0] || 'unknown';
    const manager = q.get('fieldManager') ?? undefined;
    const out = (code: number, obj: KubeObject): number => {
      if (wantsTable(req.headers.accept) && verb === 'get') {
        send(
          res,
          code,
          toTable(t, [served(obj, t, r.version)], q.get('includeObject'), obj.metadata.resourceVersion ?? ''),
          'application/json;as=Table;v=v1;g=meta.k8s.io',
        );
      } else send(res, code, served(obj, t, r.version));
      return code;
    };

    // ----- special subresources -----
    if (r.subresource === 'token') {
      if (verb !== 'create') throw errors.methodNotSupported(t.group, 'serviceaccounts/token', verb);
      const body = await readObjectBody(req);
      const spec = isObject(body) && isObject(body.spec) ? body.spec : {};
      const audiences =
        Array.isArray(spec.audiences) && spec.audiences.length
          ? (spec.audiences as string[])
          : ['https://kubernetes.default.svc.cluster.local'];
      const expirationSeconds = typeof spec.expirationSeconds === 'number' ? spec.expirationSeconds : 3600;
      if (expirationSeconds < 600) {
        throw errors.invalid('authentication.k8s.io', 'TokenRequest', r.name as string, [
          {
            field: 'spec.expirationSeconds',
            message: `Invalid value: ${expirationSeconds}: may not specify a duration less than 10 minutes`,
          },
        ]);
      }
      if (expirationSeconds > 2 ** 32) {
        throw errors.invalid('authentication.k8s.io', 'TokenRequest', r.name as string, [
          {
            field: 'spec.expirationSeconds',
            message: `Invalid value: ${expirationSeconds}: may not specify a duration larger than 2^32 seconds`,
          },
        ]);
      }
      const issued = deps.issueToken(r.namespace as string, r.name as string, audiences, expirationSeconds);
      send(res, 201, {
        kind: 'TokenRequest',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { name: r.name, namespace: r.namespace, creationTimestamp: null },
        spec: {
          audiences,
          expirationSeconds,
          boundObjectRef: isObject(spec.boundObjectRef) ? spec.boundObjectRef : null,
        },
        status: { token: issued.token, expirationTimestamp: issued.expirationTimestamp },
      });
      return 201;
    }
    if (r.subresource === 'log') {
      const pod = store.mustGet(kindKey, r.namespace, r.name as string);
      const containers = ((pod.spec?.containers ?? []) as Array<{ name: string }>).map((c) => c.name);
      let container = q.get('container') ?? undefined;
      if (!container) {
        if (containers.length !== 1) {
          throw errors.badRequest(
            `a container name must be specified for pod ${pod.metadata.name}, choose one of: [${containers.join(' ')}]`,
          );
        }
        container = containers[0] as string;
      }
      if (
        !containers.includes(container) &&
        !((pod.spec?.initContainers ?? []) as Array<{ name: string }>).some((c) => c.name === container)
      ) {
        throw errors.badRequest(`container ${container} is not valid for pod ${pod.metadata.name}`);
      }
      const text = deps.podLog(r.namespace as string, pod.metadata.name, container);
      if (text === undefined && (pod.status?.phase ?? 'Pending') === 'Pending') {
        throw errors.badRequest(
          `container "${container}" in pod "${pod.metadata.name}" is waiting to start: ContainerCreating`,
        );
      }
      let lines = text ?? '';
      const tail = q.get('tailLines');
      if (tail)
        lines =
          lines
            .split('\n')
            .filter((l, i, a) => !(i === a.length - 1 && l === ''))
            .slice(-Number(tail))
            .join('\n') + (lines ? '\n' : '');
      send(res, 200, lines, 'text/plain');
      return 200;
    }

    // ----- reviews (create-only, not stored) -----
    if (t.group === 'authorization.k8s.io' && t.resource === 'selfsubjectrulesreviews') {
      const body = await readObjectBody(req);
      const spec = (isObject(body) && isObject(body.spec) ? body.spec : {}) as { namespace?: string };
      if (!spec.namespace) throw errors.badRequest('no namespace on request');
      const status = deps.authorizer.rulesFor(user, spec.namespace, deps.faults.forbiddenUsers.has(user.username));
      send(res, 201, {
        kind: 'SelfSubjectRulesReview',
        apiVersion: 'authorization.k8s.io/v1',
        metadata: { creationTimestamp: null },
        spec,
        status,
      });
      return 201;
    }
    if (t.group === 'authorization.k8s.io' && t.resource === 'selfsubjectaccessreviews') {
      const body = await readObjectBody(req);
      const spec = (isObject(body) && isObject(body.spec) ? body.spec : {}) as {
        resourceAttributes?: Record<string, string>;
        nonResourceAttributes?: Record<string, string>;
      };
      let status: { allowed: boolean; reason?: string; denied?: boolean };
      if (spec.resourceAttributes) {
        const a = spec.resourceAttributes;
        const attrs: ResourceAttributes = {
          verb: a.verb ?? '',
          group: a.group ?? '',
          resource: a.resource ?? '',
          ...(a.subresource ? { subresource: a.subresource } : {}),
          ...(a.namespace ? { namespace: a.namespace } : {}),
          ...(a.name ? { name: a.name } : {}),
        };
        const d = deps.faults.forbiddenUsers.has(user.username)
          ? { allowed: false, reason: '' }
          : deps.authorizer.authorize(user, attrs);
        status = { allowed: d.allowed, ...(d.reason ? { reason: d.reason } : {}) };
      } else if (spec.nonResourceAttributes) {
        status = {
          allowed: true,
          reason:
            'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated"',
        };
      } else {
        throw errors.invalid('authorization.k8s.io', 'SelfSubjectAccessReview', '', [
          {
            field: 'spec.resourceAttributes',
            message: 'Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified',
          },
        ]);
      }
      send(res, 201, {
        kind: 'SelfSubjectAccessReview',
        apiVersion: 'authorization.k8s.io/v1',
        metadata: { creationTimestamp: null },
        spec,
        status,
      });
      return 201;
    }
    if (t.group === 'authentication.k8s.io' && t.resource === 'tokenreviews') {
      const body = await readObjectBody(req);
      const spec = (isObject(body) && isObject(body.spec) ? body.spec : {}) as { token?: string; audiences?: string[] };
      // Without spec.audiences the API server checks against its own audiences.
      const result = deps.reviewToken(spec.token ?? '', spec.audiences?.length ? spec.audiences : [API_AUDIENCE]);
      const status: Record<string, unknown> = { authenticated: result.authenticated };
      if (result.authenticated) {
        status.user = result.user;
        status.audiences = result.audiences;
      } else {
        status.user = {};
        status.error = result.error;
      }
      send(res, 201, {
        kind: 'TokenReview',
        apiVersion: 'authentication.k8s.io/v1',
        metadata: { creationTimestamp: null },
        spec,
        status,
      });
      return 201;
    }

    // ----- ordinary resources -----
    switch (verb) {
      case 'get':
        return out(200, store.mustGet(kindKey, r.namespace, r.name as string));
      case 'list': {
        const items = store.list(kindKey, {
          ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
          ...(q.get('labelSelector') ? { labelSelector: q.get('labelSelector') as string } : {}),
          ...(q.get('fieldSelector') ? { fieldSelector: q.get('fieldSelector') as string } : {}),
        });
        const rv = store.resourceVersion;
        if (wantsTable(req.headers.accept)) {
          send(
            res,
            200,
            toTable(
              t,
              items.map((o) => served(o, t, r.version)),
              q.get('includeObject'),
              rv,
            ),
            'application/json;as=Table;v=v1;g=meta.k8s.io',
          );
          return 200;
        }
        const apiVersion = t.group ? `${t.group}/${r.version}` : r.version;
        send(res, 200, {
          kind: `${t.kind}List`,
          apiVersion,
          metadata: { resourceVersion: rv },
          // Built-in kinds omit apiVersion/kind on items (as kube-apiserver does); custom resources keep them.
          items: items.map((o) => {
            const s = served(o, t, r.version);
            if (!t.custom) {
              delete (s as Partial<KubeObject>).apiVersion;
              delete (s as Partial<KubeObject>).kind;
            }
            return s;
          }),
        });
        return 200;
      }
      case 'watch':
        return startWatch(req, res, r, q, kindKey);
      case 'create': {
        if (r.subresource) throw errors.methodNotSupported(t.group, `${t.resource}/${r.subresource}`, 'create');
        const body = await readObjectBody(req);
        if (!isObject(body)) throw errors.badRequest('the body must be a JSON object');
        const obj = body as unknown as KubeObject;
        obj.metadata = obj.metadata ?? ({} as KubeObject['metadata']);
        if (t.namespaced) {
          if (obj.metadata.namespace && obj.metadata.namespace !== r.namespace) {
            throw errors.badRequest(
              'the namespace of the provided object does not match the namespace sent on the request',
            );
          }
          obj.metadata.namespace = r.namespace as string;
        }
        if (obj.kind && obj.kind !== t.kind)
          throw errors.badRequest(`the kind of the object (${obj.kind}) does not match the resource (${t.resource})`);
        if (t.subresources.includes('status')) delete obj.status;
        const created = store.create(kindKey, obj, { manager: manager ?? defaultManager, dryRun });
        return out(201, created);
      }
      case 'update': {
        const body = await readObjectBody(req);
        if (!isObject(body)) throw errors.badRequest('the body must be a JSON object');
        const obj = body as unknown as KubeObject;
        if (obj.metadata?.name !== r.name)
          throw errors.badRequest('the name of the object does not match the name on the URL');
        if (t.namespaced) obj.metadata.namespace = r.namespace as string;
        const updated = store.update(kindKey, obj, {
          manager: manager ?? defaultManager,
          dryRun,
          ...(r.subresource === 'status' ? { subresource: 'status' as const } : {}),
        });
        return out(200, updated);
      }
      case 'patch': {
        const contentType =
          String(req.headers['content-type'] ?? '')
            .split(';')[0]
            ?.trim() ?? '';
        const text = (await readBody(req)).toString('utf8');
        const sub = r.subresource === 'status' ? { subresource: 'status' as const } : {};
        if (contentType === 'application/apply-patch+yaml' || contentType === 'application/apply-patch+cbor') {
          if (!manager)
            throw errors.badRequest(
              'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            );
          let applied: unknown;
          try {
            applied = parseYaml(text);
          } catch (e) {
            throw errors.badRequest(`error decoding YAML: ${(e as Error).message}`);
          }
          if (!isObject(applied as Json)) throw errors.badRequest('apply patch must be an object');
          const obj = applied as KubeObject;
          if (t.namespaced && obj.metadata?.namespace && obj.metadata.namespace !== r.namespace) {
            throw errors.badRequest(
              'the namespace of the provided object does not match the namespace sent on the request',
            );
          }
          const existed = store.get(kindKey, r.namespace, r.name as string) !== undefined;
          const result = store.apply(kindKey, r.namespace, r.name as string, obj, {
            manager,
            force: boolParam(q, 'force'),
            dryRun,
            ...sub,
          });
          return out(existed ? 200 : 201, result.object);
        }
        const types: Record<string, PatchType> = {
          'application/merge-patch+json': 'merge',
          'application/strategic-merge-patch+json': 'strategic',
          'application/json-patch+json': 'json',
        };
        const pt = types[contentType];
        if (!pt) throw errors.unsupportedMediaType(contentType);
        if (boolParam(q, 'force'))
          throw errors.badRequest('force: Forbidden: may not be specified for non-apply patch');
        const patched = store.patch(kindKey, r.namespace, r.name as string, pt, parseJsonBody(text), {
          manager: manager ?? defaultManager,
          dryRun,
          ...sub,
        });
        return out(200, patched);
      }
      case 'delete': {
        const text = (await readBody(req)).toString('utf8');
        const body = text.trim() ? parseJsonBody(text) : {};
        const policy = (q.get('propagationPolicy') ?? (isObject(body) ? body.propagationPolicy : undefined)) as
          'Orphan' | 'Background' | 'Foreground' | undefined;
        const orphan = q.get('orphanDependents') === 'true' || (isObject(body) && body.orphanDependents === true);
        const deleted = store.delete(kindKey, r.namespace, r.name as string, {
          ...(policy ? { propagationPolicy: policy } : orphan ? { propagationPolicy: 'Orphan' as const } : {}),
          dryRun,
        });
        if (kindKey === 'namespaces' || kindKey === 'pods') {
          const o = served(deleted, t, r.version);
          o.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
          if (kindKey === 'namespaces') o.status = { phase: 'Terminating' };
          send(res, 200, o);
          return 200;
        }
        send(res, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: {
            name: deleted.metadata.name,
            ...(t.group ? { group: t.group } : {}),
            kind: t.resource,
            uid: deleted.metadata.uid,
          },
        });
        return 200;
      }
      case 'deletecollection': {
        const items = store.list(kindKey, {
          ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
          ...(q.get('labelSelector') ? { labelSelector: q.get('labelSelector') as string } : {}),
          ...(q.get('fieldSelector') ? { fieldSelector: q.get('fieldSelector') as string } : {}),
        });
        for (const o of items) store.delete(kindKey, o.metadata.namespace, o.metadata.name, { dryRun });
        send(res, 200, {
          kind: `${t.kind}List`,
          apiVersion: t.group ? `${t.group}/${r.version}` : r.version,
          metadata: { resourceVersion: store.resourceVersion },
          items: items.map((o) => served(o, t, r.version)),
        });
        return 200;
      }
      default:
        throw errors.methodNotSupported(t.group, t.resource, verb);
    }
  }

  function startWatch(
    req: IncomingMessage,
    res: ServerResponse,
    r: Route,
    q: URLSearchParams,
    kindKey: string,
  ): number {
    const t = r.type;
    const table = wantsTable(req.headers.accept);
    const requested = Number(q.get('timeoutSeconds') ?? deps.maxWatchSeconds);
    const seconds = Math.max(
      1,
      Math.min(Number.isFinite(requested) ? requested : deps.maxWatchSeconds, deps.maxWatchSeconds),
    );
    const opts = {
      ...(q.get('labelSelector') ? { labelSelector: q.get('labelSelector') as string } : {}),
      ...(q.get('fieldSelector') ? { fieldSelector: q.get('fieldSelector') as string } : {}),
    };
    const matches = (o: KubeObject): boolean =>
      (r.namespace === undefined || o.metadata.namespace === r.namespace) &&
      (r.name === undefined || o.metadata.name === r.name) &&
      matchesLabelSelector(o.metadata.labels, opts.labelSelector) &&
      matchesFieldSelector(o, opts.fieldSelector);
    if (
      boolParam(q, 'sendInitialEvents') &&
      (!boolParam(q, 'allowWatchBookmarks') || q.get('resourceVersionMatch') !== 'NotOlderThan')
    ) {
      throw errors.badRequest(
        'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks to true',
      );
    }
    res.writeHead(200, {
      'Content-Type': table ? 'application/json;as=Table;v=v1;g=meta.k8s.io' : JSON_TYPE,
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    // Clients (client-node's Watch) wait for the headers before they start reading.
    res.flushHeaders();
    const writeEvent = (type: string, o: KubeObject): void => {
      const obj = served(o, t, r.version);
      const object = table ? toTable(t, [obj], q.get('includeObject'), obj.metadata.resourceVersion ?? '') : obj;
      res.write(JSON.stringify({ type, object }) + '\n');
    };
    const rvParam = q.get('resourceVersion');
    // Streaming list (client-go's WatchList, on by default from client-go 0.35; istiod uses it): every current
    // object as ADDED, then a BOOKMARK annotated k8s.io/initial-events-end carrying the list's resourceVersion.
    const initialEvents = boolParam(q, 'sendInitialEvents');
    if (initialEvents) {
      const rv = deps.store.resourceVersion;
      for (const o of deps.store.list(kindKey, {
        ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
        ...opts,
      })) {
        if (r.name === undefined || o.metadata.name === r.name) writeEvent('ADDED', o);
      }
      res.write(
        JSON.stringify({
          type: 'BOOKMARK',
          object: {
            kind: t.kind,
            apiVersion: t.group ? `${t.group}/${r.version}` : r.version,
            metadata: { resourceVersion: rv, annotations: { 'k8s.io/initial-events-end': 'true' } },
          },
        }) + '\n',
      );
    } else if (!rvParam || rvParam === '0') {
      for (const o of deps.store.list(kindKey, {
        ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
        ...opts,
      })) {
        if (r.name === undefined || o.metadata.name === r.name) writeEvent('ADDED', o);
      }
    } else {
      const since = deps.store.eventsSince(kindKey, Number(rvParam));
      if (!since) {
        res.write(
          JSON.stringify({
            type: 'ERROR',
            object: errors.gone(`too old resource version: ${rvParam} (${deps.store.resourceVersion})`).status,
          }) + '\n',
        );
        res.end();
        return 200;
      }
      for (const e of since) if (matches(e.object)) writeEvent(e.type, e.object);
    }
    const unsubscribe = deps.store.watch(kindKey, (e: StoreEvent) => {
      if (matches(e.object)) writeEvent(e.type, e.object);
    });
    const close = (): void => {
      clearTimeout(timer);
      unsubscribe();
      openWatches.delete(close);
      if (!res.writableEnded) res.end();
    };
    const timer = setTimeout(close, seconds * 1000);
    openWatches.add(close);
    req.on('close', close);
    res.on('close', close);
    return 200;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    const rec: RequestRecord = {
      time: new Date().toISOString(),
      method,
      path: url.pathname,
      query: url.search,
      verb: method.toLowerCase(),
      user: '',
      status: 0,
    };
    deps.recorder.add(rec);
    let code = 200;
    try {
      if (deps.faults.latencyMs > 0) await new Promise((r) => setTimeout(r, deps.faults.latencyMs));
      const auth = String(req.headers.authorization ?? '');
      const m = auth.match(/^Bearer\s+(\S+)$/i);
      const user = m ? deps.authenticate(m[1] as string) : undefined;
      rec.user = user?.username ?? 'system:anonymous';
      if (['/healthz', '/livez', '/readyz'].includes(url.pathname) && user) {
        send(res, 200, 'ok', 'text/plain; charset=utf-8');
        code = 200;
        return;
      }
      if (deps.faults.serverErrorsRemaining > 0) {
        deps.faults.serverErrorsRemaining -= 1;
        throw errors.internal('lab fault kube-500: etcdserver: request timed out');
      }
      if (!user) throw errors.unauthorized();
      const rt = route(url.pathname);
      if (!rt) throw errors.pathNotFound();
      if (rt.kind === 'discovery') {
        if (method !== 'GET' && method !== 'HEAD')
          throw errors.methodNotSupported('', url.pathname, method.toLowerCase());
        const doc = rt.doc();
        if (!doc) throw errors.pathNotFound();
        rec.verb = 'get';
        send(res, 200, doc);
        return;
      }
      const verb = verbOf(method, rt, q);
      rec.verb = verb;
      rec.resource = rt.type.group ? `${rt.type.resource}.${rt.type.group}` : rt.type.resource;
      if (rt.namespace) rec.namespace = rt.namespace;
      if (rt.name) rec.name = rt.name;
      if (rt.subresource) rec.subresource = rt.subresource;
      // A request on one namespace object (/api/v1/namespaces/<ns>[/status]) is a request *in* <ns>, so a
      // RoleBinding there can grant it (k8s.io/apiserver pkg/endpoints/request/requestinfo.go).
      const namespaceOfRequest =
        rt.namespace ?? (rt.type.group === '' && rt.type.resource === 'namespaces' ? rt.name : undefined);
      const attrs: ResourceAttributes = {
        verb,
        group: rt.subresource === 'token' ? '' : rt.type.group,
        resource: rt.type.resource,
        ...(rt.subresource ? { subresource: rt.subresource } : {}),
        ...(namespaceOfRequest ? { namespace: namespaceOfRequest } : {}),
        ...(rt.name ? { name: rt.name } : {}),
      };
      const isSelfReview =
        rt.type.group === 'authorization.k8s.io' &&
        (rt.type.resource === 'selfsubjectaccessreviews' || rt.type.resource === 'selfsubjectrulesreviews');
      const allowed =
        isSelfReview ||
        (!deps.faults.forbiddenUsers.has(user.username) && deps.authorizer.authorize(user, attrs).allowed);
      if (!allowed) throw errors.forbidden(user.username, attrs);
      code = await handleResource(req, res, rt, q, verb, user);
    } catch (e) {
      const err = e instanceof KubeApiError ? e : errors.internal((e as Error)?.message ?? String(e));
      code = err.code;
      send(res, err.code, err.status);
    } finally {
      rec.status = code;
    }
  }

  return {
    handle: (req, res) => {
      void handle(req, res);
    },
    closeWatches: () => {
      for (const c of [...openWatches]) c();
    },
  };
}
