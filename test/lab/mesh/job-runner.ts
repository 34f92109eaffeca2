// The verification-Job runner of ADR 0002, as a controller of the Kubernetes double: for Jobs
// labelled app.kubernetes.io/managed-by=istio-vm-onboard it creates the Pod, decides whether the
// injector would add a sidecar (injectionOf), reads the container env (IVO_TARGET_URL, IVO_REQUESTS,
// IVO_RESOLVE, IVO_WAIT_FOR, IVO_WAIT_ATTEMPTS), makes the calls the way the pod would — an injected
// pod's sidecar routes them as Envoy does (mesh/routing.ts: mTLS with Istio's SNI only for a mesh
// service whose endpoint is mTLS-capable; a raw IP goes through PassthroughCluster in plaintext), a
// pod without sidecar calls in plaintext — writes `ivo-wait <n> seen|unseen`, `ivo-call <n> <code>` …
// `ivo-done` as the pod log and sets Pod/Job status like batch/v1.
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { KubeApiDouble, KubeObject, ObjectStore, StoreEvent } from '../kube/index.js';
import { KINDS, jobActiveStatus, jobFinishedStatus, podFromJob, podStatus } from '../kube/index.js';
import type { MeshCa } from '../istiod/ca.js';
import type { MeshService } from '../istiod/server.js';
import {
  SERVICE_ENTRIES,
  clusterDnsLookup,
  envoyClusterLines,
  meshRegistry,
  routeOutbound,
  type MeshServicePort,
  type RouteDecision,
} from './routing.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'istio-vm-onboard';

export interface CallResult {
  code: string; // "200" or "000"
}

export interface MtlsIdentity {
  keyPem: string;
  certPem: string;
  caPem: string;
}

/**
 * One HTTP exchange like `curl -s -o /dev/null -w '%{http_code}' --max-time 5 URL`, connecting to
 * `connect` (address and port) with the URL's Host header; mutual TLS with `sni` when `mtls` is given.
 */
export function callOnce(
  url: string,
  mtls: (MtlsIdentity & { sni?: string }) | undefined,
  timeoutMs = 5000,
  connect?: { address: string; port: number },
): Promise<CallResult> {
  const u = new URL(url);
  const port = connect?.port ?? Number(u.port || 80);
  const address = connect?.address ?? u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    let done = false;
    const finish = (code: string) => {
      if (!done) {
        done = true;
        resolve({ code });
      }
    };
    const timer = setTimeout(() => {
      req.destroy();
      finish('000');
    }, timeoutMs);
    const onRes = (res: http.IncomingMessage) => {
      res.resume();
      res.on('end', () => {
        clearTimeout(timer);
        finish(String(res.statusCode ?? 0).padStart(3, '0'));
      });
    };
    const common = {
      host: address,
      port,
      path: u.pathname + u.search,
      method: 'GET',
      headers: { host: u.host, 'user-agent': 'curl/8.11.1', accept: '*/*' },
      agent: false as const,
    };
    const req = mtls
      ? https.request(
          {
            ...common,
            key: mtls.keyPem,
            cert: mtls.certPem,
            ca: mtls.caPem,
            servername: mtls.sni ?? `outbound_.${port}_._.${u.hostname}`,
            ALPNProtocols: ['istio-http/1.1', 'istio', 'http/1.1'],
            checkServerIdentity: () => undefined, // Istio checks the SPIFFE SAN, not a hostname
          } as https.RequestOptions,
          onRes,
        )
      : http.request(common, onRes);
    req.on('error', () => {
      clearTimeout(timer);
      finish('000');
    });
    req.end();
  });
}

/** A trace of one call an injected pod made (for lab tests). */
export interface CallTrace {
  job: string;
  url: string;
  route: RouteDecision;
  code: string;
}

/**
 * One call from a pod: without sidecar straight to the address (plaintext); with a sidecar through the
 * route Envoy would take. `resolve` is curl's `--resolve host:port:address`.
 */
