// The inputs checked against what they refer to, before anything connects: the SSH key as the SSH
// client parses it (real keys made by ssh-keygen), the kubeconfig and its context, the groups of the
// inventory, the package file.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkInputs } from '../../src/check-inputs.js';
import { parseInventory } from '../../src/inventory/index.js';
import { readSettings, SettingsError, type InputName } from '../../src/settings.js';

const KNOWN_HOSTS = '10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: "kube-secret-token-0123456789"}
contexts:
- name: prod
  context: {cluster: c, user: u}
- name: dev
  context: {cluster: c, user: u}
current-context: prod
`;
const inventory = parseInventory(
  `groups:
  - name: web
    namespace: vm-web
    vms: [{name: vm1, address: 10.0.0.1, user: lab}]
  - name: db
    namespace: vm-db
    vms: [{name: vm2, address: 10.0.0.2, user: lab}]
`,
  '<inline>',
);

let dir: string;
const keys: Record<string, string> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ivo check inputs '));
  const keygen = (name: string, args: string[]) => {
    execFileSync('ssh-keygen', ['-q', '-C', '', ...args, '-f', join(dir, name)]);
    keys[name] = readFileSync(join(dir, name), 'utf8');
    keys[`${name}.pub`] = readFileSync(join(dir, `${name}.pub`), 'utf8');
  };
  keygen('ed25519', ['-t', 'ed25519', '-N', '']);
  keygen('ed25519-protected', ['-t', 'ed25519', '-N', 'correct horse']);
  keygen('rsa-pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', '']);
  keygen('rsa-pem-protected', ['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', 'correct horse']);
  keygen('ecdsa', ['-t', 'ecdsa', '-N', '']);
  writeFileSync(join(dir, 'istio-sidecar.deb'), 'package');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(inputs: Partial<Record<InputName, string>>, env: NodeJS.ProcessEnv = {}): void {
  const all: Partial<Record<InputName, string>> = {
    inventory: 'inventory.yaml',
    'ssh-private-key': keys['ed25519'],
    'ssh-known-hosts': KNOWN_HOSTS,
    kubeconfig: KUBECONFIG,
    ...inputs,
  };
  const settings = readSettings({ get: (name) => all[name] ?? '' }, {});
  checkInputs(settings, inventory, { env, cwd: dir });
}

function problemsOf(inputs: Partial<Record<InputName, string>>, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    check(inputs, env);
  } catch (error) {
    if (error instanceof SettingsError) return error.problems.map((problem) => problem.message);
    throw error;
  }
  return [];
}

describe('checkInputs', () => {
  it('accepts the keys ssh-keygen writes, with their passphrases', () => {
    for (const name of ['ed25519', 'rsa-pem', 'ecdsa'])
      expect([name, problemsOf({ 'ssh-private-key': keys[name] })]).toEqual([name, []]);
    for (const name of ['ed25519-protected', 'rsa-pem-protected']) {
      expect([
        name,
        problemsOf({ 'ssh-private-key': keys[name], 'ssh-private-key-passphrase': 'correct horse' }),
      ]).toEqual([name, []]);
    }
    expect(problemsOf({ context: 'dev', groups: 'db', 'sidecar-package-path': 'istio-sidecar.deb' })).toEqual([]);
    expect(problemsOf({ 'allowed-namespaces': 'vm-db, vm-web, team-x' })).toEqual([]);
  });

  it.each<[string, Partial<Record<InputName, string>>, RegExp]>([
    [
      'a valid PEM frame around garbage',
      {
        'ssh-private-key': `-----BEGIN OPENSSH PRIVATE KEY-----\n${Buffer.from('garbage '.repeat(30)).toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`,
      },
      /^input 'ssh-private-key': cannot be parsed: the -----BEGIN … PRIVATE KEY----- block does not hold a valid key/,
    ],
    ['a truncated key', { 'ssh-private-key': 'TRUNCATE' }, /^input 'ssh-private-key': cannot be parsed/],
    ['text that is no key', { 'ssh-private-key': 'my-deploy-key' }, /^input 'ssh-private-key': is not a private key/],
    ['the public key', { 'ssh-private-key': 'PUBLIC' }, /^input 'ssh-private-key': is a public key/],
    [
      'a PKCS#8 key',
      {
        'ssh-private-key':
          '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBVa0sZ6zSfUY4Rt2+rrpPAuwxtPm2tzdlrB4lT6cvIo\n-----END PRIVATE KEY-----\n',
      },
      /^input 'ssh-private-key': is a PKCS#8 key, which the SSH client cannot read; convert it with `ssh-keygen -p -f KEYFILE`/,
    ],
    [
      'a protected OpenSSH key without its passphrase',
      { 'ssh-private-key': 'ed25519-protected' },
      /^input 'ssh-private-key-passphrase': is required: ssh-private-key is passphrase-protected/,
    ],
    [
      'a protected PEM key without its passphrase',
      { 'ssh-private-key': 'rsa-pem-protected' },
      /^input 'ssh-private-key-passphrase': is required/,
    ],
    [
      'a protected OpenSSH key with a wrong passphrase',
      { 'ssh-private-key': 'ed25519-protected', 'ssh-private-key-passphrase': 'wrong horse' },
      /^input 'ssh-private-key-passphrase': does not decrypt ssh-private-key \(wrong passphrase\)$/,
    ],
    [
      'a protected PEM key with a wrong passphrase',
      { 'ssh-private-key': 'rsa-pem-protected', 'ssh-private-key-passphrase': 'wrong horse' },
      /^input 'ssh-private-key-passphrase': does not decrypt/,
    ],
    [
      'a kubeconfig that is not YAML',
      { kubeconfig: 'clusters: [' },
      /^input 'kubeconfig': kubeconfig from the kubeconfig input is not valid YAML at line 1/,
    ],
    [
      'a kubeconfig that is a string',
      { kubeconfig: 'hello' },
      /^input 'kubeconfig': kubeconfig from the kubeconfig input is not a kubeconfig/,
    ],
    [
      'a context the kubeconfig lacks',
      { context: 'staging' },
      /^input 'context': kubeconfig from the kubeconfig input has no context "staging"; available contexts: "prod", "dev"/,
    ],
    [
      'no current-context and no context input',
      { kubeconfig: KUBECONFIG.replace('current-context: prod\n', '') },
      /^input 'context': kubeconfig from the kubeconfig input has no current-context/,
    ],
    [
      'a group the inventory lacks',
      { groups: 'web, cache' },
      /^input 'groups': names 'cache', not a group of the inventory <inline>; its groups are web, db$/,
    ],
    [
      'a group in a namespace allowed-namespaces does not list',
      { 'allowed-namespaces': 'vm-web' },
      /^input 'allowed-namespaces': lists vm-web, but the inventory <inline> puts group 'db' in namespace 'vm-db'; /,
    ],
    [
      'allowed-namespaces with a name that is not a namespace',
      { 'allowed-namespaces': 'vm-web, VM_DB' },
      /^input 'allowed-namespaces': /,
    ],
    [
      'a package file that is not there',
      { 'sidecar-package-path': 'missing.deb' },
      /^input 'sidecar-package-path': 'missing.deb' cannot be read \(ENOENT\)/,
    ],
    [
      'a package path that is a folder',
      { 'sidecar-package-path': '.' },
      /^input 'sidecar-package-path': '.' is not a file/,
    ],
  ])('%s: one error naming the input', (_name, inputs, message) => {
    const resolved = { ...inputs };
    const key = inputs['ssh-private-key'];
    if (key === 'TRUNCATE')
      resolved['ssh-private-key'] = keys['ed25519']!.slice(0, 200) + '\n-----END OPENSSH PRIVATE KEY-----\n';
    else if (key === 'PUBLIC') resolved['ssh-private-key'] = keys['ed25519.pub'];
    else if (key !== undefined && keys[key]) resolved['ssh-private-key'] = keys[key];
    const problems = problemsOf(resolved);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
    // Never the key, the passphrase or the kubeconfig's credentials in a message.
    expect(problems[0]).not.toContain('horse');
    expect(problems[0]).not.toContain('kube-secret-token');
    expect(problems[0]).not.toContain('Z2FyYmFnZ');
  });

  it('reports the key, the kubeconfig and the groups together', () => {
    expect(
      problemsOf({ 'ssh-private-key': 'no key', kubeconfig: 'clusters: [', groups: 'cache' }).map(
        (m) => m.split(':')[0],
      ),
    ).toEqual(["input 'ssh-private-key'", "input 'kubeconfig'", "input 'groups'"]);
  });

  it('without a kubeconfig input, needs KUBECONFIG, ~/.kube/config or in-cluster credentials', () => {
    expect(problemsOf({ kubeconfig: '' }, { HOME: dir })).toEqual([
      "input 'kubeconfig': no Kubernetes credentials: give the kubeconfig input (or --kubeconfig), set KUBECONFIG, or run inside a cluster",
    ]);
    writeFileSync(join(dir, 'kubeconfig'), KUBECONFIG);
    expect(problemsOf({ kubeconfig: '' }, { KUBECONFIG: join(dir, 'kubeconfig') })).toEqual([]);
  });
});
