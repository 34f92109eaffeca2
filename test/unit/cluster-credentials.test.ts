import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ClusterConfigError } from '../../src/cluster/errors.js';
import { decodeKubeconfigText, loadKubeConfig, secretsOfKubeconfig } from '../../src/cluster/credentials.js';

const KEY_PEM =
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';
const doc = {
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [{ name: 'c1', cluster: { server: 'https://10.0.0.1:6443', 'insecure-skip-tls-verify': true } }],
  users: [
    { name: 'u1', user: { token: 'tok-abcdefghijklmnop' } },
    {
      name: 'u2',
      user: { 'client-key-data': Buffer.from(KEY_PEM).toString('base64'), 'client-certificate-data': 'Y2VydGRhdGE=' },
    },
    { name: 'u3', user: { username: 'admin', password: 'hunter2-password' } },
    {
      name: 'u4',
      user: {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: 'aws',
          env: [{ name: 'AWS_SECRET', value: 'aws-secret-value' }],
        },
      },
    },
  ],
  contexts: [
    { name: 'prod', context: { cluster: 'c1', user: 'u1' } },
    { name: 'dev', context: { cluster: 'c1', user: 'u2' } },
  ],
  'current-context': 'prod',
};
const text = stringify(doc);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('loadKubeConfig', () => {
  it('accepts YAML and base64 of it; returns the server and every secret', () => {
    for (const input of [text, Buffer.from(text).toString('base64'), `  ${Buffer.from(text).toString('base64')}\n`]) {
      const loaded = loadKubeConfig({ kubeconfig: input });
      expect(loaded.server).toBe('https://10.0.0.1:6443');
      expect(loaded.context).toBe('prod');
      expect(loaded.secrets).toEqual(
        expect.arrayContaining([
          'tok-abcdefghijklmnop',
          'hunter2-password',
          'aws-secret-value',
          KEY_PEM,
          doc.users[1]!.user['client-key-data'],
          text,
        ]),
      );
      expect(loaded.secrets).toContain(input);
    }
    expect(decodeKubeconfigText('not base64: yes')).toBe('not base64: yes');
  });

  it('selects a context; an unknown one lists the available ones', () => {
    expect(loadKubeConfig({ kubeconfig: text, context: 'dev' }).context).toBe('dev');
    expect(() => loadKubeConfig({ kubeconfig: text, context: 'staging' })).toThrow(
      'kubeconfig from the kubeconfig input has no context "staging"; available contexts: "prod", "dev"',
    );
    const noCurrent = stringify({ ...doc, 'current-context': '' });
    expect(() => loadKubeConfig({ kubeconfig: noCurrent })).toThrow(
      /no current-context; give the context input; available contexts: "prod", "dev"/,
    );
  });

  it('invalid kubeconfigs fail without quoting them', () => {
    const broken = `${text}users: [ {token: tok-abcdefghijklmnop`;
    let message = '';
    try {
      loadKubeConfig({ kubeconfig: broken });
    } catch (e) {
      expect(e).toBeInstanceOf(ClusterConfigError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/^kubeconfig from the kubeconfig input is not valid YAML at line \d+, column \d+/);
    expect(message).not.toContain('tok-');
    expect(() => loadKubeConfig({ kubeconfig: '- just\n- a list\n' })).toThrow(/is not a kubeconfig/);
    const noServer = stringify({ ...doc, clusters: [{ name: 'c1', cluster: {} }] });
    expect(() => loadKubeConfig({ kubeconfig: noServer })).toThrow(ClusterConfigError);
  });

  it('falls back to KUBECONFIG, then ~/.kube/config, then in-cluster; else a clear error', () => {
    const d = mkdtempSync(join(tmpdir(), 'ivo-kc-'));
    dirs.push(d);
    const file = join(d, 'kc');
    writeFileSync(file, text);
    expect(loadKubeConfig({ env: { KUBECONFIG: `/missing:${file}` } }).source).toBe(file);
    expect(() => loadKubeConfig({ env: { KUBECONFIG: '/missing' } })).toThrow(
      'no kubeconfig file found at KUBECONFIG=/missing',
    );
    mkdirSync(join(d, 'home', '.kube'), { recursive: true });
    writeFileSync(join(d, 'home', '.kube', 'config'), text);
    expect(loadKubeConfig({ env: { HOME: join(d, 'home') } }).source).toBe(join(d, 'home', '.kube', 'config'));
    const sa = join(d, 'sa');
    mkdirSync(sa);
    writeFileSync(join(sa, 'token'), 'in-cluster-token-value\n');
    const inCluster = loadKubeConfig({
      env: { HOME: join(d, 'nohome'), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountDir: sa,
    });
    expect(inCluster).toMatchObject({
      server: 'https://10.96.0.1:443',
      source: 'in-cluster',
      secrets: ['in-cluster-token-value'],
    });
    expect(() => loadKubeConfig({ env: { HOME: join(d, 'nohome') }, serviceAccountDir: join(d, 'none') })).toThrow(
      /no Kubernetes credentials/,
    );
    expect(() => loadKubeConfig({ kubeconfigPath: join(d, 'nope') })).toThrow(
      `cannot read kubeconfig file ${join(d, 'nope')} (ENOENT)`,
    );
  });

  it('secretsOfKubeconfig tolerates odd shapes', () => {
    expect(secretsOfKubeconfig(null)).toEqual([]);
    expect(secretsOfKubeconfig({ users: [null, { user: 'x' }] })).toEqual([]);
    expect(
      secretsOfKubeconfig({
        users: [{ user: { 'auth-provider': { config: { 'id-token': 'idtok', 'refresh-token': 'rt' } } } }],
      }),
    ).toEqual(['idtok', 'rt']);
  });
});