export async function callFromPod(
  url: string,
  pod: { sidecar?: MtlsIdentity; registry: MeshServicePort[]; resolve?: string },
  timeoutMs = 5000,
): Promise<{ code: string; route?: RouteDecision }> {
  const u = new URL(url);
  const port = Number(u.port || 80);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  let dialled: string | undefined;
  const forced = /^(.+):(\d+):(.+)$/.exec(pod.resolve ?? '');
  if (forced && forced[1]!.toLowerCase() === host.toLowerCase() && Number(forced[2]) === port)
    dialled = forced[3]!.replace(/^\[|\]$/g, '');
  else if (isIP(host)) dialled = host;
  else dialled = clusterDnsLookup(pod.registry, host);
  if (!dialled) return { code: '000' }; // curl: could not resolve host
  if (!pod.sidecar) return callOnce(url, undefined, timeoutMs, { address: dialled, port });
  const route = routeOutbound(pod.registry, dialled, port, u.host);
  const fail = route.http ? '503' : '000'; // Envoy answers an HTTP listener's upstream failure itself
  if (!route.hasEndpoint) return { code: fail, route };
  const r = await callOnce(url, route.sni ? { ...pod.sidecar, sni: route.sni } : undefined, timeoutMs, {
    address: route.address,
    port: route.port,
  });
  return { code: r.code === '000' ? fail : r.code, route };
}

/**
 * Whether the injector adds a sidecar (Istio's injection webhooks): `sidecar.istio.io/inject: "false"`
 * never; pod label `istio.io/rev: R` → revision R's injector; pod label `sidecar.istio.io/inject: "true"`
 * → the default revision's injector only; else the namespace labels `istio.io/rev` / `istio-injection=enabled`.
 * An injector exists when its ConfigMap (`istio-sidecar-injector[-R]`) does.
 */
export function injectionOf(
  store: ObjectStore,
  namespace: string,
  podLabels: Record<string, string>,
): { injected: boolean; revision: string; why: string } {
  const injectors = new Set(
    store
      .list(KINDS.configMaps)
      .map((cm) => /^istio-sidecar-injector(?:-(.+))?$/.exec(cm.metadata.name))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => m[1] ?? ''),
  );
  const by = (revision: string, why: string) =>
    injectors.has(revision)
      ? { injected: true, revision, why }
      : { injected: false, revision, why: `${why}, but no injector for revision "${revision || 'default'}"` };
  if (podLabels['sidecar.istio.io/inject'] === 'false')
    return { injected: false, revision: '', why: 'sidecar.istio.io/inject=false' };
  const podRev = podLabels['istio.io/rev'];
  if (podRev) return by(podRev, `istio.io/rev=${podRev}`);
  if (podLabels['sidecar.istio.io/inject'] === 'true') return by('', 'sidecar.istio.io/inject=true');
  const nsLabels = store.get(KINDS.namespaces, undefined, namespace)?.metadata.labels ?? {};
  if (nsLabels['istio.io/rev']) return by(nsLabels['istio.io/rev'], `namespace istio.io/rev`);
  if (nsLabels['istio-injection'] === 'enabled') return by('', 'namespace istio-injection=enabled');
  return { injected: false, revision: '', why: 'no injection label on the pod or its namespace' };
}

