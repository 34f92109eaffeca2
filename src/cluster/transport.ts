// The one place every Kubernetes API request of the action goes through: it counts requests,
// reports each to an observer, bounds each attempt in time, retries 5xx / 429 / connection errors
// with bounded exponential backoff, and turns failures into messages that name the server, the
// request and — for 403 — the permission to grant. Credentials never reach a message.
import {
  ApiException,
  Observable,
  Watch,
  type ConfigurationOptions,
  type KubeConfig,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import type { RequestContext, ResponseContext } from '@kubernetes/client-node';
import {
  KubeRequestError,
  describeRequest,
  formatForbidden,
  formatRequestFailure,
  formatRetriesExhausted,
  type KubeFailureKind,
} from './errors.js';

export interface RetryPolicy {
  /** Total attempts per request, first one included (≥ 1). */
  attempts: number;
  /** Delay before the 2nd attempt; doubles each time. */
  baseDelayMs: number;
  /** Upper bound of one delay. */
  maxDelayMs?: number;
}

export interface RequestObserver {
  (info: { method: string; path: string }): void;
}

export interface TransportOptions {
  retry?: RetryPolicy;
  onRequest?: RequestObserver;
  /** Bound on one attempt (connect + response). Default 30 s. */
  requestTimeoutMs?: number;
  /** Injected for tests; default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  /** The credentials and server for watches (`watch`); the API clients carry their own. */
  kubeConfig?: KubeConfig;
}

/** How a watch ended: the caller stopped it, the server (or the connection) ended it, or it ran out of time. */
export type WatchEnd = 'stopped' | 'closed' | 'timeout';

export const DEFAULT_RETRY: Required<RetryPolicy> = { attempts: 4, baseDelayMs: 250, maxDelayMs: 4000 };

/** Delay before attempt `attempt + 1` (attempt is 1-based): base·2^(attempt−1), capped. */
export function backoffDelayMs(policy: RetryPolicy, attempt: number, retryAfterSeconds?: number): number {
  const max = policy.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs;
  const exponential = Math.min(max, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  if (retryAfterSeconds !== undefined && Number.isFinite(retryAfterSeconds) && retryAfterSeconds > 0) {
    return Math.min(max, Math.max(exponential, retryAfterSeconds * 1000));
  }
  return exponential;
}

/** How one failed attempt is treated. */
export interface ClassifiedFailure {
  kind: KubeFailureKind;
  retryable: boolean;
  status?: number;
  /** Node/undici error code for connection errors (ECONNREFUSED, ...). */
  code?: string;
  serverMessage?: string;
  retryAfterSeconds?: number;
}

function statusMessageOf(body: unknown): string | undefined {
  let b: unknown = body;
  if (typeof body === 'string') {
    try {
      b = JSON.parse(body);
    } catch {
      return body.length > 0 && body.length < 500 ? body.trim() : undefined;
    }
  }
  if (b && typeof b === 'object' && typeof (b as { message?: unknown }).message === 'string') {
    return (b as { message: string }).message;
  }
  return undefined;
}

function kindOfStatus(status: number): KubeFailureKind {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 422 || status === 400) return 'invalid';
  if (status === 429) return 'throttled';
  if (status >= 500) return 'server';
  return 'other';
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** Decides whether a thrown value is worth another attempt. Pure; exported for tests. */
export function classifyFailure(err: unknown): ClassifiedFailure {
  const looksLikeApiException =
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'number' &&
    'headers' in err &&
    'body' in err;
  if (err instanceof ApiException || looksLikeApiException) {
    const e = err as ApiException<unknown>;
    const status = e.code;
    const kind = kindOfStatus(status);
    const out: ClassifiedFailure = { kind, status, retryable: kind === 'server' || kind === 'throttled' };
    const msg = statusMessageOf(e.body);
    if (msg !== undefined) out.serverMessage = msg;
    const ra = e.headers?.['retry-after'];
    if (ra !== undefined && /^\d+$/.test(ra)) out.retryAfterSeconds = Number(ra);
    return out;
  }
  // Duck-typed: errors can come from another realm (undici's DOMException, test sandboxes).
  if (typeof err === 'object' && err !== null) {
    const e = err as { name?: unknown; message?: unknown; code?: unknown; cause?: { code?: unknown; name?: unknown } };
    if (e.name === 'TimeoutError' || e.name === 'AbortError')
      return { kind: 'timeout', retryable: true, code: 'timeout' };
    // undici: TypeError('fetch failed') with cause { code }
    const cause = e.cause;
    const code = typeof e.code === 'string' ? e.code : typeof cause?.code === 'string' ? cause.code : undefined;
    if (cause?.name === 'TimeoutError' || cause?.name === 'AbortError')
      return { kind: 'timeout', retryable: true, code: 'timeout' };
    if (code && CONNECTION_CODES.has(code)) return { kind: 'unreachable', retryable: true, code };
    const message = typeof e.message === 'string' ? e.message : '';
    if (message === 'fetch failed' || /socket|network|connect/i.test(message)) {
      return { kind: 'unreachable', retryable: true, code: code ?? 'connection error' };
    }
    if (code) return { kind: 'unreachable', retryable: false, code };
  }
  return { kind: 'other', retryable: false };
}

/**
 * Runs client-node calls. Use `call(options => api.readX(params, options))`: the options carry a
 * middleware that records the real method + path of each attempt, counts it and bounds it in time.
 */
export class KubeTransport {
  requestCount = 0;
  private readonly retry: Required<RetryPolicy>;
  private readonly timeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    readonly server: string,
    private readonly options: TransportOptions = {},
  ) {
    this.retry = { ...DEFAULT_RETRY, ...(options.retry ?? {}) };
    if (!(this.retry.attempts >= 1)) this.retry.attempts = 1;
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /**
   * One logical request with retries. `headers` are added to every attempt (e.g. the apply-patch
   * content type). Throws KubeRequestError.
   */
  async call<T>(fn: (options: ConfigurationOptions) => Promise<T>, headers: Record<string, string> = {}): Promise<T> {
    let last: { method: string; path: string } = { method: '?', path: '?' };
    for (let attempt = 1; ; attempt++) {
      const seen: { method: string; path: string } = { method: '?', path: '?' };
      const middleware: ObservableMiddleware = {
        pre: (ctx: RequestContext) => {
          const url = new URL(ctx.getUrl());
          seen.method = String(ctx.getHttpMethod());
          seen.path = url.pathname + url.search;
          for (const [k, v] of Object.entries(headers)) ctx.setHeaderParam(k, v);
          ctx.setSignal(AbortSignal.timeout(this.timeoutMs));
          this.requestCount++;
          this.options.onRequest?.({ method: seen.method, path: seen.path });
          return new Observable(Promise.resolve(ctx));
        },
        post: (ctx: ResponseContext) => new Observable(Promise.resolve(ctx)),
      };
      try {
        return await fn({ middleware: [middleware], middlewareMergeStrategy: 'append' });
      } catch (err) {
        last = seen;
        const failure = classifyFailure(err);
        if (failure.retryable && attempt < this.retry.attempts) {
          await this.sleep(backoffDelayMs(this.retry, attempt, failure.retryAfterSeconds));
          continue;
        }
        throw this.toError(failure, last.method, last.path, attempt, err);
      }
    }
  }

  /**
   * One watch (`GET path?watch=true&…`), counted and reported like any request; not retried (the caller
   * decides whether to watch again: a new watch without resourceVersion starts with the current state).
   * `onEvent` gets each event and returns true to stop. Ends after `timeoutMs` at the latest, or when `signal`
   * aborts ('stopped'). Throws
   * KubeRequestError when the server refuses the watch (403, 404, …); a connection that fails or drops
   * ends it as 'closed'.
   */
  async watch(
    path: string,
    query: Record<string, string | number>,
    onEvent: (type: string, object: unknown) => boolean,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<WatchEnd> {
    const kubeConfig = this.options.kubeConfig;
    if (!kubeConfig) throw new Error('this Kubernetes transport has no kubeconfig for watches');
    const search = new URLSearchParams({ watch: 'true' });
    for (const [k, v] of Object.entries(query)) search.set(k, String(v));
    const recorded = `${path}?${search.toString()}`;
    this.requestCount++;
    this.options.onRequest?.({ method: 'GET', path: recorded });
    return new Promise<WatchEnd>((resolve, reject) => {
      let settled = false;
      let controller: AbortController | undefined;
      const finish = (end: WatchEnd, error?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        controller?.abort();
        if (error !== undefined) reject(error);
        else resolve(end);
      };
      const timer = setTimeout(() => finish('timeout'), Math.max(0, timeoutMs));
      const onAbort = (): void => finish('stopped');
      if (signal?.aborted) onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const refused = (err: unknown): KubeRequestError | undefined => {
        const status = (err as { statusCode?: unknown } | null)?.statusCode;
        if (typeof status !== 'number') return undefined;
        const kind = kindOfStatus(status);
        return this.toError({ kind, status, retryable: false }, 'GET', recorded, 1, err);
      };
      new Watch(kubeConfig)
        .watch(
          path,
          query,
          (type: string, object: unknown) => {
            if (settled) return;
            if (type === 'ERROR') return finish('closed');
            try {
              if (onEvent(type, object)) finish('stopped');
            } catch (err) {
              finish('stopped', err);
            }
          },
          (err: unknown) => {
            const refusal = err ? refused(err) : undefined;
            finish('closed', refusal);
          },
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => finish('closed', refused(err)),
        );
    });
  }

  /** Like call, but a 404 gives undefined. */
  async callOptional<T>(
    fn: (options: ConfigurationOptions) => Promise<T>,
    headers: Record<string, string> = {},
  ): Promise<T | undefined> {
    try {
      return await this.call(fn, headers);
    } catch (err) {
      if (err instanceof KubeRequestError && err.kind === 'not-found') return undefined;
      throw err;
    }
  }

  private toError(
    f: ClassifiedFailure,
    method: string,
    path: string,
    attempts: number,
    cause: unknown,
  ): KubeRequestError {
    const target = describeRequest(method, path === '?' ? '/' : path);
    let message: string;
    if (f.kind === 'forbidden') {
      message = formatForbidden(this.server, method, path, f.serverMessage);
    } else if (f.retryable) {
      message = formatRetriesExhausted(this.server, method, path, attempts, f);
    } else if (f.status !== undefined) {
      message = formatRequestFailure(this.server, method, path, f.status, f.serverMessage);
    } else {
      // Not an HTTP answer and not a known connection error: keep only the error's class and code,
      // never its text (a TLS error could quote a certificate).
      const kind = cause instanceof Error ? cause.name : typeof cause;
      const code = f.code ? ` ${f.code}` : '';
      message = `Kubernetes API ${this.server}: request ${method} ${path} failed (${kind}${code})`;
    }
    return new KubeRequestError(message, f.kind, method, path, attempts, f.status, target, f.serverMessage);
  }
}

/** Content type of server-side apply; add as a header on the patch call. */
export const APPLY_PATCH_HEADERS = { 'Content-Type': 'application/apply-patch+yaml' } as const;
