// The lab's Pod runner ): what a real cluster's Job controller, apiserver admission and kubelet
// do for the Pods the action's verification Jobs create (and for the mesh's own workloads, see
// mesh/real-echo.ts). For a Job labelled app.kubernetes.io/managed-by=istio-vm-onboard it
// 1. makes the Pod as the Job controller does (kube/jobs.ts podFromJob);
// 2. admits it through the cluster's mutating webhooks (istio/admission.ts) — the real istiod's injector adds
//    istio-init and istio-proxy when its webhooks' selectors match the pod (sidecar.istio.io/inject,
//    istio.io/rev, namespace labels), nothing otherwise — and stores it;
// 3. runs it (pods/sandbox.ts): its own netns and pod IP on the lab bridge (status.podIP is set before any
//    container starts, so istiod finds the proxy's pod), volumes filled like the kubelet fills them (a real
//    TokenRequest for the pod's ServiceAccount per projected token, ConfigMaps, downward API), init
//    containers in order (Istio's `istio-iptables` args run by the real pilot-agent), native sidecars
//    (`restartPolicy: Always`, Istio's `sidecar.istio.io/nativeSidecar`) started and held until their
//    startupProbe passes (istio-proxy: pilot-agent's 15021 /healthz/ready), then the app containers, each
//    with the env the kubelet gives it (fieldRefs and resourceFieldRefs resolved, $(VAR) expanded) as its
//    securityContext user; their output is the pod log the Kubernetes double serves;
// 4. sets Pod and Job status like batch/v1 and removes the pod's sandbox when it is done (sidecars ended).
// Bounded everywhere: the Job's activeDeadlineSeconds, init containers, probes.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import type { KubeApiDouble, KubeObject, StoreEvent } from '../kube/index.js';
import { KINDS, jobActiveStatus, jobFinishedStatus, podFromJob } from '../kube/index.js';
import { admitPod } from '../istio/admission.js';
import { MAX_PODS, podHostVeth, podIP, podNetns } from '../net/addresses.js';
import { sleep } from '../exec.js';
import {
  createPodNetwork,
  destroyPod,
  privateMountPath,
  spawnInPod,
  startPodAnchor,
  type LabPodState,
  type SandboxFiles,
} from './sandbox.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'istio-vm-onboard';

/** The proxy image's files (`docker.io/istio/proxyv2:<tag>`, tools/docker/Dockerfile.proxyv2 in the module). */
export interface ProxyImageFiles {
  pilotAgent: string;
  envoy: string;
  /** tools/packaging/common/envoy_bootstrap.json → /var/lib/istio/envoy/envoy_bootstrap_tmpl.json */
  bootstrapTemplate: string;
}

export interface PodRunnerOptions {
  api: KubeApiDouble;
  labIndex: number;
  /** The lab's DIR: pods live under DIR/pods/<slot>. */
  dir: string;
  /** The "node" address (status.hostIP) and where istiod listens (the east-west address). */
  gatewayIP: string;
  proxyImage: ProxyImageFiles;
  /** Extra /etc/hosts lines of every pod ("ADDRESS NAME…"), e.g. istiod.istio-system.svc. */
  hosts: string[];
  /** The runner's Node binary: every pod sees it at POD_NODE (the lab's own workloads run on it). */
  nodePath?: string;
  /** Where the process behind a webhook Service listens (admission). */
  serviceAddress: (namespace: string, name: string) => string | undefined;
  /** Called with every pod sandbox that exists (before it is made and after it is gone): DIR/state.json. */
  onPodsChanged?: (pods: LabPodState[]) => void;
  log?: (line: string) => void;
  /** Bound on a native sidecar's startupProbe (default 90 s) and an init container (default 120 s). */
  sidecarStartTimeoutMs?: number;
  initTimeoutMs?: number;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: { containerName?: string; resource: string; divisor?: string | number };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
  };
}

interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string };
  tcpSocket?: { port: number | string };
  periodSeconds?: number;
  failureThreshold?: number;
  initialDelaySeconds?: number;
  timeoutSeconds?: number;
}

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: unknown[];
  workingDir?: string;
  restartPolicy?: string;
  ports?: Array<{ name?: string; containerPort: number }>;
  securityContext?: { runAsUser?: number; runAsGroup?: number };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
  startupProbe?: Probe;
  readinessProbe?: Probe;
}

interface Volume {
  name: string;
  emptyDir?: unknown;
  configMap?: { name: string; items?: Array<{ key: string; path: string }>; optional?: boolean };
  secret?: { secretName: string; optional?: boolean };
  downwardAPI?: { items: Array<{ path: string; fieldRef?: { fieldPath: string } }> };
  projected?: {
    sources: Array<{
      serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string };
      configMap?: { name: string; items?: Array<{ key: string; path: string }>; optional?: boolean };
      downwardAPI?: { items: Array<{ path: string; fieldRef?: { fieldPath: string } }> };
    }>;
  };
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where a pod finds the runner's Node (bind-mounted read-only), for the lab's own workloads (mesh/real-echo.ts). */
export const POD_NODE = '/usr/local/lib/lab-pod/node';
const PROXY_IMAGE = /(^|\/)proxyv2(:|@|$)/;

