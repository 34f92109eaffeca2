// End to end in the lab: a VM onboarded by hand like the seed runbook (kubectl for the mesh objects
// and the token, scp the files, ssh + sudo + dpkg -i + copy into Istio's paths + systemctl start
// istio) becomes ready, gets a certificate openssl accepts, shows up as a Healthy WorkloadEntry,
// serves mTLS to the verification Job, refuses plaintext under STRICT, and calls echo by DNS name.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const dir = mkdtempSync(path.join(tmpdir(), 'ivo-2b-e2e-'));
const files = path.join(dir, 'files');
let vmIp = '';
let gw = '';

function sh(script: string, timeoutMs = 120_000): string {
  return execFileSync('bash', ['-c', script], {
    cwd: repo,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, D: dir, KUBECONFIG: path.join(dir, 'kubeconfig') },
  });
}
const ssh = (cmd: string, t = 60_000) =>
  sh(
    `ssh -o ConnectTimeout=5 -o BatchMode=yes -i "$D/id_ed25519" -o "UserKnownHostsFile=\\"$D/known_hosts\\"" -o StrictHostKeyChecking=yes lab@${vmIp} ${JSON.stringify(cmd)}`,
    t,
  );
const lab = (args: string) => sh(`npm run -s lab -- ${args} --dir "$D"`);

/**
 * The Job of ADR 0002/0004. Injected, it calls the VM through a ServiceEntry host (a mesh client uses mTLS
 * only for a mesh service); not injected, it calls the VM's IP.
 */
function job(name: string, inject: string): string {
  const host = `${name}.vm-app.ivo-verify.internal`;
  const env =
    inject === 'true'
      ? `{name: IVO_TARGET_URL, value: "http://${host}:8080/"}, {name: IVO_REQUESTS, value: "3"}, {name: IVO_RESOLVE, value: "${host}:8080:${vmIp}"}, {name: IVO_WAIT_FOR, value: "outbound|8080||${host}::"}, {name: IVO_WAIT_ATTEMPTS, value: "20"}`
      : `{name: IVO_TARGET_URL, value: "http://${vmIp}:8080/"}, {name: IVO_REQUESTS, value: "3"}`;
  const entry =
    inject === 'true'
      ? `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: vm-app}
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  exportTo: ["."]
  ports: [{number: 8080, name: http-verify, protocol: HTTP}]
  endpoints: [{address: ${vmIp}, serviceAccount: vm-app}]
---
`
      : '';
  return `${entry}apiVersion: batch/v1
kind: Job
metadata: {name: ${name}, namespace: vm-app, labels: {app.kubernetes.io/managed-by: istio-vm-onboard}}
spec:
  backoffLimit: 0
  template:
    metadata: {labels: {sidecar.istio.io/inject: "${inject}"}}
    spec:
      restartPolicy: Never
      serviceAccountName: default
      containers: [{name: ivo-client, image: curlimages/curl:8.11.1, env: [${env}]}]
`;
}
function runJob(name: string, inject: string): string {
  writeFileSync(path.join(dir, `${name}.yaml`), job(name, inject));
  sh(`kubectl apply -f $D/${name}.yaml >/dev/null`);
  for (let i = 0; i < 50; i++) {
    const c = sh(`kubectl -n vm-app get job ${name} -o jsonpath='{.status.conditions[*].type}'`);
    if (/Complete|Failed/.test(c)) break;
    sh('sleep 0.3');
  }
  const pod = sh(`kubectl -n vm-app get pods -l job-name=${name} -o jsonpath='{.items[0].metadata.name}'`);
  return sh(`kubectl -n vm-app logs ${pod} -c ivo-client`)
    .split('\n')
    .filter((line) => !line.startsWith('ivo-wait '))
    .join('\n');
}
const mtlsCounter = () =>
  ssh('curl -s -m 5 http://localhost:15090/stats/prometheus')
    .split('\n')
    .filter(
      (l) =>
        l.startsWith('istio_requests_total{reporter="destination"') &&
        l.includes('connection_security_policy="mutual_tls"'),
    )
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);

