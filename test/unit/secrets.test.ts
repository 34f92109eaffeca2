import { describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import {
  execPluginValues,
  forgetSecretInputs,
  neutralizeWorkflowCommands,
  registerSecretInputs,
  SecretRegistry,
} from '../../src/secrets.js';

describe('SecretRegistry', () => {
  it('scrubs whole secrets and each line of multi-line ones, but not PEM framing', () => {
    const secrets = new SecretRegistry();
    const seen: string[] = [];
    secrets.onAdd((value) => seen.push(value));
    secrets.add(
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJDREVGR0hJSktMTU5P\n-----END OPENSSH PRIVATE KEY-----\n',
    );
    expect(seen).toContain('b3BlbnNzaC1rZXktdjEAAAAA');
    expect(seen).not.toContain('-----END OPENSSH PRIVATE KEY-----');
    expect(secrets.scrub('key line QUJDREVGR0hJSktMTU5P here')).toBe('key line *** here');
    expect(secrets.has('xx b3BlbnNzaC1rZXktdjEAAAAA')).toBe(true);
  });
  it('scrubs the longest secret first', () => {
    const secrets = new SecretRegistry();
    secrets.add('tokenvalue');
    secrets.add('tokenvalue-extended');
    expect(secrets.scrub('tokenvalue-extended tokenvalue')).toBe('*** ***');
  });
  it('masks a short secret too (a 3-letter passphrase), as a whole word so other words stay readable', () => {
    const secrets = new SecretRegistry();
    const seen: string[] = [];
    secrets.onAdd((value) => seen.push(value));
    secrets.add('abc');
    expect(seen).toEqual(['abc']);
    expect(secrets.scrub('passphrase abc, not abcdef or xabc')).toBe('passphrase ***, not abcdef or xabc');
    expect(secrets.has('it was abc')).toBe(true);
    // A short last line of a long secret is not masked on its own (it would garble every log line).
    secrets.add('-----BEGIN X-----\nQUJDREVGR0hJSktMTU5P\nxY==\n-----END X-----');
    expect(seen).not.toContain('xY==');
  });
});

describe('kubeconfig exec plugins', () => {
  const kubeconfig = `apiVersion: v1
kind: Config
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: corp-login
      args: ["--client-secret", "cs-9f8e7d6c5b"]
      env:
      - {name: CORP_TOKEN, value: "tok-1a2b3c4d5e"}
`;
  it('their args and env values are secrets', () => {
    expect(execPluginValues(parseYaml(kubeconfig))).toEqual(['--client-secret', 'cs-9f8e7d6c5b', 'tok-1a2b3c4d5e']);
    const secrets = new SecretRegistry();
    registerSecretInputs(secrets, (name) => (name === 'kubeconfig' ? kubeconfig : ''));
    expect(secrets.scrub('exec: corp-login --client-secret cs-9f8e7d6c5b with tok-1a2b3c4d5e')).toBe(
      'exec: corp-login *** *** with ***', // every arg: a plugin's flags are not told apart from its values
    );
  });
});

describe('secret inputs in the environment', () => {
  it('are removed once read, so no child process inherits them', () => {
    const env: NodeJS.ProcessEnv = {
      INPUT_KUBECONFIG: 'apiVersion: v1',
      'INPUT_SSH-PRIVATE-KEY': 'key',
      'INPUT_SSH-PRIVATE-KEY-PASSPHRASE': 'pp',
      INPUT_MODE: 'onboard',
      PATH: '/usr/bin',
    };
    forgetSecretInputs(env);
    expect(env).toEqual({ INPUT_MODE: 'onboard', PATH: '/usr/bin' });
  });
});

describe('workflow commands in text a VM produced', () => {
  it('never reach the runner as commands, at any line start', () => {
    const vmSays = 'istio-sidecar 1.24.0\n::add-mask::x\n  ::stop-commands::t0k\r\n::error::fake\nkeep :: inside';
    const safe = neutralizeWorkflowCommands(vmSays);
    for (const line of safe.split(/\r?\n/)) expect(line.trimStart().startsWith('::')).toBe(false);
    expect(safe).toContain('keep :: inside');
    expect(safe.replaceAll('\u200b', '')).toBe(vmSays);
  });
});
