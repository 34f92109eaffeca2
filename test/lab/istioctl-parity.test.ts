// Parity with Istio's real istioctl (built from the pinned module) on a live lab cluster (istio-system as `istioctl
// manifest generate` renders it, istiod publishing the root):
// - `istioctl x workload entry configure` and our `render --kubeconfig` write the same bytes for every
//   file but istio-token (each TokenRequest is new: its claims are compared instead);
// - `istioctl x workload group create` and our WorkloadGroup builder make the same object, except the
//   differences ADR 0004 lists (our managed-by label, the probe istioctl has no flag for).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { runRenderCommand } from '../../src/commands/render.js';
import { buildWorkloadGroup } from '../../src/render/index.js';
import type { GroupSpec } from '../../src/inventory/types.js';
import { istioBuild } from './istio/binaries.js';
import { downLab, newLabDir, upLab } from './testing.js';
import type { LabState } from './state.js';

const run = promisify(execFile);
const NS = 'vm-ns';
const FILES = ['cluster.env', 'mesh.yaml', 'hosts', 'root-cert.pem'];

const SIMPLE = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: vm-app
  namespace: ${NS}
spec:
  metadata:
    labels:
      app: vm-app
  template:
    serviceAccount: vm-sa
`;
const RICH = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: pay
  namespace: ${NS}
spec:
  metadata:
    labels:
      app: pay
      version: v1
    annotations:
      proxy.istio.io/config: 'holdApplicationUntilProxyStarts: true'
  template:
    serviceAccount: vm-sa
    network: vm-net
    ports:
      http: 8080
  probe:
    periodSeconds: 5
    httpGet:
      path: /ready
      port: 8080
`;

let dir: string;
let state: LabState;

const kubeconfig = (): string => state.files.kubeconfig as string;
const istioctl = async (args: string[]): Promise<string> =>
  (await run(istioBuild().istioctl, args, { timeout: 60_000, env: { PATH: process.env.PATH, HOME: dir } })).stdout;

async function ours(args: string[]): Promise<void> {
  const err: string[] = [];
  const code = await runRenderCommand(args, {
    stdout: { write: () => true },
    stderr: { write: (t: string) => err.push(t) },
    cwd: dir,
  });
  if (code !== 0) throw new Error(`render ${args.join(' ')} failed (${code}): ${err.join('')}`);
}

/** The claims of a ServiceAccount JWT that do not change between two TokenRequests. */
function stableClaims(token: string): Record<string, unknown> {
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
    iss: string;
    aud: string[];
    sub: string;
    exp: number;
    iat: number;
    'kubernetes.io': { namespace: string; serviceaccount: { name: string; uid: string } };
  };
  return {
    iss: payload.iss,
    aud: payload.aud,
    sub: payload.sub,
    lifetimeSeconds: payload.exp - payload.iat,
    namespace: payload['kubernetes.io'].namespace,
    serviceAccount: payload['kubernetes.io'].serviceaccount,
  };
}

function expectSameFiles(istioctlDir: string, ourDir: string): void {
  for (const f of FILES) {
    expect({ file: f, ours: readFileSync(path.join(ourDir, f), 'utf8') }).toEqual({
      file: f,
      ours: readFileSync(path.join(istioctlDir, f), 'utf8'),
    });
  }
  const theirs = readFileSync(path.join(istioctlDir, 'istio-token'), 'utf8');
  const mine = readFileSync(path.join(ourDir, 'istio-token'), 'utf8');
  expect(mine).not.toBe(theirs); // two TokenRequests: never the same token
  expect(stableClaims(mine)).toEqual(stableClaims(theirs));
}

