// The Envoy admin parsers against the real/constructed reference outputs in ../shared/envoy-reference.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { canonicalStatName, parseEnvoyStatsText, statValue } from '../../src/verify/envoy/stats-text.js';
import { parsePrometheusText, selectSamples, sumMetric } from '../../src/verify/envoy/prometheus.js';
import {
  EnvoyFormatError,
  inspectCertificate,
  parseCertsJson,
  parseSecretsConfigDump,
  parseSpiffeId,
  parseSubjectAltName,
  verifyChainToRoots,
} from '../../src/verify/envoy/certs.js';
import { makeCa, makeWorkloadCert } from './verify-fixtures.js';

const REF = path.resolve(process.cwd(), '../shared/envoy-reference');
const ref = (p: string) => readFileSync(path.join(REF, p), 'utf8');

describe('Envoy /stats text', () => {
  it('reads the default-sidecar stats file, alt_stat_name form included', () => {
    const stats = parseEnvoyStatsText(ref('stats/stats_text.constructed.txt'));
    expect(stats.unparsed).toEqual([]);
    expect(statValue(stats, 'cluster.xds-grpc.upstream_cx_active')).toBe(1);
    expect(statValue(stats, 'cluster.xds-grpc;.upstream_cx_active')).toBe(1);
    expect(statValue(stats, 'cluster_manager.cds.update_success')).toBe(2);
    expect(statValue(stats, 'listener_manager.lds.update_rejected')).toBe(0);
    expect(statValue(stats, 'server.state')).toBe(0);
    expect(statValue(stats, 'control_plane.connected_state')).toBeUndefined();
    const hist = stats.byName.get('server.initialization_time_ms');
    expect(hist?.kind).toBe('histogram');
    if (hist?.kind === 'histogram') {
      expect(hist.quantiles).toHaveLength(10);
      expect(hist.quantiles[0]).toEqual({ quantile: '0', interval: undefined, cumulative: 120 });
      expect(hist.quantiles[7]).toEqual({ quantile: '99.5', interval: undefined, cumulative: 129.95 });
    }
  });

  it('reads the inclusion-only stats file (outbound cluster with `|` and `;`)', () => {
    const stats = parseEnvoyStatsText(ref('stats/stats_text_with_inclusions.constructed.txt'));
    expect(statValue(stats, 'cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_cx_total')).toBe(12);
    expect(statValue(stats, 'listener.0.0.0.0_15006.ssl.handshake')).toBe(37);
  });

  it('accepts the pre-alt_stat_name form, Istio probe test text and `No recorded values`', () => {
    const stats = parseEnvoyStatsText(
      'cluster.xds-grpc.upstream_cx_active: 3\r\ncluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\nserver.state: 0\nlistener_manager.workers_started: 1\nfoo.hist: No recorded values\ngarbage line\n',
    );
    expect(statValue(stats, 'cluster.xds-grpc;.upstream_cx_active')).toBe(3);
    expect(statValue(stats, 'listener_manager.workers_started')).toBe(1);
    expect(stats.byName.get('foo.hist')).toEqual({ kind: 'histogram', quantiles: [], raw: 'No recorded values' });
    expect(stats.unparsed).toEqual(['garbage line']);
    expect(canonicalStatName('cluster.outbound|80||a.b;.upstream_rq_200')).toBe(
      'cluster.outbound|80||a.b.upstream_rq_200',
    );
  });
});

