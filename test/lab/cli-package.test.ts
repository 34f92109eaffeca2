// The command line as users get it: `npm pack` makes the package, it is installed into a clean folder
// with `npm install --offline` (it has no dependencies: the bundles in dist/cli/ are self-contained), and
// its `istio-vm-onboard` bin — found through node_modules/.bin, started by its shebang — prints its help
// and renders a VM's files exactly as the source's render command does.
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runRenderCommand } from '../../src/commands/render.js';
import { run } from './exec.js';
import { node24, REPO_ROOT } from './testing.js';

const work = mkdtempSync(path.join(tmpdir(), 'ivo package '));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const version = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const consumer = path.join(work, 'clean folder');
const bin = path.join(consumer, 'node_modules', '.bin', 'istio-vm-onboard');
// Node 24 first on the PATH, as it is for anyone who meets the package's engines field.
const env = { ...process.env, PATH: `${path.dirname(node24())}${path.delimiter}${process.env.PATH ?? ''}` };

interface PackResult {
  filename: string;
  files: { path: string }[];
}

describe('the npm package of the command line', () => {
  it('packs the CLI bundles and schemas, and nothing from src/ or the action bundle', async () => {
    const pack = await run(['npm', 'pack', '--json', '--pack-destination', work], {
      cwd: REPO_ROOT,
      env,
      timeoutMs: 120_000,
    });
    const [result] = JSON.parse(pack.stdout) as PackResult[];
    expect(result!.filename).toBe(`istio-vm-onboard-${version}.tgz`);
    const files = result!.files.map((file) => file.path).sort();
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'LICENSE',
        'CHANGELOG.md',
        'dist/cli/index.js',
        'dist/cli/run.js',
        'inventory.schema.json',
      ]),
    );
    expect(files.filter((file) => /^(src|test|node_modules)\/|^dist\/index\.js$/.test(file))).toEqual([]);
  }, 180_000);

  it('installs offline into a clean folder, with no dependencies', async () => {
    mkdirSync(consumer);
    writeFileSync(path.join(consumer, 'package.json'), '{ "name": "consumer", "private": true }\n');
    await run(
      ['npm', 'install', '--offline', '--no-audit', '--no-fund', path.join(work, `istio-vm-onboard-${version}.tgz`)],
      { cwd: consumer, env: { ...env, npm_config_cache: path.join(work, 'npm cache') }, timeoutMs: 120_000 },
    );
    expect(readdirSync(path.join(consumer, 'node_modules')).filter((name) => !name.startsWith('.'))).toEqual([
      'istio-vm-onboard',
    ]);
  }, 180_000);

  it('`istio-vm-onboard --help` runs from there', async () => {
    const help = await run([bin, '--help'], { cwd: consumer, env });
    expect(help.stdout).toContain(`istio-vm-onboard ${version} — bring VMs into an Istio mesh`);
    expect(help.stdout).toMatch(/istio-vm-onboard render {3}-f workloadgroup\.yaml/);
  });

  it('`istio-vm-onboard render` from there writes the same files as the source', async () => {
    const inputs = path.join(work, 'inputs');
    mkdirSync(inputs);
    writeFileSync(
      path.join(inputs, 'workloadgroup.yaml'),
      [
        'kind: WorkloadGroup',
        'metadata: { name: web, namespace: vm }',
        'spec:',
        '  metadata: { labels: { app: web } }',
        '  template: { serviceAccount: web-sa, ports: { http: 8080 } }',
        '',
      ].join('\n'),
    );
    writeFileSync(path.join(inputs, 'mesh.txt'), 'defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n');
    writeFileSync(path.join(inputs, 'root-cert.pem'), 'a root certificate\n');
    writeFileSync(path.join(inputs, 'token'), 'a token\n');
    const args = (out: string): string[] => [
      '-f',
      path.join(inputs, 'workloadgroup.yaml'),
      '--mesh-config',
      path.join(inputs, 'mesh.txt'),
      '--root-cert',
      path.join(inputs, 'root-cert.pem'),
      '--token',
      path.join(inputs, 'token'),
      '--clusterID',
      'Kubernetes',
      '--ingressIP',
      '203.0.113.10',
      '--internalIP',
      '10.0.1.7',
      '-o',
      out,
    ];
    const packaged = path.join(work, 'out packaged');
    const source = path.join(work, 'out source');
    const rendered = await run([bin, 'render', ...args(packaged)], { cwd: consumer, env, allowFailure: true });
    expect({ code: rendered.code, stderr: rendered.stderr }).toEqual({ code: 0, stderr: '' });
    const sink = { write: () => true };
    expect(await runRenderCommand(args(source), { stdout: sink, stderr: sink, cwd: consumer })).toBe(0);

    const files = readdirSync(packaged).sort();
    expect(files).toEqual(['cluster.env', 'hosts', 'istio-token', 'mesh.yaml', 'root-cert.pem']);
    expect(readdirSync(source).sort()).toEqual(files);
    for (const file of files) {
      expect([file, readFileSync(path.join(packaged, file), 'utf8')]).toEqual([
        file,
        readFileSync(path.join(source, file), 'utf8'),
      ]);
    }
    expect(readFileSync(path.join(packaged, 'cluster.env'), 'utf8')).toContain("ISTIO_SERVICE_CIDR='*'");
    expect(readFileSync(path.join(packaged, 'hosts'), 'utf8')).toBe('203.0.113.10 istiod.istio-system.svc\n');
  });
});
