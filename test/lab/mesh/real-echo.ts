// The mesh service `echo` (namespace mesh-test) of the lab, as a mesh workload: the namespace is labelled
// istio-injection=enabled, a Deployment `echo` and a Service `echo` (port 8080, selector app=echo) are created,
// and the Pod runner runs the Deployment's pod — injected by the real istiod (namespace webhook), its sidecar the
// real pilot-agent with the Envoy stand-in, its app a plain HTTP server answering `echo from mesh`. Istio
// rewrites the app's readinessProbe to the agent (/app-health/echo/readyz on 15020); once it passes the pod is
// Ready, the EndpointSlice controller lists it, and istiod gives clients its endpoint (tlsMode istio: mTLS).
import { randomBytes } from 'node:crypto';
import type { KubeApiDouble, KubeObject } from '../kube/index.js';
import { KINDS } from '../kube/index.js';
import { POD_NODE, type PodRunner, type RunningPod } from '../pods/runner.js';

export const ECHO_NAMESPACE = 'mesh-test';
export const ECHO_PORT = 8080;
/** uid of the echo app (not root, not the proxy's 1337). */
const ECHO_UID = 10001;

const ECHO_APP =
  "require('node:http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain'});s.end('echo from mesh\\n')})" +
  `.listen(${ECHO_PORT},'0.0.0.0')`;

function ensure(api: KubeApiDouble, kind: string, obj: KubeObject): KubeObject {
  return api.store.get(kind, obj.metadata.namespace, obj.metadata.name) ?? api.store.create(kind, obj);
}

/** The Deployment `echo`: its template is what the Pod runner runs. */
export function echoDeployment(): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'echo', namespace: ECHO_NAMESPACE, labels: { app: 'echo' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'echo' } },
      template: {
        metadata: { labels: { app: 'echo', version: 'v1' } },
        spec: {
          serviceAccountName: 'echo',
          containers: [
            {
              name: 'echo',
              image: 'lab.local/echo:1',
              command: [POD_NODE, '-e', ECHO_APP],
              ports: [{ name: 'http', containerPort: ECHO_PORT }],
              readinessProbe: { httpGet: { path: '/', port: ECHO_PORT }, periodSeconds: 1 },
              securityContext: { runAsUser: ECHO_UID, runAsGroup: ECHO_UID, runAsNonRoot: true },
            },
          ],
        },
      },
    },
  };
}

/** Creates the namespace, ServiceAccount, Service and Deployment `echo` and runs its pod. */
export async function startRealEcho(api: KubeApiDouble, pods: PodRunner): Promise<RunningPod> {
  const ns = api.store.get(KINDS.namespaces, undefined, ECHO_NAMESPACE);
  if (!ns)
    api.store.create(KINDS.namespaces, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ECHO_NAMESPACE, labels: { 'istio-injection': 'enabled' } },
    });
  ensure(api, KINDS.serviceAccounts, {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'echo', namespace: ECHO_NAMESPACE },
  });
  ensure(api, KINDS.services, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'echo', namespace: ECHO_NAMESPACE, labels: { app: 'echo' } },
    spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: ECHO_PORT, targetPort: ECHO_PORT }] },
  });
  const deployment = ensure(api, KINDS.deployments, echoDeployment());
  const template = deployment.spec?.template as { metadata: { labels: Record<string, string> }; spec: object };
  const hash = randomBytes(5).toString('hex');
  return pods.startWorkload({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `echo-${hash.slice(0, 6)}-${hash.slice(6)}`,
      namespace: ECHO_NAMESPACE,
      labels: { ...template.metadata.labels, 'pod-template-hash': hash.slice(0, 6) },
    },
    spec: { ...template.spec, nodeName: 'lab-node' },
  });
}