function envOf(job: KubeObject): Record<string, string> {
  const c = (job.spec?.template?.spec?.containers ?? [])[0] as
    { env?: Array<{ name: string; value?: string }> } | undefined;
  const env: Record<string, string> = {};
  for (const e of c?.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

export interface JobRunnerOptions {
  ca: MeshCa;
  /** Max calls per Job (bounded whatever IVO_REQUESTS says). */
  maxRequests?: number;
  /** Services the istiod double announces (the echo service). */
  services?: () => MeshService[];
  /** Time from a ServiceEntry's creation until client sidecars see it (istiod debounce + push). Default 1500 ms. */
  propagationMs?: number;
  /** Pause between `ivo-wait` attempts (the script's `sleep 1`). Default 1000 ms. */
  waitPauseMs?: number;
  /** Every call an injected pod made, with its route (lab tests). */
  onCall?: (trace: CallTrace) => void;
}

export function startJobRunner(api: KubeApiDouble, o: JobRunnerOptions): () => void {
  const seen = new Set<string>();
  // When the lab first saw each ServiceEntry (uid): visible to clients propagationMs later.
  const firstSeen = new Map<string, number>();
  const propagationMs = o.propagationMs ?? 1500;
  const visible = (_kind: string, obj: KubeObject) => {
    const uid = obj.metadata.uid ?? `${obj.metadata.namespace}/${obj.metadata.name}`;
    if (!firstSeen.has(uid)) firstSeen.set(uid, Date.now());
    return Date.now() - firstSeen.get(uid)! >= propagationMs;
  };
  const stopEntries = api.addController(
    (event: StoreEvent) => {
      const uid = event.object.metadata.uid;
      if (!uid) return;
      if (event.type === 'DELETED') firstSeen.delete(uid);
      else if (!firstSeen.has(uid)) firstSeen.set(uid, Date.now());
    },
    [SERVICE_ENTRIES],
  );
  const stopJobs = api.addController(
    async (event: StoreEvent, a: KubeApiDouble) => {
      if (event.type !== 'ADDED') return;
      const job = event.object;
      if (job.metadata.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) return;
      const key = `${job.metadata.namespace}/${job.metadata.name}/${job.metadata.uid}`;
      if (seen.has(key)) return;
      seen.add(key);
      const ns = job.metadata.namespace as string;
      const pod = a.store.create(KINDS.pods, podFromJob(job));
      const podName = pod.metadata.name;
      a.store.patchStatus(KINDS.pods, ns, podName, podStatus(pod, 'Running'));
      a.store.patchStatus(KINDS.jobs, ns, job.metadata.name, jobActiveStatus());
      const env = envOf(job);
      const { injected } = injectionOf(a.store, ns, pod.metadata.labels ?? {});
      const container =
        ((job.spec?.template?.spec?.containers ?? [])[0] as { name?: string } | undefined)?.name ?? 'ivo-client';
      const n = Math.min(Math.max(0, Number(env.IVO_REQUESTS ?? 3) || 0), o.maxRequests ?? 20);
      const id = injected
        ? o.ca.issueWorkloadCert(ns, String(job.spec?.template?.spec?.serviceAccountName ?? 'default'))
        : undefined;
      const sidecar = id && { keyPem: id.keyPem, certPem: id.certPem, caPem: o.ca.rootCertPem };
      const registry = () =>
        meshRegistry({ store: a.store, services: o.services?.() ?? [], clientNamespace: ns, visible });
      const lines: string[] = [];
      const log = () => a.setPodLog(ns, podName, container, lines.join('\n') + '\n');
      // `curl -s localhost:15000/clusters | grep -qF "$IVO_WAIT_FOR"`, 1 s apart, at most IVO_WAIT_ATTEMPTS times.
      if (env.IVO_WAIT_FOR) {
        const attempts = Math.min(Math.max(1, Number(env.IVO_WAIT_ATTEMPTS ?? 1) || 1), 60);
        for (let w = 1; w <= attempts; w++) {
          const found = !!sidecar && envoyClusterLines(registry()).some((l) => l.includes(env.IVO_WAIT_FOR!));
          lines.push(`ivo-wait ${w} ${found ? 'seen' : 'unseen'}`);
          log();
          if (found) break;
          if (w < attempts) await new Promise((r) => setTimeout(r, o.waitPauseMs ?? 1000));
        }
      }
      for (let i = 1; i <= n; i++) {
        let code = '000';
        if (env.IVO_TARGET_URL) {
          const r = await callFromPod(env.IVO_TARGET_URL, {
            ...(sidecar ? { sidecar } : {}),
            registry: registry(),
            ...(env.IVO_RESOLVE ? { resolve: env.IVO_RESOLVE } : {}),
          });
          code = r.code;
          if (r.route) o.onCall?.({ job: job.metadata.name, url: env.IVO_TARGET_URL, route: r.route, code });
        }
        lines.push(`ivo-call ${i} ${code}`);
        log();
      }
      lines.push('ivo-done');
      log();
      // The script always exits 0 (curl failures print 000), so the Job completes.
      try {
        if (a.store.get(KINDS.pods, ns, podName))
          a.store.patchStatus(KINDS.pods, ns, podName, podStatus(pod, 'Succeeded'));
        if (a.store.get(KINDS.jobs, ns, job.metadata.name))
          a.store.patchStatus(KINDS.jobs, ns, job.metadata.name, jobFinishedStatus(true));
      } catch {
        /* the Job or Pod was deleted while running: nothing left to update */
      }
    },
    [KINDS.jobs],
  );
  return () => {
    stopJobs();
    stopEntries();
  };
}