beforeAll(async () => {
  istioBuild();
  dir = newLabDir('istioctl-parity');
  state = await upLab(dir, 1);
  const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', kubeconfig(), ...args], { timeout: 30_000 });
  await kubectl('create', 'namespace', NS);
  await kubectl('-n', NS, 'create', 'serviceaccount', 'vm-sa');
  writeFileSync(path.join(dir, 'simple.yaml'), SIMPLE);
  writeFileSync(path.join(dir, 'rich.yaml'), RICH);
  await kubectl('apply', '-f', path.join(dir, 'simple.yaml'), '-f', path.join(dir, 'rich.yaml'));
  for (let i = 0; i < 80; i += 1) {
    if (
      await kubectl('-n', NS, 'get', 'configmap', 'istio-ca-root-cert').then(
        () => true,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 250));
  }
}, 300_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('istioctl x workload entry configure = render --kubeconfig', () => {
  const cases: Array<{ name: string; source: (d: string) => string[]; extra: string[] }> = [
    {
      name: '-f, autoregister, internal IP',
      source: (d) => ['-f', path.join(d, 'simple.yaml')],
      extra: ['--autoregister', '--internalIP', '10.233.0.11'],
    },
    {
      name: '--name/-n from the cluster, autoregister',
      source: () => ['--name', 'vm-app', '-n', NS],
      extra: ['--autoregister', '--internalIP', '10.233.0.11'],
    },
    {
      name: '--name/-n, annotations, ports, probe, network, external IP',
      source: () => ['--name', 'pay', '-n', NS],
      extra: ['--externalIP', '192.0.2.7'],
    },
    {
      name: '-f, no DNS capture, no IP',
      source: (d) => ['-f', path.join(d, 'rich.yaml')],
      extra: ['--capture-dns=false'],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const id = c.name.replace(/[^a-z]+/gi, '-');
      const theirs = path.join(dir, `istioctl-${id}`);
      const mine = path.join(dir, `ours-${id}`);
      await istioctl([
        'x',
        'workload',
        'entry',
        'configure',
        '--kubeconfig',
        kubeconfig(),
        ...c.source(dir),
        ...c.extra,
        '-o',
        theirs,
      ]);
      await ours([
        ...c.source(dir),
        '--kubeconfig',
        kubeconfig(),
        '--dns-servers',
        state.actionInputs['INPUT_DNS-SERVERS'] as string,
        ...c.extra,
        '-o',
        mine,
      ]);
      expectSameFiles(theirs, mine);
    });
  }

  it('fails as istioctl does for a WorkloadGroup that is not in the cluster', async () => {
    const err: string[] = [];
    const code = await runRenderCommand(
      ['--name', 'absent', '-n', NS, '--kubeconfig', kubeconfig(), '-o', path.join(dir, 'x')],
      {
        stdout: { write: () => true },
        stderr: { write: (t: string) => err.push(t) },
        cwd: dir,
      },
    );
    expect(code).toBe(1);
    expect(err.join('')).toContain(`workloadgroup absent not found in namespace ${NS}`);
    await expect(
      istioctl([
        'x',
        'workload',
        'entry',
        'configure',
        '--kubeconfig',
        kubeconfig(),
        '--name',
        'absent',
        '-n',
        NS,
        '-o',
        path.join(dir, 'y'),
      ]),
    ).rejects.toThrow(/workloadgroup absent not found in namespace vm-ns/);
  });
});

describe('istioctl x workload group create = our WorkloadGroup', () => {
  const group: GroupSpec = {
    name: 'pay',
    namespace: NS,
    serviceAccount: 'vm-sa',
    labels: { app: 'pay', version: 'v1' },
    annotations: { 'proxy.istio.io/config': 'holdApplicationUntilProxyStarts: true' },
    ports: { http: 8080, grpc: 9090 },
    network: 'vm-net',
    registration: 'auto',
    vms: [],
  };

  it('makes the same object, apart from the documented differences', async () => {
    const text = await istioctl([
      'x',
      'workload',
      'group',
      'create',
      '--name',
      group.name,
      '--namespace',
      group.namespace,
      '--labels',
      'app=pay,version=v1',
      '--annotations',
      'proxy.istio.io/config=holdApplicationUntilProxyStarts: true',
      '--serviceAccount',
      group.serviceAccount,
      '--ports',
      'http=8080,grpc=9090',
      '--network',
      group.network,
    ]);
    const theirs = parseYaml(text) as Record<string, unknown>;
    const mine = structuredClone(buildWorkloadGroup(group)) as unknown as Record<string, unknown> & {
      metadata: { labels?: Record<string, string> };
    };
    // Deliberate: our objects carry app.kubernetes.io/managed-by (plan, drift and offboard find them by it).
    expect(mine.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'istio-vm-onboard' });
    delete mine.metadata.labels;
    expect(mine).toEqual(theirs);
  });

  it('differs when the inputs differ (the comparison can fail)', async () => {
    const text = await istioctl([
      'x',
      'workload',
      'group',
      'create',
      '--name',
      group.name,
      '--namespace',
      group.namespace,
      '--labels',
      'app=pay',
      '--serviceAccount',
      'other-sa',
    ]);
    const mine = structuredClone(
      buildWorkloadGroup({ ...group, ports: {}, network: '', annotations: {} }),
    ) as unknown as Record<string, unknown> & {
      metadata: { labels?: Record<string, string> };
    };
    delete mine.metadata.labels;
    expect(mine).not.toEqual(parseYaml(text));
  });
});
