// cluster.env is sourced as root, under `set -a`, by Istio's tools/packaging/common/istio-start.sh:
// nothing from the inventory or the mesh config may run a command there or steer what root runs.
// Each rendered file is sourced by the real bash, in a fresh temporary directory.
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { renderVmFiles, RenderError, type VmFilesInput } from '../../src/render/index.js';
import { proxyMetadataKeyProblem } from '../../src/render/proxy-metadata.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ivo cluster-env '));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function input(annotation?: string, meshConfigText = 'trustDomain: corp.example\n'): VmFilesInput {
  return {
    workloadGroup: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadGroup',
      metadata: { name: 'pay', namespace: 'shop' },
      spec: {
        metadata: {
          labels: { app: 'pay' },
          annotations: annotation === undefined ? {} : { 'proxy.istio.io/config': annotation },
        },
        template: { serviceAccount: 'pay' },
      },
    },
    meshConfigText,
    rootCert: 'ROOT',
    token: 'TOKEN',
    clusterID: 'c1',
    internalIP: '10.0.0.5',
    autoregister: false,
  };
}

/** Source the file as istio-start.sh does (`set -a; . file`) and print the named variables. */
function sourced(clusterEnv: string, names: string[]): { values: Record<string, string>; marker: boolean } {
  const file = path.join(dir, 'cluster.env');
  const marker = path.join(dir, 'ran');
  rmSync(marker, { force: true });
  writeFileSync(file, clusterEnv.replaceAll('@MARKER@', marker));
  const script = `set -a; . "$1"; set +a; for n in ${names.join(' ')}; do printf '%s=%s\\0' "$n" "\${!n-<unset>}"; done`;
  const result = spawnSync('bash', ['-c', script, 'bash', file], { encoding: 'utf8', cwd: dir });
  const values: Record<string, string> = {};
  for (const entry of result.stdout.split('\0').filter((e) => e !== '')) {
    const i = entry.indexOf('=');
    values[entry.slice(0, i)] = entry.slice(i + 1);
  }
  return { values, marker: existsSync(marker) };
}

describe('proxyMetadata keys', () => {
  it.each([
    ['a command in the key', `{proxyMetadata: {"FOO=1;touch @MARKER@;X": "1"}}`, /not a shell variable name/],
    ['a newline in the key', `{proxyMetadata: {"A\\ntouch @MARKER@\\nB": "1"}}`, /not a shell variable name/],
    ['EXEC_USER (runs the proxy as root)', '{proxyMetadata: {EXEC_USER: root}}', /EXEC_USER is refused/],
    ['ISTIO_BIN_BASE (runs pilot-agent from there as root)', '{proxyMetadata: {ISTIO_BIN_BASE: /tmp}}', /refused/],
    ['TPROXY mode (the proxy as root)', '{proxyMetadata: {ISTIO_INBOUND_INTERCEPTION_MODE: TPROXY}}', /refused/],
    ['BASH_ENV', '{proxyMetadata: {BASH_ENV: /tmp/x}}', /refused/],
    ['a value with a newline', '{proxyMetadata: {ISTIO_META_X: "a\\nISTIO_INBOUND_PORTS=22"}}', /U\+000A/],
    ['a value with U+2028', '{proxyMetadata: {ISTIO_META_X: "a\\u2028b"}}', /U\+2028/],
  ])('annotation with %s: refused with the reason, no file rendered', (_name, annotation, reason) => {
    expect(() => renderVmFiles(input(annotation))).toThrow(RenderError);
    expect(() => renderVmFiles(input(annotation))).toThrow(reason);
  });

  it("the mesh config's defaultConfig.proxyMetadata is checked too, and named", () => {
    const mesh = 'defaultConfig:\n  proxyMetadata:\n    "X=1;touch @MARKER@;Y": "1"\n';
    expect(() => renderVmFiles(input(undefined, mesh))).toThrow(
      /^mesh config defaultConfig\.proxyMetadata: proxyMetadata key "X=1;touch @MARKER@;Y" is not a shell variable name/,
    );
  });

  it('every variable the issue names (and the ones istio-start.sh uses as root) is refused; Istio documented keys are kept', () => {
    for (const key of [
      'EXEC_USER',
      'ISTIO_BIN_BASE',
      'ISTIO_AGENT_FLAGS',
      'ISTIO_CUSTOM_IP_TABLES',
      'ISTIO_INBOUND_INTERCEPTION_MODE',
      'ISTIO_CLUSTER_CONFIG',
      'ISTIO_SIDECAR_CONFIG',
      'ISTIO_LOG_DIR',
      'PATH',
      'LD_PRELOAD',
      'LD_LIBRARY_PATH',
      'BASH_ENV',
      'ENV',
      'IFS',
      'SHELLOPTS',
      'PS4',
      'USER',
      'SHELL',
      'ISTIO_SVC_IP',
      'POD_NAME',
      'PROXY_CONFIG',
    ]) {
      expect([key, proxyMetadataKeyProblem(key)]).toEqual([key, expect.stringContaining('is refused')]);
    }
    for (const key of [
      'ISTIO_META_DNS_CAPTURE',
      'ISTIO_META_DNS_AUTO_ALLOCATE',
      'CA_ADDR',
      'ISTIO_META_X',
      'OUTPUT_CERTS',
    ]) {
      expect([key, proxyMetadataKeyProblem(key)]).toEqual([key, undefined]);
    }
  });

  it('allowed keys reach cluster.env and the shell reads back exactly their values', () => {
    const annotation = `{proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true", CA_ADDR: "istiod.istio-system.svc:15012", ISTIO_META_Q: "it's $(touch @MARKER@) \`x\`"}}`;
    const files = renderVmFiles(input(annotation));
    const { values, marker } = sourced(files.clusterEnv, ['CA_ADDR', 'ISTIO_META_DNS_CAPTURE', 'ISTIO_META_Q']);
    expect(marker).toBe(false);
    expect(values).toEqual({
      CA_ADDR: 'istiod.istio-system.svc:15012',
      ISTIO_META_DNS_CAPTURE: 'true',
      ISTIO_META_Q: `it's $(touch ${path.join(dir, 'ran')}) \`x\``,
    });
  });

  it('a value ending in a backslash does not swallow the next line (Istio leaves such values bare)', () => {
    // `ISTIO_META_A=ww\` bare would join the next line: the shell would not set ISTIO_META_B while a
    // line-based reader would.
    const files = renderVmFiles(input('{proxyMetadata: {ISTIO_META_A: "ww\\\\", ISTIO_META_B: "kept"}}'));
    const { values } = sourced(files.clusterEnv, ['ISTIO_META_A', 'ISTIO_META_B']);
    expect(values).toEqual({ ISTIO_META_A: 'ww\\', ISTIO_META_B: 'kept' });
  });
});
