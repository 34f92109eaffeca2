// The offline `render` command on istioctl's golden inputs, compared byte for byte.
import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runRenderCommand } from '../../src/commands/render.js';

const GOLDEN = path.resolve(process.cwd(), '../shared/istio-golden/vmconfig');
const FILES = ['cluster.env', 'mesh.yaml', 'hosts', 'root-cert.pem', 'istio-token'];

function capture(): { io: Parameters<typeof runRenderCommand>[1]; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: (t: string) => (err += t) },
      cwd: process.cwd(),
    },
    out: () => out,
    err: () => err,
  };
}

function inputsDir(meshText: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'render-in-'));
  writeFileSync(path.join(dir, 'mesh.txt'), meshText);
  writeFileSync(path.join(dir, 'root-cert.pem'), 'fake-CA-cert');
  writeFileSync(path.join(dir, 'token'), '');
  return dir;
}

describe('render -f (istioctl golden cases)', () => {
  const cases = [
    { dir: 'ipv4', args: ['--internalIP', '10.10.10.10', '--ingressIP', '10.10.10.11', '--revision', 'rev-1'] },
    { dir: 'ipv6', args: ['--internalIP', 'fd00:10:96::1', '--ingressIP', 'fd00:10:96::2', '--revision', 'rev-1'] },
    { dir: 'vmconfig-nil-proxy-metadata', args: ['--internalIP', '10.10.10.10'] },
  ];
  for (const c of cases) {
    it(`${c.dir}: writes the five files byte-identical to istioctl`, async () => {
      const meshFile = path.join(GOLDEN, c.dir, 'meshconfig.yaml');
      const inputs = inputsDir(existsSync(meshFile) ? readFileSync(meshFile, 'utf8') : 'defaultConfig: {}');
      const out = mkdtempSync(path.join(tmpdir(), 'render-out-'));
      const { io, err } = capture();
      const code = await runRenderCommand(
        [
          '-f',
          path.join(GOLDEN, c.dir, 'workloadgroup.yaml'),
          '--mesh-config',
          path.join(inputs, 'mesh.txt'),
          '--root-cert',
          path.join(inputs, 'root-cert.pem'),
          '--token',
          path.join(inputs, 'token'),
          '--clusterID',
          'Kubernetes',
          ...c.args,
          '-o',
          out,
        ],
        io,
      );
      expect([code, err()]).toEqual([
        0,
        c.dir === 'vmconfig-nil-proxy-metadata' ? expect.stringContaining('--ingressIP') : '',
      ]);
      for (const f of FILES) {
        expect(readFileSync(path.join(out, f)).equals(readFileSync(path.join(GOLDEN, c.dir, `${f}.golden`)))).toBe(
          true,
        );
      }
      expect(statSync(path.join(out, 'istio-token')).mode & 0o777).toBe(0o600);
    });
  }

  it('--autoregister and --capture-dns=false reach the files', async () => {
    const inputs = inputsDir('defaultConfig: {}');
    const out = mkdtempSync(path.join(tmpdir(), 'render-out-'));
    const { io } = capture();
    const code = await runRenderCommand(
      [
        '-f',
        path.join(GOLDEN, 'ipv4', 'workloadgroup.yaml'),
        '--mesh-config',
        path.join(inputs, 'mesh.txt'),
        '--root-cert',
        path.join(inputs, 'root-cert.pem'),
        '--token',
        path.join(inputs, 'token'),
        '--clusterID',
        'c',
        '--autoregister',
        '--capture-dns=false',
        '-o',
        out,
      ],
      io,
    );
    expect(code).toBe(0);
    const env = readFileSync(path.join(out, 'cluster.env'), 'utf8');
    expect(env).toContain("ISTIO_META_AUTO_REGISTER_GROUP='foo'\n");
    expect(env).not.toContain('ISTIO_META_DNS_CAPTURE');
  });
});

describe('render usage errors', () => {
  const base = (): string[] => {
    const inputs = inputsDir('');
    return [
      '--mesh-config',
      path.join(inputs, 'mesh.txt'),
      '--root-cert',
      path.join(inputs, 'root-cert.pem'),
      '--token',
      path.join(inputs, 'token'),
      '-o',
      path.join(inputs, 'out'),
    ];
  };
  it.each([
    [['--bogus'], /Unknown option '--bogus'/],
    [[], /exactly one of -f\/--file .* or --inventory/],
    [['-f', 'wg.yaml'], /missing required flag\(s\): --mesh-config, --root-cert, --token, --output, --clusterID/],
    [
      ['-f', 'wg.yaml', '--clusterID', 'c', '--internalIP', '1.1.1.1', '--externalIP', '2.2.2.2', 'BASE'],
      /mutually exclusive/,
    ],
    [['-f', 'wg.yaml', '--clusterID', 'c', '--capture-dns=maybe', 'BASE'], /--capture-dns must be true or false/],
    [
      ['-f', 'missing-wg.yaml', '--clusterID', 'c', 'BASE'],
      /cannot read --file file .*missing-wg\.yaml \(no such file\)/,
    ],
    [['--inventory', 'groups: []', '--internalIP', '1.1.1.1', 'BASE'], /--internalIP cannot be used with --inventory/],
    [
      ['--name', 'vm-app', '-n', 'vm-ns', '-o', 'out'],
      /--name reads the WorkloadGroup from the cluster: give --kubeconfig/,
    ],
    [['--name', 'vm-app', '--kubeconfig', 'kc', '-o', 'out'], /--name needs -n\/--namespace/],
    [['-f', 'wg.yaml', '-n', 'vm-ns', 'BASE'], /-n\/--namespace goes with --name/],
    [['-f', 'wg.yaml', '--name', 'vm-app', '-n', 'vm-ns', 'BASE'], /exactly one of -f\/--file .*, --name with -n/],
  ] as const)('%j → exit 2', async (args, message) => {
    const argv = args.flatMap((a) => (a === 'BASE' ? base() : [a]));
    const { io, err } = capture();
    expect(await runRenderCommand(argv, io)).toBe(2);
    expect(err()).toMatch(message);
    expect(err()).toContain('Usage:');
  });

  it('--help prints usage and exits 0', async () => {
    const { io, out } = capture();
    expect(await runRenderCommand(['--help'], io)).toBe(0);
    expect(out()).toContain('--mesh-config');
  });
});

