// The CLI's runs check their inputs as the action does: a damaged key file fails before the cluster
// (a listener standing in for it) sees a single connection; an input the mode does not read is named.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliLogger, runCliRun, type CliIo } from '../../src/cli/run-command.js';
import { SecretRegistry } from '../../src/secrets.js';

let dir: string;
let server: Server;
let connections = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ivo cli inputs '));
  server = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as { port: number }).port;
  writeFileSync(
    join(dir, 'kubeconfig'),
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: "t0ken-0123456789"}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`,
  );
  writeFileSync(
    join(dir, 'inventory.yaml'),
    `groups:\n  - name: web\n    namespace: vm-web\n    vms: [{name: vm1, address: 127.0.0.1, port: ${port}, user: lab}]\n`,
  );
  writeFileSync(
    join(dir, 'damaged-key'),
    `-----BEGIN OPENSSH PRIVATE KEY-----\n${Buffer.from('damaged '.repeat(20)).toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`,
  );
  writeFileSync(
    join(dir, 'known_hosts'),
    `[127.0.0.1]:${port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`,
  );
});
afterAll(async () => {
  await new Promise((done) => server.close(done));
  rmSync(dir, { recursive: true, force: true });
});

function io(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: (text: string) => err.push(text) },
    env: { HOME: dir },
    readFile: (file: string) => readFileSync(file, 'utf8'),
  };
}

describe('istio-vm-onboard onboard|verify|offboard|plan', () => {
  it('a damaged ssh-private-key file: exit 1 naming it, no connection', async () => {
    const cli = io();
    const code = await runCliRun(
      'onboard',
      [
        '--inventory',
        join(dir, 'inventory.yaml'),
        '--kubeconfig',
        join(dir, 'kubeconfig'),
        '--ssh-private-key',
        join(dir, 'damaged-key'),
        '--ssh-known-hosts',
        join(dir, 'known_hosts'),
        '--report-path',
        join(dir, 'report.json'),
      ],
      cli,
    );
    expect(code).toBe(1);
    expect(cli.err.join('')).toMatch(
      /^input 'ssh-private-key': cannot be parsed: the -----BEGIN … PRIVATE KEY----- block does not hold a valid key/,
    );
    expect(connections).toBe(0);
  });

  it('several bad inputs: one line each', async () => {
    const cli = io();
    const code = await runCliRun(
      'verify',
      ['--inventory', join(dir, 'inventory.yaml'), '--shard', '0/2', '--revision', 'Canary', '--concurrency', 'x'],
      cli,
    );
    expect(code).toBe(1);
    expect(cli.err.join('').split('\n').slice(0, 6)).toEqual([
      '5 bad inputs:',
      expect.stringMatching(/^ {2}input 'ssh-private-key': is required in mode 'verify'/),
      expect.stringMatching(/^ {2}input 'ssh-known-hosts': is required/),
      expect.stringMatching(/^ {2}input 'revision': must be a DNS-1123 label/),
      expect.stringMatching(/^ {2}input 'concurrency': must be a whole number; got 'x'$/),
      expect.stringMatching(/^ {2}input 'shard': must look like i\/n/),
    ]);
    expect(connections).toBe(0);
  });
});

describe('the CLI log', () => {
  it('keeps text from a VM from becoming a workflow command when the CLI runs in a workflow step', () => {
    const written: string[] = [];
    const sink = { write: (text: string) => written.push(text) > 0 };
    const secrets = new SecretRegistry();
    secrets.add('s3cr3t-token-value');
    const io: CliIo = { stdout: sink, stderr: sink, env: {}, readFile: (file) => readFileSync(file, 'utf8') };
    const logger = cliLogger(io, secrets);
    logger.info('::add-mask::nothing');
    logger.warning('  ::stop-commands::x s3cr3t-token-value');
    expect(written.join('')).not.toMatch(/^\s*::/m);
    expect(written.join('')).not.toContain('s3cr3t-token-value');
    expect(written[0]).toBe(':\u200b:add-mask::nothing\n');
  });
});
