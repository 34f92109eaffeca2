// The part of kube-apiserver's admission chain the lab needs for Pods: the MutatingWebhookConfigurations in
// the cluster (what `istioctl manifest generate` installed, with the caBundle istiod's webhook controller
// patched in) decide which webhook is called for a new Pod — rules, namespaceSelector, objectSelector,
// exactly as the apiserver matches them — and the lab POSTs an admission.k8s.io/v1 AdmissionReview to it
// and applies the JSONPatch it returns. For Istio's sidecar injector that is the real istiod's
// `/inject` handler (pilot/pkg/kube/inject/webhook.go, `serveInject`), so the injected Pod is what
// Istio's own injection template renders for this mesh. A `service:` clientConfig is resolved the way
// the apiserver's service resolver does (Service port → targetPort) to the address of the process behind
// it, which the caller names (the lab's istiod listens on the east-west address).
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import type { KubeObject, ObjectStore } from '../kube/index.js';
import { KINDS } from '../kube/index.js';

const MUTATING_WEBHOOKS = 'mutatingwebhookconfigurations.admissionregistration.k8s.io';

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

interface Webhook {
  name: string;
  clientConfig: {
    url?: string;
    caBundle?: string;
    service?: { name: string; namespace: string; path?: string; port?: number };
  };
  rules?: Array<{ apiGroups?: string[]; apiVersions?: string[]; operations?: string[]; resources?: string[] }>;
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  failurePolicy?: 'Fail' | 'Ignore';
  timeoutSeconds?: number;
}

/** Label selector semantics of k8s.io/apimachinery (metav1.LabelSelectorAsSelector); empty matches all. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new Error(`label selector operator ${e.operator} is not supported`);
    }
  }
  return true;
}

function rulesMatchPodCreate(w: Webhook): boolean {
  const any = (list: string[] | undefined, v: string) => !list || list.includes('*') || list.includes(v);
  return (w.rules ?? []).some(
    (r) =>
      any(r.apiGroups, '') &&
      any(r.apiVersions, 'v1') &&
      any(r.operations, 'CREATE') &&
      (r.resources ?? []).some((x) => x === 'pods' || x === '*'),
  );
}

export interface AdmissionOptions {
  store: ObjectStore;
  /** Address of the process behind a webhook Service (`istio-system/istiod` → the east-west address). */
  serviceAddress: (namespace: string, name: string) => string | undefined;
  /** Username the request is made as (AdmissionReview userInfo). */
  user?: string;
  log?: (line: string) => void;
}

export interface AdmissionResult {
  pod: KubeObject;
  /** The webhooks that were called (`configuration/webhook`), in order. */
  called: string[];
}