describe('render --inventory', () => {
  const inventory = [
    'mesh:',
    '  revision: rev-1',
    '  clusterID: Kubernetes',
    '  eastWestGateway: {address: 10.10.10.11}',
    'groups:',
    '  - name: foo',
    '    namespace: bar',
    '    serviceAccount: vm-serviceaccount',
    '    registration: static',
    '    probe: {httpGet: {port: 8080}}',
    '    annotations:',
    '      proxy.istio.io/config: |-',
    '        proxyMetadata:',
    '          PROXY_CONFIG_ANNOT_VALUE: bar',
    '    vms:',
    '      - {name: vm-a, address: 192.0.2.1, user: ops, internalIP: 10.10.10.10}',
    '      - {name: vm-b, address: 192.0.2.2, user: ops, port: 2222, internalIP: 10.10.10.12}',
    '',
  ].join('\n');

  it('writes one folder per VM; a VM on SSH port 22 matches the istioctl golden (plus ISTIO_META_WORKLOAD_ENTRY: static group with a probe)', async () => {
    const inputs = inputsDir(readFileSync(path.join(GOLDEN, 'ipv4', 'meshconfig.yaml'), 'utf8'));
    writeFileSync(path.join(inputs, 'inv.yaml'), inventory);
    const out = path.join(inputs, 'out');
    const { io, err } = capture();
    const code = await runRenderCommand(
      [
        '--inventory',
        path.join(inputs, 'inv.yaml'),
        '--mesh-config',
        path.join(inputs, 'mesh.txt'),
        '--root-cert',
        path.join(inputs, 'root-cert.pem'),
        '--token',
        path.join(inputs, 'token'),
        '-o',
        out,
      ],
      io,
    );
    expect([code, err()]).toEqual([0, '']);
    for (const f of FILES) {
      const golden = readFileSync(path.join(GOLDEN, 'ipv4', `${f}.golden`), 'utf8');
      // The one deviation of a static group with a probe: cluster.env names the VM's WorkloadEntry, so that
      // istiod writes the probe's health into it (pilot/pkg/autoregistration/controller.go, OnConnect).
      const expected =
        f === 'cluster.env'
          ? golden.replace(
              "ISTIO_META_WORKLOAD_NAME='foo'\n",
              "ISTIO_META_WORKLOAD_ENTRY='vm-a'\nISTIO_META_WORKLOAD_NAME='foo'\n",
            )
          : f === 'mesh.yaml'
            ? golden.replace(
                '    ISTIO_META_WORKLOAD_NAME: foo\n',
                '    ISTIO_META_WORKLOAD_ENTRY: vm-a\n    ISTIO_META_WORKLOAD_NAME: foo\n',
              )
            : golden;
      expect(expected === golden).toBe(f !== 'cluster.env' && f !== 'mesh.yaml');
      expect(readFileSync(path.join(out, 'vm-a', f), 'utf8')).toBe(expected);
    }
    const envB = readFileSync(path.join(out, 'vm-b', 'cluster.env'), 'utf8');
    expect(envB).toContain("ISTIO_LOCAL_EXCLUDE_PORTS='22,15090,15021,15020,2222'\n");
    expect(envB).toContain("ISTIO_SVC_IP='10.10.10.12'\n");
    expect(statSync(path.join(out, 'vm-b', 'istio-token')).mode & 0o777).toBe(0o600);
  });

  it('a bad inventory exits 1 with path and line, and writes nothing', async () => {
    const inputs = inputsDir('');
    const out = path.join(inputs, 'out');
    writeFileSync(path.join(inputs, 'inv.yaml'), inventory.replace('port: 2222', 'port: 99999'));
    const { io, err } = capture();
    const code = await runRenderCommand(
      [
        '--inventory',
        path.join(inputs, 'inv.yaml'),
        '--mesh-config',
        path.join(inputs, 'mesh.txt'),
        '--root-cert',
        path.join(inputs, 'root-cert.pem'),
        '--token',
        path.join(inputs, 'token'),
        '-o',
        out,
      ],
      io,
    );
    expect(code).toBe(1);
    expect(err()).toMatch(/inv\.yaml:17:\d+ groups\[0\]\.vms\[1\]\.port: must be an integer 1\.\.65535/);
    expect(existsSync(out)).toBe(false);
  });
});