/** `k8s.io/kubernetes/pkg/fieldpath.FormatMap`: sorted `key="value"` lines, no trailing newline. */
export function formatMap(m: Record<string, string>): string {
  return Object.keys(m)
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k])}`)
    .join('\n');
}

/** `$(VAR)` expansion of Kubernetes (`k8s.io/kubernetes/third_party/forked/golang/expansion`): `$$` escapes. */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) =>
    m === '$$' ? '$' : name !== undefined && env[name] !== undefined ? env[name]! : m,
  );
}

function httpProbe(host: string, port: number, urlPath: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      { host, port, path: urlPath, timeout: timeoutMs, headers: { 'user-agent': 'kube-probe/1.34' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

export interface RunningPod {
  state: LabPodState;
  /** Resolves when every regular container has exited: their exit codes by name. */
  exited: Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export class PodRunner {
  private readonly pods = new Map<number, LabPodState>();
  private readonly processes = new Map<number, ChildProcess[]>();
  private stopped = false;
  private readonly stopControllers: Array<() => void> = [];

  constructor(private readonly o: PodRunnerOptions) {}

  private log(line: string): void {
    this.o.log?.(`pods: ${line}`);
  }

  private changed(): void {
    this.o.onPodsChanged?.([...this.pods.values()]);
  }

  /** Runs the action's verification Jobs (and any Job labelled managed-by istio-vm-onboard). */
  startJobController(): void {
    const seen = new Set<string>();
    this.stopControllers.push(
      this.o.api.addController(
        async (event: StoreEvent) => {
          if (event.type !== 'ADDED' || this.stopped) return;
          const job = event.object;
          if (job.metadata.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) return;
          const key = `${job.metadata.namespace}/${job.metadata.name}/${job.metadata.uid}`;
          if (seen.has(key)) return;
          seen.add(key);
          await this.runJob(job);
        },
        [KINDS.jobs],
      ),
    );
    // A Pod deleted while it runs (the Job's Background delete, kubectl delete): its sandbox goes too.
    this.stopControllers.push(
      this.o.api.addController(
        async (event: StoreEvent) => {
          if (event.type !== 'DELETED') return;
          for (const p of this.pods.values())
            if (p.namespace === event.object.metadata.namespace && p.name === event.object.metadata.name)
              await this.remove(p.slot);
        },
        [KINDS.pods],
      ),
    );
  }

  private async runJob(job: KubeObject): Promise<void> {
    const ns = job.metadata.namespace as string;
    const store = this.o.api.store;
    const deadlineS = Number(job.spec?.activeDeadlineSeconds ?? 600);
    const finish = (ok: boolean, message = '') => {
      try {
        if (store.get(KINDS.jobs, ns, job.metadata.name))
          store.patchStatus(KINDS.jobs, ns, job.metadata.name, jobFinishedStatus(ok, message));
      } catch {
        /* deleted meanwhile */
      }
    };
    let pod: KubeObject;
    try {
      const admitted = await admitPod(podFromJob(job), {
        store,
        serviceAddress: this.o.serviceAddress,
        log: (l) => this.log(l),
      });
      pod = store.create(KINDS.pods, admitted.pod);
      this.log(
        `job ${ns}/${job.metadata.name}: pod ${pod.metadata.name} (webhooks: ${admitted.called.join(', ') || 'none'})`,
      );
    } catch (e) {
      // The Job controller records FailedCreate events and retries; the Job never gets a pod.
      this.log(`job ${ns}/${job.metadata.name}: pod not created: ${(e as Error).message}`);
      return;
    }
    store.patchStatus(KINDS.jobs, ns, job.metadata.name, jobActiveStatus());
    let running: RunningPod | undefined;
    let timer: NodeJS.Timeout | undefined;
    // activeDeadlineSeconds counts from the Job's start: the pod's start-up (sidecar included) is inside it.
    const deadline = new Promise<'deadline'>((r) => {
      timer = setTimeout(() => r('deadline'), deadlineS * 1000);
    });
    const launched = this.runPod(pod, { deadlineMs: deadlineS * 1000 }).then((r) => {
      running = r;
      return r;
    });
    const starting = launched.then((r) => r.exited);
    try {
      const result = await Promise.race([starting, deadline]);
      if (result === 'deadline') {
        this.log(`job ${ns}/${job.metadata.name}: active longer than ${deadlineS} s, pod ${pod.metadata.name} ended`);
        this.podPhase(pod, 'Failed', {});
        finish(false, 'Job was active longer than specified deadline');
      } else {
        const ok = Object.values(result).every((c) => c === 0);
        this.podPhase(pod, ok ? 'Succeeded' : 'Failed', result);
        finish(ok);
      }
    } catch (e) {
      this.log(`job ${ns}/${job.metadata.name}: pod ${pod.metadata.name} failed: ${(e as Error).message}`);
      this.podPhase(pod, 'Failed', {});
      finish(false, (e as Error).message);
    } finally {
      clearTimeout(timer);
      await launched.catch(() => undefined); // bounded: sandbox, init containers and sidecar start-up are
      await (running as RunningPod | undefined)?.stop();
    }
  }

  private podPhase(pod: KubeObject, phase: 'Running' | 'Succeeded' | 'Failed', codes: Record<string, number>): void {
    const ns = pod.metadata.namespace as string;
    const current = this.o.api.store.get(KINDS.pods, ns, pod.metadata.name);
    if (!current) return;
    const t = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const status = (current.status ?? {}) as Record<string, unknown>;
    const containers = ((current.spec?.containers ?? []) as Container[]).map((c) => ({
      name: c.name,
      image: c.image ?? '',
      imageID: '',
      ready: false,
      restartCount: 0,
      started: false,
      state: {
        terminated: {
          exitCode: codes[c.name] ?? 137,
          reason: (codes[c.name] ?? 137) === 0 ? 'Completed' : 'Error',
          finishedAt: t,
        },
      },
    }));
    this.o.api.store.patchStatus(KINDS.pods, ns, pod.metadata.name, {
      ...status,
      phase,
      conditions: conditions(false, t),
      containerStatuses: containers,
    });
  }

  private allocate(pod: KubeObject): LabPodState {
    for (let slot = 0; slot < MAX_PODS; slot++) {
      if (this.pods.has(slot)) continue;
      const k = this.o.labIndex;
      const p: LabPodState = {
        namespace: pod.metadata.namespace as string,
        name: pod.metadata.name,
        slot,
        netns: podNetns(k, slot),
        hostVeth: podHostVeth(k, slot),
        ip: podIP(k, slot),
        dir: path.join(this.o.dir, 'pods', String(slot)),
      };
      this.pods.set(slot, p);
      this.changed();
      return p;
    }
    throw new Error(`no free pod slot (${MAX_PODS} pods are running)`);
  }

  private async remove(slot: number): Promise<void> {
    const p = this.pods.get(slot);
    if (!p) return;
    for (const child of this.processes.get(slot) ?? []) child.kill('SIGKILL');
    this.processes.delete(slot);
    const r = await destroyPod(p);
    for (const problem of r.problems) this.log(problem);
    this.pods.delete(slot);
    this.changed();
  }

  /** The value of a fieldRef for this pod (the kubelet's downward API). */
  private field(pod: KubeObject, p: LabPodState, fieldPath: string): string {
    const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
    if (m) return (pod.metadata[m[1] as 'labels' | 'annotations'] ?? {})[m[2]!] ?? '';
    switch (fieldPath) {
      case 'metadata.name':
        return pod.metadata.name;
      case 'metadata.namespace':
        return pod.metadata.namespace as string;
      case 'metadata.uid':
        return pod.metadata.uid ?? '';
      case 'metadata.labels':
        return formatMap(pod.metadata.labels ?? {});
      case 'metadata.annotations':
        return formatMap(pod.metadata.annotations ?? {});
      case 'spec.nodeName':
        return String(pod.spec?.nodeName ?? '');
      case 'spec.serviceAccountName':
        return String(pod.spec?.serviceAccountName ?? 'default');
      case 'status.podIP':
      case 'status.podIPs':
        return p.ip;
      case 'status.hostIP':
      case 'status.hostIPs':
        return this.o.gatewayIP;
      default:
        throw new Error(`fieldRef ${fieldPath} is not supported by the lab's kubelet`);
    }
  }

  private containerEnv(pod: KubeObject, p: LabPodState, c: Container): Record<string, string> {
    const uid = c.securityContext?.runAsUser ?? (pod.spec?.securityContext as { runAsUser?: number })?.runAsUser ?? 0;
    const env: Record<string, string> = {
      PATH: DEFAULT_PATH,
      HOSTNAME: pod.metadata.name,
      HOME: uid === 0 ? '/root' : '/',
    };
    if (c.envFrom?.length) throw new Error(`container ${c.name}: envFrom is not supported by the lab's kubelet`);
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = expandVars(e.value, env);
      else if (e.valueFrom?.fieldRef) env[e.name] = this.field(pod, p, e.valueFrom.fieldRef.fieldPath);
      else if (e.valueFrom?.resourceFieldRef) {
        // No limits in the lab's pods: the kubelet then gives the node's allocatable (cores, bytes).
        const r = e.valueFrom.resourceFieldRef.resource;
        const divisor = Number(e.valueFrom.resourceFieldRef.divisor ?? 1) || 1;
        env[e.name] = r.endsWith('.cpu')
          ? String(Math.ceil(os.cpus().length / divisor))
          : String(Math.ceil(os.totalmem() / divisor));
      } else if (e.valueFrom?.configMapKeyRef) {
        const ref = e.valueFrom.configMapKeyRef;
        const cm = this.o.api.store.get(KINDS.configMaps, p.namespace, ref.name);
        const v = (cm?.data as Record<string, string> | undefined)?.[ref.key];
        if (v === undefined && !ref.optional)
          throw new Error(`container ${c.name}: configmap ${ref.name} key ${ref.key} not found`);
        if (v !== undefined) env[e.name] = v;
      } else throw new Error(`container ${c.name}: env ${e.name} has a source the lab's kubelet does not support`);
    }
    return env;
  }

  private async fillVolumes(pod: KubeObject, p: LabPodState): Promise<Map<string, string>> {
    const store = this.o.api.store;
    const ns = p.namespace;
    const dirs = new Map<string, string>();
    const write = (dir: string, rel: string, text: string) => {
      const f = path.join(dir, rel);
      if (!f.startsWith(dir + path.sep)) throw new Error(`volume path ${rel} leaves its volume`);
      mkdirSync(path.dirname(f), { recursive: true });
      writeFileSync(f, text, { mode: 0o644 });
    };
    // The kubelet waits for a volume's ConfigMap (istiod publishes istio-ca-root-cert into new namespaces).
    const configMap = async (name: string, optional: boolean | undefined) => {
      for (let i = 0; i < 60; i++) {
        const cm = store.get(KINDS.configMaps, ns, name);
        if (cm || optional) return (cm?.data ?? {}) as Record<string, string>;
        await sleep(500);
      }
      throw new Error(`configmap ${ns}/${name} not found (volume of pod ${p.name})`);
    };
    const cmFiles = (dir: string, data: Record<string, string>, items?: Array<{ key: string; path: string }>) => {
      for (const it of items ?? Object.keys(data).map((key) => ({ key, path: key })))
        if (data[it.key] !== undefined) write(dir, it.path, data[it.key]!);
    };
    const downward = (dir: string, items: Array<{ path: string; fieldRef?: { fieldPath: string } }>) => {
      for (const it of items) if (it.fieldRef) write(dir, it.path, this.field(pod, p, it.fieldRef.fieldPath));
    };
    for (const v of (pod.spec?.volumes ?? []) as Volume[]) {
      const dir = path.join(p.dir, 'volumes', v.name);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      dirs.set(v.name, dir);
      // A volume with no source is an emptyDir: the apiserver's defaulting (SetDefaults_Volume in
      // pkg/apis/core/v1/defaults.go) — Istio's template writes `emptyDir:` with no value.
      const sourceless = !v.configMap && !v.secret && !v.downwardAPI && !v.projected;
      if (v.emptyDir || sourceless) {
        // emptyDir is world-writable (the kubelet makes it 0777): the proxy runs as 1337.
        const { chmodSync } = await import('node:fs');
        chmodSync(dir, 0o777);
      } else if (v.configMap) cmFiles(dir, await configMap(v.configMap.name, v.configMap.optional), v.configMap.items);
      else if (v.downwardAPI) downward(dir, v.downwardAPI.items);
      else if (v.projected) {
        for (const s of v.projected.sources) {
          if (s.serviceAccountToken) {
            // The kubelet's TokenRequest for the pod's ServiceAccount (audience, expiry from the volume).
            const t = this.o.api.issueServiceAccountToken(
              ns,
              String(pod.spec?.serviceAccountName ?? 'default'),
              [s.serviceAccountToken.audience ?? 'https://kubernetes.default.svc.cluster.local'],
              s.serviceAccountToken.expirationSeconds ?? 3600,
            );
            write(dir, s.serviceAccountToken.path, t.token);
          } else if (s.configMap)
            cmFiles(dir, await configMap(s.configMap.name, s.configMap.optional), s.configMap.items);
          else if (s.downwardAPI) downward(dir, s.downwardAPI.items);
          else throw new Error(`volume ${v.name}: a projected source the lab's kubelet does not support`);
        }
      } else if (v.secret) {
        const secret = store.get('secrets', ns, v.secret.secretName);
        if (!secret && !v.secret.optional) throw new Error(`volume ${v.name}: secret ${v.secret.secretName} not found`);
        for (const [k, b64] of Object.entries((secret?.data ?? {}) as Record<string, string>))
          write(dir, k, Buffer.from(b64, 'base64').toString());
      } else throw new Error(`volume ${v.name}: a type the lab's kubelet does not support`);
    }
    return dirs;
  }

  /** Creates the sandbox and starts the pod's containers (init containers and native sidecars first). */
  async runPod(input: KubeObject, o: { deadlineMs: number }): Promise<RunningPod> {
    const store = this.o.api.store;
    const ns = input.metadata.namespace as string;
    const p = this.allocate(input);
    const children: ChildProcess[] = [];
    this.processes.set(p.slot, children);
    const stop = () => this.remove(p.slot);
    try {
      mkdirSync(p.dir, { recursive: true });
      await createPodNetwork(this.o.labIndex, p);
      // The sandbox has its IP: the kubelet reports it before any container starts.
      const started = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      const pod = store.patchStatus(KINDS.pods, ns, input.metadata.name, {
        phase: 'Pending',
        hostIP: this.o.gatewayIP,
        hostIPs: [{ ip: this.o.gatewayIP }],
        podIP: p.ip,
        podIPs: [{ ip: p.ip }],
        startTime: started,
        conditions: conditions(false, started),
        qosClass: 'BestEffort',
      });
      const spec = (pod.spec ?? {}) as { initContainers?: Container[]; containers?: Container[] };
      const all = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
      const volumes = await this.fillVolumes(pod, p);
      const files: SandboxFiles = {
        binds: [
          { from: this.o.proxyImage.pilotAgent, to: '/usr/local/bin/pilot-agent' },
          { from: this.o.proxyImage.envoy, to: '/usr/local/bin/envoy' },
          { from: this.o.proxyImage.bootstrapTemplate, to: '/var/lib/istio/envoy/envoy_bootstrap_tmpl.json' },
          ...(this.o.nodePath ? [{ from: this.o.nodePath, to: POD_NODE }] : []),
        ],
        mounts: [],
        hosts: ['127.0.0.1 localhost', `${p.ip} ${pod.metadata.name}`, ...this.o.hosts, ''].join('\n'),
        hostname: pod.metadata.name.slice(0, 63),
      };
      const mounted = new Set<string>();
      for (const c of all)
        for (const m of c.volumeMounts ?? []) {
          const to = privateMountPath(m.mountPath);
          if (mounted.has(to)) continue;
          mounted.add(to);
          const from = volumes.get(m.name);
          if (!from) throw new Error(`container ${c.name}: volumeMount ${m.name} names no volume`);
          files.mounts.push({ from: m.subPath ? path.join(from, m.subPath) : from, to, readOnly: !!m.readOnly });
        }
      const anchor = await startPodAnchor(p, files);
      p.anchorPid = anchor.pid;
      p.anchorStartTime = anchor.startTime;
      this.changed();

      const start = (c: Container): ChildProcess => {
        const env = this.containerEnv(pod, p, c);
        let argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => expandVars(a, env));
        if (!c.command) {
          if (!PROXY_IMAGE.test(c.image ?? ''))
            throw new Error(`container ${c.name}: image ${c.image} has no entrypoint the lab knows; give a command`);
          argv = ['/usr/local/bin/pilot-agent', ...argv];
        }
        const sc = c.securityContext ?? {};
        const podSc = (pod.spec?.securityContext ?? {}) as { runAsUser?: number; runAsGroup?: number };
        const child = spawnInPod(p, argv, {
          uid: sc.runAsUser ?? podSc.runAsUser ?? 0,
          gid: sc.runAsGroup ?? podSc.runAsGroup ?? 0,
          env,
          cwd: c.workingDir ?? '/',
        });
        children.push(child);
        const append = (b: Buffer) => this.o.api.appendPodLog(ns, pod.metadata.name, c.name, b.toString());
        child.stdout?.on('data', append);
        child.stderr?.on('data', append);
        return child;
      };
      const exitOf = (child: ChildProcess) =>
        new Promise<number>((resolve) => {
          if (child.exitCode !== null) return resolve(child.exitCode);
          child.once('exit', (code, signal) =>
            resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 9) : 1)),
          );
        });
      const probe = async (c: Container, pr: Probe, boundMs: number): Promise<boolean> => {
        const port = (x: number | string) =>
          typeof x === 'number' ? x : (c.ports?.find((cp) => cp.name === x)?.containerPort ?? Number(x));
        const period = Math.max(0.2, pr.periodSeconds ?? 10) * 1000;
        const end = Date.now() + boundMs;
        await sleep((pr.initialDelaySeconds ?? 0) * 1000);
        while (Date.now() < end) {
          if (pr.httpGet) {
            const code = await httpProbe(
              p.ip,
              port(pr.httpGet.port),
              pr.httpGet.path ?? '/',
              (pr.timeoutSeconds ?? 1) * 1000,
            );
            if (code >= 200 && code < 400) return true;
          } else return true;
          await sleep(Math.min(period, 1000));
        }
        return false;
      };
      for (const c of spec.initContainers ?? []) {
        if (c.restartPolicy === 'Always') {
          const child = start(c);
          const ok = await probe(c, c.startupProbe ?? {}, this.o.sidecarStartTimeoutMs ?? 90_000);
          if (!ok || child.exitCode !== null)
            throw new Error(`sidecar ${c.name} did not pass its startupProbe within the lab's bound`);
          continue;
        }
        const code = await Promise.race([exitOf(start(c)), sleep(this.o.initTimeoutMs ?? 120_000).then(() => -1)]);
        if (code !== 0) throw new Error(`init container ${c.name} ${code === -1 ? 'timed out' : `exited ${code}`}`);
      }
      const regular = (spec.containers ?? []).map((c) => ({ c, child: start(c) }));
      store.patchStatus(KINDS.pods, ns, pod.metadata.name, {
        ...(store.get(KINDS.pods, ns, pod.metadata.name)?.status ?? {}),
        phase: 'Running',
        containerStatuses: regular.map(({ c }) => ({
          name: c.name,
          image: c.image ?? '',
          imageID: '',
          ready: true,
          restartCount: 0,
          started: true,
          state: { running: { startedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') } },
        })),
      });
      // Ready once every readiness probe passes (Istio's rewritten app probes go through the agent's 15020).
      void (async () => {
        for (const { c } of regular) if (c.readinessProbe && !(await probe(c, c.readinessProbe, o.deadlineMs))) return;
        const cur = store.get(KINDS.pods, ns, pod.metadata.name);
        if (cur && cur.status?.phase === 'Running')
          store.patchStatus(KINDS.pods, ns, pod.metadata.name, {
            ...cur.status,
            conditions: conditions(true, new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')),
          });
      })().catch(() => undefined);
      const exited = Promise.all(regular.map(async ({ c, child }) => [c.name, await exitOf(child)] as const)).then(
        (pairs) => Object.fromEntries(pairs),
      );
      return { state: p, exited, stop };
    } catch (e) {
      await stop();
      throw e;
    }
  }

  /**
   * A long-running pod of the mesh (what a ReplicaSet controller creates from a Deployment's template): admitted
   * through the webhooks, stored, and run until `stop`.
   */
  async startWorkload(pod: KubeObject): Promise<RunningPod> {
    const admitted = await admitPod(pod, {
      store: this.o.api.store,
      serviceAddress: this.o.serviceAddress,
      user: 'system:serviceaccount:kube-system:replicaset-controller',
      log: (l) => this.log(l),
    });
    const created = this.o.api.store.create(KINDS.pods, admitted.pod);
    this.log(
      `pod ${created.metadata.namespace}/${created.metadata.name} (webhooks: ${admitted.called.join(', ') || 'none'})`,
    );
    return this.runPod(created, { deadlineMs: 120_000 });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.stopControllers.splice(0)) s();
    for (const slot of [...this.pods.keys()]) await this.remove(slot);
  }
}

function conditions(ready: boolean, t: string): Array<Record<string, unknown>> {
  const c = (type: string, status: boolean) => ({
    type,
    status: status ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: t,
  });
  return [
    c('PodReadyToStartContainers', true),
    c('Initialized', true),
    c('Ready', ready),
    c('ContainersReady', ready),
    c('PodScheduled', true),
  ];
}