/** POSTs one AdmissionReview; resolves with the response object. */
function postReview(
  target: { host: string; port: number; path: string; servername?: string; ca?: string },
  body: unknown,
  timeoutMs: number,
): Promise<{ allowed?: boolean; patch?: string; patchType?: string; status?: { message?: string } }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: target.host,
        port: target.port,
        path: target.path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
        ...(target.ca ? { ca: target.ca } : { rejectUnauthorized: false }),
        ...(target.servername ? { servername: target.servername } : {}),
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if ((res.statusCode ?? 0) !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
          try {
            resolve((JSON.parse(text) as { response?: Record<string, unknown> }).response ?? {});
          } catch (e) {
            reject(new Error(`not an AdmissionReview: ${(e as Error).message}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * Runs the mutating admission webhooks that match a Pod CREATE in `namespace` and returns the admitted Pod.
 * A failing webhook with failurePolicy Fail (Istio's injector has it) rejects the Pod: throws.
 */
export async function admitPod(pod: KubeObject, o: AdmissionOptions): Promise<AdmissionResult> {
  const namespace = pod.metadata.namespace as string;
  const nsLabels = {
    ...(o.store.get(KINDS.namespaces, undefined, namespace)?.metadata.labels ?? {}),
    // The apiserver's NamespaceLifecycle gives every namespace this label (1.22+).
    'kubernetes.io/metadata.name': namespace,
  };
  let current = structuredClone(pod);
  const called: string[] = [];
  // The apiserver calls the configurations in name order.
  const configs = o.store.list(MUTATING_WEBHOOKS).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const cfg of configs) {
    for (const w of ((cfg as { webhooks?: Webhook[] }).webhooks ?? []) as Webhook[]) {
      if (!rulesMatchPodCreate(w)) continue;
      if (!selectorMatches(w.namespaceSelector, nsLabels)) continue;
      if (!selectorMatches(w.objectSelector, current.metadata.labels ?? {})) continue;
      const id = `${cfg.metadata.name}/${w.name}`;
      try {
        let target: { host: string; port: number; path: string; servername?: string; ca?: string };
        const ca = w.clientConfig.caBundle ? Buffer.from(w.clientConfig.caBundle, 'base64').toString() : undefined;
        if (w.clientConfig.url) {
          const u = new URL(w.clientConfig.url);
          target = { host: u.hostname, port: Number(u.port || 443), path: u.pathname + u.search };
        } else if (w.clientConfig.service) {
          const s = w.clientConfig.service;
          const svc = o.store.get(KINDS.services, s.namespace, s.name);
          if (!svc) throw new Error(`service ${s.namespace}/${s.name} not found`);
          const port = s.port ?? 443;
          const sp = ((svc.spec?.ports ?? []) as Array<{ port: number; targetPort?: number | string }>).find(
            (p) => p.port === port,
          );
          if (!sp) throw new Error(`service ${s.namespace}/${s.name} has no port ${port}`);
          const host = o.serviceAddress(s.namespace, s.name);
          if (!host) throw new Error(`no endpoints for service ${s.namespace}/${s.name}`);
          target = {
            host,
            port: typeof sp.targetPort === 'number' ? sp.targetPort : port,
            path: s.path ?? '/',
            // The apiserver verifies the serving certificate for <name>.<namespace>.svc.
            servername: `${s.name}.${s.namespace}.svc`,
          };
        } else throw new Error('clientConfig has neither url nor service');
        if (ca) target.ca = ca;
        const uid = randomUUID();
        const response = await postReview(
          target,
          {
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            request: {
              uid,
              kind: { group: '', version: 'v1', kind: 'Pod' },
              resource: { group: '', version: 'v1', resource: 'pods' },
              requestKind: { group: '', version: 'v1', kind: 'Pod' },
              requestResource: { group: '', version: 'v1', resource: 'pods' },
              name: current.metadata.name,
              namespace,
              operation: 'CREATE',
              userInfo: { username: o.user ?? 'system:serviceaccount:kube-system:job-controller' },
              object: current,
              oldObject: null,
              dryRun: false,
              options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
            },
          },
          (w.timeoutSeconds ?? 10) * 1000,
        );
        called.push(id);
        if (response.allowed === false)
          throw new Error(`denied the request: ${response.status?.message ?? 'no message'}`);
        if (response.patch) {
          if (response.patchType && response.patchType !== 'JSONPatch')
            throw new Error(`patchType ${response.patchType} is not JSONPatch`);
          const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString()) as Operation[];
          current = fastJsonPatch.applyPatch(current, ops, true, false).newDocument as KubeObject;
          o.log?.(`admission: ${id} patched pod ${namespace}/${current.metadata.name} (${ops.length} operations)`);
        }
      } catch (e) {
        const message = `Internal error occurred: failed calling webhook "${w.name}": ${(e as Error).message}`;
        if ((w.failurePolicy ?? 'Fail') === 'Fail') throw new Error(message, { cause: e });
        o.log?.(`admission: ${message} (failurePolicy Ignore)`);
      }
    }
  }
  return { pod: current, called };
}
