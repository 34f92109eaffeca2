// The verification-Job runner of ADR 0002, as a controller of the Kubernetes double: for Jobs
// labelled app.kubernetes.io/managed-by=istio-vm-onboard it creates the Pod, reads IVO_TARGET_URL /
// IVO_REQUESTS and the inject label, makes the calls (mTLS with a mesh client cert and Istio SNI
// when injected, plaintext when sidecar.istio.io/inject=false), writes `ivo-call <n> <code>` …
// `ivo-done` as the pod log and sets Pod/Job status like batch/v1.
import http from 'node:http';
import https from 'node:https';
import type { KubeApiDouble, KubeObject, StoreEvent } from '../kube/index.js';
import { KINDS, jobActiveStatus, jobFinishedStatus, podFromJob, podStatus } from '../kube/index.js';
import type { MeshCa } from '../istiod/ca.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'istio-vm-onboard';

export interface CallResult {
  code: string; // "200" or "000"
}

/** One call like `curl -s -o /dev/null -w '%{http_code}' --max-time 5 URL`. */
export function callOnce(
  url: string,
  mtls: { keyPem: string; certPem: string; caPem: string } | undefined,
  timeoutMs = 5000,
): Promise<CallResult> {
  const u = new URL(url);
  const port = Number(u.port || 80);
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
      host: u.hostname,
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
            servername: `outbound_.${port}_._.${u.hostname}`,
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
}

export function startJobRunner(api: KubeApiDouble, o: JobRunnerOptions): () => void {
  const seen = new Set<string>();
  return api.addController(
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
      const injected = (job.spec?.template?.metadata?.labels?.['sidecar.istio.io/inject'] ?? 'true') !== 'false';
      const container =
        ((job.spec?.template?.spec?.containers ?? [])[0] as { name?: string } | undefined)?.name ?? 'ivo-client';
      const n = Math.min(Math.max(0, Number(env.IVO_REQUESTS ?? 3) || 0), o.maxRequests ?? 20);
      const id = injected
        ? o.ca.issueWorkloadCert(ns, String(job.spec?.template?.spec?.serviceAccountName ?? 'default'))
        : undefined;
      const lines: string[] = [];
      for (let i = 1; i <= n; i++) {
        const r = env.IVO_TARGET_URL
          ? await callOnce(
              env.IVO_TARGET_URL,
              id && { keyPem: id.keyPem, certPem: id.certPem, caPem: o.ca.rootCertPem },
            )
          : { code: '000' };
        lines.push(`ivo-call ${i} ${r.code}`);
        a.setPodLog(ns, podName, container, lines.join('\n') + '\n');
      }
      lines.push('ivo-done');
      a.setPodLog(ns, podName, container, lines.join('\n') + '\n');
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
}