describe('Prometheus exposition (/stats/prometheus)', () => {
  it('reads the reference exposition and sums the destination mutual_tls requests', () => {
    const expo = parsePrometheusText(ref('stats/stats_prometheus.constructed.txt'));
    expect(expo.errors).toEqual([]);
    expect(expo.types.get('istio_requests_total')).toBe('counter');
    expect(expo.types.get('envoy_server_state')).toBe('gauge');
    expect(
      sumMetric(expo, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' }),
    ).toBe(37);
    expect(sumMetric(expo, 'istio_requests_total', { connection_security_policy: 'none' })).toBe(0);
    const [sample] = selectSamples(expo, 'istio_requests_total');
    expect(sample?.labels.source_principal).toBe('spiffe://cluster.local/ns/default/sa/sleep');
    expect(sample?.labels.grpc_response_status).toBe('');
    expect(
      selectSamples(expo, 'envoy_cluster_upstream_cx_total', {
        cluster_name: 'outbound|9080||reviews.default.svc.cluster.local',
      })[0]?.value,
    ).toBe(12);
    expect(selectSamples(expo, 'envoy_server_live')[0]).toEqual({ name: 'envoy_server_live', labels: {}, value: 1 });
  });

  it('handles escapes, several series, special values, timestamps and reports bad lines', () => {
    const text = [
      '# HELP istio_requests_total Total requests with "quotes" \\n',
      '# TYPE istio_requests_total counter',
      'istio_requests_total{reporter="destination",connection_security_policy="mutual_tls",response_code="200",path="a\\"b\\\\c\\nd"} 5',
      'istio_requests_total{reporter="destination",connection_security_policy="mutual_tls",response_code="503",} 2 1700000000000',
      'istio_requests_total{reporter="source",connection_security_policy="unknown"} 9',
      'istio_requests_total{reporter="destination",connection_security_policy="none"} 4',
      'envoy_x{} NaN',
      'envoy_y +Inf',
      'istio_requests_total{reporter="destination" 1',
      'bad-name 1',
    ].join('\n');
    const expo = parsePrometheusText(text);
    expect(
      sumMetric(expo, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' }),
    ).toBe(7);
    expect(selectSamples(expo, 'istio_requests_total', { response_code: '200' })[0]?.labels.path).toBe('a"b\\c\nd');
    expect(selectSamples(expo, 'istio_requests_total', { response_code: '503' })[0]?.timestampMs).toBe(1700000000000);
    expect(Number.isNaN(selectSamples(expo, 'envoy_x')[0]?.value)).toBe(true);
    expect(selectSamples(expo, 'envoy_y')[0]?.value).toBe(Number.POSITIVE_INFINITY);
    expect(expo.errors.map((e) => e.line)).toEqual([9, 10]);
  });

  it('reads the label order of istio/proxy server_request_total testdata when rendered as exposition', () => {
    // The .yaml.tmpl is Prometheus-proto-as-YAML; render its label list as one exposition line.
    const tmpl = ref('stats/istio_requests_total.server_side.istio-proxy-testdata.yaml.tmpl');
    const pairs = [...tmpl.matchAll(/- name: (\w+)\n\s+value: (.*)/g)].map(([, k, v]) => [
      k!,
      v!.replace(/^['"]|['"]$/g, ''),
    ]);
    const line = `istio_requests_total{${pairs.map(([k, v]) => `${k}="${v}"`).join(',')}} 3`;
    const expo = parsePrometheusText(line);
    expect(expo.errors).toEqual([]);
    expect(
      sumMetric(expo, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'none' }),
    ).toBe(3);
  });
});

describe('/config_dump secrets and /certs', () => {
  const dump = ref('config_dump/secrets_config_dump.istio-testdata.json');

  it('decodes the default chain and ROOTCA from SecretsConfigDump', () => {
    const secrets = parseSecretsConfigDump(dump);
    expect(secrets.workloadChainPem).toHaveLength(2);
    expect(secrets.trustedCaPem).toHaveLength(1);
    expect(secrets.warmingSecrets).toEqual(['configmap://some/thing']);
    expect(secrets.workloadLastUpdated).toBe('2023-05-15T01:32:52.262Z');
    const leaf = inspectCertificate(secrets.workloadChainPem[0]!);
    // Values as in istioctl's table for the same dump (secrets_istioctl_table.istio-testdata.txt).
    expect(leaf.serialNumber).toBe('6fbee254c22900615cb1f74e3d2f1713');
    expect(leaf.notAfter.toISOString()).toBe('2023-05-16T01:32:52.000Z');
    expect(leaf.notBefore.toISOString()).toBe('2023-05-15T01:30:52.000Z');
    expect(leaf.uriSans).toEqual(['spiffe://cluster.local/ns/ambient/sa/namespace-istio-waypoint']);
    expect(leaf.issuer).toBe('O=cluster.local');
    expect(leaf.isCa).toBe(false);
    const root = inspectCertificate(secrets.trustedCaPem[0]!);
    expect(root.serialNumber).toBe('0193a543fe2b0d9cd4847675394dfc54');
    expect(root.isCa).toBe(true);
    const table = ref('config_dump/secrets_istioctl_table.istio-testdata.txt');
    expect(table).toContain(leaf.serialNumber);
    expect(table).toContain(root.serialNumber);
  });

  it('verifies the chain against the ROOTCA and rejects a foreign root', () => {
    const secrets = parseSecretsConfigDump(dump);
    const ok = verifyChainToRoots(secrets.workloadChainPem, secrets.trustedCaPem);
    expect(ok.ok).toBe(true);
    // Leaf alone (no root appended) still chains.
    expect(verifyChainToRoots(secrets.workloadChainPem.slice(0, 1), secrets.trustedCaPem).ok).toBe(true);
    // A root of another mesh (same organisation name, other key) is refused.
    const foreign = makeCa('cluster.local');
    const wrong = verifyChainToRoots(secrets.workloadChainPem, [foreign.certPem]);
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) expect(wrong.reason).toMatch(/not signed by the trusted root|chain is broken/);
    // And a leaf from that other CA does not chain to the reference ROOTCA.
    const otherLeaf = makeWorkloadCert(foreign, 'spiffe://cluster.local/ns/a/sa/b');
    expect(verifyChainToRoots([otherLeaf], secrets.trustedCaPem).ok).toBe(false);
    expect(verifyChainToRoots([otherLeaf, foreign.certPem], [foreign.certPem]).ok).toBe(true);
    expect(verifyChainToRoots([], secrets.trustedCaPem)).toEqual({ ok: false, reason: 'no certificate in the chain' });
  });

  it('accepts the ?resource=dynamic_active_secrets form and inline_string', () => {
    const full = JSON.parse(dump) as { configs: [{ dynamic_active_secrets: object[] }] };
    const resourceForm = {
      configs: full.configs[0].dynamic_active_secrets.map((s) => ({
        '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret',
        ...s,
      })),
    };
    const secrets = parseSecretsConfigDump(JSON.stringify(resourceForm));
    expect(secrets.workloadChainPem).toHaveLength(2);
    expect(secrets.trustedCaPem).toHaveLength(1);
    const pem = secrets.trustedCaPem[0]!;
    const inline = parseSecretsConfigDump(
      JSON.stringify({
        configs: [
          {
            '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret',
            name: 'ROOTCA',
            secret: { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: pem } } },
          },
        ],
      }),
    );
    expect(inline.trustedCaPem).toEqual([pem]);
    expect(inline.workloadChainPem).toEqual([]);
  });

  it('rejects non-JSON and wrong shapes clearly', () => {
    expect(() => parseSecretsConfigDump('nope')).toThrow(EnvoyFormatError);
    expect(() => parseSecretsConfigDump('{}')).toThrow(/no "configs" array/);
    expect(() => parseCertsJson('{"x":1}')).toThrow(/no "certificates" array/);
  });

  it('reads /certs (uint64 as string, escaped <inline>, SAN objects)', () => {
    const contexts = parseCertsJson(ref('certs/certs.constructed.json'));
    expect(contexts).toHaveLength(2);
    const [first] = contexts;
    expect(first?.caCert[0]).toMatchObject({
      path: '<inline>',
      serialNumber: '0193a543fe2b0d9cd4847675394dfc54',
      uriSans: [],
      daysUntilExpiration: 3649,
    });
    expect(first?.certChain[0]?.uriSans).toEqual(['spiffe://cluster.local/ns/ambient/sa/namespace-istio-waypoint']);
    expect(first?.certChain[0]?.expirationTime?.toISOString()).toBe('2023-05-16T01:32:52.000Z');
    expect(first?.certChain[0]?.daysUntilExpiration).toBe(0);
  });

  it('parses SPIFFE ids and node SAN strings (quoted values included)', () => {
    expect(parseSpiffeId('spiffe://corp.example/ns/vm-ns/sa/vm-sa')).toEqual({
      trustDomain: 'corp.example',
      namespace: 'vm-ns',
      serviceAccount: 'vm-sa',
    });
    expect(parseSpiffeId('spiffe://corp.example/workload')).toBeUndefined();
    expect(parseSubjectAltName('URI:spiffe://a/ns/b/sa/c, DNS:x.example, URI:"spiffe://odd,name/ns/b/sa/c"')).toEqual([
      { type: 'URI', value: 'spiffe://a/ns/b/sa/c' },
      { type: 'DNS', value: 'x.example' },
      { type: 'URI', value: 'spiffe://odd,name/ns/b/sa/c' },
    ]);
  });
});
