// Bad input through the bundled action (dist/index.js): exit 1, the field path and line as an
// annotation, and not a single connection to the cluster or to a VM.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BAD_INVENTORIES, expectedLine } from '../fixtures/bad-inventories.js';

const ACTION = resolve('dist/index.js');
let dir: string;
let server: Server;
let port = 0;
let connections = 0;
/** A real key (every input is parsed before the inventory's VMs are looked at); made in beforeAll. */
let KEY = '';
/** A line of KEY's base64 body: a secret that must never be shown. */
let KEY_LINE = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ivo-bad-input-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', join(dir, 'id_ed25519')]);
  KEY = readFileSync(join(dir, 'id_ed25519'), 'utf8');
  KEY_LINE = KEY.split('\n')[2]!;
  server = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((done) => server.close(done));
  rmSync(dir, { recursive: true, force: true });
});

function kubeconfigFor(serverPort: number): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:${serverPort}", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: "kube-secret-token-0123456789"}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`;
}

function runAction(inputs: Record<string, string>) {
  const output = join(dir, `output-${Math.random()}`);
  const summary = join(dir, `summary-${Math.random()}`);
  writeFileSync(output, '');
  writeFileSync(summary, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    GITHUB_OUTPUT: output,
    GITHUB_STEP_SUMMARY: summary,
    GITHUB_WORKSPACE: dir,
    RUNNER_TEMP: dir,
  };
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value;
  const result = spawnSync(process.execPath, [ACTION], { env, cwd: dir, encoding: 'utf8', timeout: 60_000 });
  // ::add-mask:: lines are how secrets reach the runner's masker; the runner never shows them.
  const shown = result.stdout
    .split('\n')
    .filter((line) => !line.startsWith('::add-mask::'))
    .join('\n');
  return { ...result, shown, outputs: readFileSync(output, 'utf8') };
}

describe('the action with bad input', () => {
  it.each([
    ['a port out of range', 'port: 99999', 'groups[0].vms[0].port', 8],
    ['an unknown key', 'colour: blue', 'groups[0].vms[0]', 9],
    ['a bad internal IP', 'internalIP: 10.0.0.300', 'groups[0].vms[0].internalIP', 9],
  ])('%s: exits 1 with path and line, touches nothing', (_name, badLine, path, line) => {
    writeFileSync(
      join(dir, 'inventory.yaml'),
      `groups:
  - name: web
    namespace: vm-web
    vms:
      - name: vm1
        address: 127.0.0.1
        user: lab
        ${badLine.startsWith('port:') ? badLine : `port: ${port}`}
        ${badLine.startsWith('port:') ? '' : badLine}
`,
    );
    const before = connections;
    const result = runAction({
      inventory: 'inventory.yaml',
      kubeconfig: kubeconfigFor(port),
      'ssh-private-key': KEY,
      'ssh-known-hosts': `[127.0.0.1]:${port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl`,
    });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain(`::error file=inventory.yaml,line=${line}::${path}`);
    expect(connections).toBe(before);
    expect(result.shown).not.toContain('kube-secret-token-0123456789');
    expect(result.shown).not.toContain(KEY_LINE);
    expect(result.stdout).toContain('::add-mask::kube-secret-token-0123456789');
    expect(result.stdout).not.toContain('::add-mask::kind: Config');
  });

  it('names a bad input and touches nothing', () => {
    writeFileSync(
      join(dir, 'inventory.yaml'),
      `groups:\n  - name: web\n    namespace: vm-web\n    vms:\n      - {name: vm1, address: 127.0.0.1, port: ${port}, user: lab}\n`,
    );
    const before = connections;
    const result = runAction({ inventory: 'inventory.yaml', mode: 'deploy', kubeconfig: kubeconfigFor(port) });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain("input 'mode': must be one of onboard, verify, offboard, plan; got 'deploy'");
    expect(connections).toBe(before);
  });

  // Every malformed inventory of the parser's table, through the bundled action: annotated at its
  // path and line, and not one connection to the cluster (the kubeconfig points at this listener; no VM
  // is ever contacted before the cluster preflight, so no cluster call also means no SSH).
  it.each(BAD_INVENTORIES.map((c) => [c.name, c] as const))('malformed inventory: %s', (_name, c) => {
    writeFileSync(join(dir, 'inventory.yaml'), c.text.replaceAll('10.0.0.1', '127.0.0.1'));
    const before = connections;
    const result = runAction({
      inventory: 'inventory.yaml',
      kubeconfig: kubeconfigFor(port),
      'ssh-private-key': KEY,
      'ssh-known-hosts': `127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl`,
    });
    expect(result.status).toBe(1);
    expect(result.shown).toContain(`::error file=inventory.yaml,line=${expectedLine(c)}::${c.path}`);
    expect(connections).toBe(before);
  });
});