beforeAll(() => {
  sh('npm run -s lab -- up --vms 1 --dir $D', 240_000);
  const st = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as {
    vms: Array<{ ip: string }>;
    gatewayIP: string;
    package: { url: string };
  };
  vmIp = st.vms[0]!.ip;
  gw = st.gatewayIP;
  sh(`mkdir -p ${files}`);
  writeFileSync(
    path.join(files, 'mesh-objects.yaml'),
    `apiVersion: v1
kind: Namespace
metadata: {name: vm-app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: vm-app, namespace: vm-app}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: app, namespace: vm-app}
spec:
  metadata: {labels: {app: vm-app}}
  template: {serviceAccount: vm-app, ports: {http: 8080}}
  probe: {periodSeconds: 2, httpGet: {port: 8080, path: /}}
`,
  );
  sh(`kubectl apply -f ${files}/mesh-objects.yaml >/dev/null && sleep 1`);
  sh(`kubectl -n vm-app create token vm-app --audience istio-ca --duration 1h > ${files}/istio-token`);
  sh(`kubectl -n vm-app get cm istio-ca-root-cert -o jsonpath='{.data.root-cert\\.pem}' > ${files}/root-cert.pem`);
  // The golden-like render (same keys and quoting as istioctl x workload entry configure --autoregister).
  writeFileSync(
    path.join(files, 'cluster.env'),
    [
      "CANONICAL_REVISION='latest'",
      "CANONICAL_SERVICE='app'",
      "ISTIO_INBOUND_PORTS='*'",
      "ISTIO_LOCAL_EXCLUDE_PORTS='22,15090,15021,15020'",
      `ISTIO_METAJSON_LABELS='{"app":"vm-app","service.istio.io/canonical-name":"app","service.istio.io/canonical-revision":"latest"}'`,
      "ISTIO_META_AUTO_REGISTER_GROUP='app'",
      "ISTIO_META_CLUSTER_ID='Kubernetes'",
      "ISTIO_META_DNS_CAPTURE='true'",
      "ISTIO_META_MESH_ID=''",
      "ISTIO_META_NETWORK=''",
      "ISTIO_META_WORKLOAD_NAME='app'",
      "ISTIO_NAMESPACE='vm-app'",
      "ISTIO_SERVICE='app.vm-app'",
      "ISTIO_SERVICE_CIDR='*'",
      `ISTIO_SVC_IP='${vmIp}'`,
      "POD_NAMESPACE='vm-app'",
      "SERVICE_ACCOUNT='vm-app'",
      "TRUST_DOMAIN='cluster.local'",
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(files, 'mesh.yaml'),
    'defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: "true"\n  readinessProbe:\n    httpGet:\n      path: /\n      port: 8080\n    periodSeconds: 2\n',
  );
  writeFileSync(path.join(files, 'hosts'), `${gw} istiod.istio-system.svc\n`);
  sh(
    `scp -q -o BatchMode=yes -i "$D/id_ed25519" -o "UserKnownHostsFile=\\"$D/known_hosts\\"" -o StrictHostKeyChecking=yes ${files}/istio-token ${files}/root-cert.pem ${files}/cluster.env ${files}/mesh.yaml ${files}/hosts lab@${vmIp}:/tmp/`,
  );
  ssh(
    `set -e; cd /tmp; curl -sSf -o istio-sidecar.deb ${st.package.url}; sudo dpkg -i istio-sidecar.deb >/dev/null; ` +
      'sudo mkdir -p /etc/certs /var/run/secrets/tokens /etc/istio/config /var/lib/istio/envoy; ' +
      'sudo cp root-cert.pem /etc/certs/root-cert.pem; sudo cp istio-token /var/run/secrets/tokens/istio-token; ' +
      'sudo cp cluster.env /var/lib/istio/envoy/cluster.env; sudo cp mesh.yaml /etc/istio/config/mesh; sudo sh -c "cat hosts >> /etc/hosts"; ' +
      'sudo chown -R istio-proxy:istio-proxy /etc/certs /var/run/secrets/tokens /var/lib/istio/envoy; sudo systemctl start istio </dev/null >/dev/null 2>&1',
  );
}, 300_000);

afterAll(() => {
  try {
    sh('npm run -s lab -- down --dir $D', 120_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 150_000);

const waitReady = (want: string, tries = 60) => {
  let code = '';
  for (let i = 0; i < tries; i++) {
    code = ssh('curl -s -m 5 -o /dev/null -w "%{http_code}" localhost:15021/healthz/ready || true');
    if (code === want) return code;
    sh('sleep 0.5');
  }
  return code;
};

describe('a VM onboarded by hand', () => {
  it('becomes ready, with a workload cert that openssl verify accepts and the right SAN', () => {
    expect(waitReady('200')).toBe('200');
    const dump = JSON.parse(
      ssh('curl -s -m 5 "http://localhost:15000/config_dump?resource=dynamic_active_secrets"'),
    ) as {
      configs: Array<{ name: string; secret: { tls_certificate?: { certificate_chain: { inline_bytes: string } } } }>;
    };
    const chain = Buffer.from(
      dump.configs.find((c) => c.name === 'default')!.secret.tls_certificate!.certificate_chain.inline_bytes,
      'base64',
    ).toString();
    writeFileSync(
      path.join(dir, 'leaf.pem'),
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/.exec(chain)![0],
    );
    expect(sh(`openssl verify -CAfile ${files}/root-cert.pem $D/leaf.pem`).trim()).toMatch(/: OK$/);
    expect(sh('openssl x509 -in $D/leaf.pem -noout -ext subjectAltName')).toContain(
      'URI:spiffe://cluster.local/ns/vm-app/sa/vm-app',
    );
  });
  it('shows up as a Healthy auto-registered WorkloadEntry', () => {
    let out = '';
    for (let i = 0; i < 40 && !out.includes('True'); i++) {
      out = sh(
        `kubectl -n vm-app get workloadentry app-${vmIp} -o jsonpath='{.spec.address} {.status.conditions[?(@.type=="Healthy")].status}' 2>/dev/null || true`,
      );
      if (!out.includes('True')) sh('sleep 0.5');
    }
    expect(out).toBe(`${vmIp} True`);
  });
  it('calls echo by its cluster DNS name through DNS capture and the outbound listener', () => {
    expect(ssh('curl -s -m 5 http://echo.mesh-test.svc.cluster.local:8080/')).toBe('echo from mesh\n');
  });
  it('serves mTLS to the verification Job (counter grows), and refuses plaintext under STRICT', () => {
    const before = mtlsCounter();
    expect(runJob('ivo-verify-vm1-e2e1', 'true')).toBe('ivo-call 1 200\nivo-call 2 200\nivo-call 3 200\nivo-done\n');
    expect(mtlsCounter() - before).toBe(3);
    writeFileSync(
      path.join(dir, 'pa.yaml'),
      'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: vm-app}\nspec: {mtls: {mode: STRICT}}\n',
    );
    sh('kubectl apply -f $D/pa.yaml >/dev/null && sleep 2');
    expect(runJob('ivo-verify-vm1-e2e2', 'false')).toBe('ivo-call 1 000\nivo-call 2 000\nivo-call 3 000\nivo-done\n');
    lab('fault plaintext-accepted --vm vm1');
    expect(runJob('ivo-verify-vm1-e2e3', 'false')).toContain('ivo-call 1 200');
    lab('heal plaintext-accepted --vm vm1');
    expect(runJob('ivo-verify-vm1-e2e4', 'false')).toContain('ivo-call 1 000');
  });
  it('dns-capture-broken and mesh-service-down break VM→mesh; heal restores it', () => {
    const call = () =>
      ssh('curl -s -m 5 -o /dev/null -w "%{http_code}" http://echo.mesh-test.svc.cluster.local:8080/ || true');
    lab('fault dns-capture-broken --vm vm1');
    expect(call()).toBe('000');
    lab('heal dns-capture-broken --vm vm1');
    lab('fault mesh-service-down');
    expect(call()).toBe('503');
    lab('heal mesh-service-down');
    expect(call()).toBe('200');
  });
  it('block-15012 (timeout) and istiod-down keep a restarted sidecar NOT ready; heal makes it ready', () => {
    lab('fault block-15012 --vm vm1');
    ssh('sudo systemctl restart istio </dev/null >/dev/null 2>&1');
    expect(waitReady('503', 10)).toBe('503');
    lab('heal block-15012 --vm vm1');
    expect(waitReady('200')).toBe('200');
    lab('fault istiod-down');
    ssh('sudo systemctl restart istio </dev/null >/dev/null 2>&1');
    expect(waitReady('503', 10)).toBe('503');
    lab('heal istiod-down');
    expect(waitReady('200')).toBe('200');
  });
  it('sidecar-crash-loop: the unit keeps restarting and never gets ready; heal recovers', () => {
    lab('fault sidecar-crash-loop --vm vm1');
    sh('sleep 3');
    expect(ssh('curl -s -m 3 -o /dev/null -w "%{http_code}" localhost:15021/healthz/ready || true')).toBe('000');
    expect(ssh('sudo grep -c "sidecar-crash-loop" /var/log/istio/istio.log || true').trim()).not.toBe('0');
    lab('heal sidecar-crash-loop --vm vm1');
    expect(waitReady('200', 80)).toBe('200');
  });
});
