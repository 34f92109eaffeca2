import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import {
  ignoredInputNotices,
  INPUT_DEFAULTS,
  packageUrlFor,
  readSettings,
  resolveShare,
  SettingsError,
  type InputName,
} from '../../src/settings.js';

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n';
const base: Partial<Record<InputName, string>> = {
  inventory: 'inventory.yaml',
  'ssh-private-key': KEY,
  'ssh-known-hosts': '10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
};
const settingsFrom = (inputs: Partial<Record<InputName, string>>) =>
  readSettings({ get: (name) => ({ ...base, ...inputs })[name] ?? '' }, { RUNNER_TEMP: '/runner/tmp' });

describe('readSettings', () => {
  it('applies the documented defaults', () => {
    const settings = settingsFrom({});
    expect(settings.mode).toBe('onboard');
    expect(settings.rollout.concurrency).toBe(10);
    expect(settings.rollout.maxUnavailable).toEqual({ kind: 'percent', value: 25 });
    expect(settings.peerAuthentication).toBe('unchanged');
    expect(settings.verify.enabled).toBe(true);
    expect(settings.tokenLifetimeSeconds).toBe(3600);
    expect(settings.verify.readyTimeoutSeconds).toBe(30);
    expect(settings.reportPath).toBe('/runner/tmp/istio-vm-onboard-report.json');
  });

  it.each<[InputName, string, RegExp]>([
    ['mode', 'deploy', /input 'mode': must be one of onboard, verify, offboard, plan; got 'deploy'/],
    ['concurrency', '0', /input 'concurrency': must be between 1 and 1000/],
    ['concurrency', 'ten', /input 'concurrency': must be a whole number/],
    ['shard', '3/2', /input 'shard': must look like i\/n/],
    ['shard', 'a/b', /input 'shard'/],
    ['max-unavailable', '0', /input 'max-unavailable': must be at least 1/],
    ['max-unavailable', '120%', /input 'max-unavailable': percentage/],
    ['peer-authentication', 'mtls', /input 'peer-authentication'/],
    ['verify', 'yes', /input 'verify': must be true or false/],
    ['verify-url', 'ftp://x', /input 'verify-url': must be an http\(s\) URL/],
    ['sidecar-package-sha256', 'abc', /input 'sidecar-package-sha256'/],
    ['sidecar-package-sha256', `sparc:${'a'.repeat(64)}`, /unknown architecture 'sparc'/],
    ['istio-version', 'latest', /input 'istio-version'/],
    ['verify-after-onboard', 'yes', /input 'verify-after-onboard': must be true or false/],
    ['ssh-known-hosts', '10.0.0.1 ssh-ed25519', /input 'ssh-known-hosts': line 1: has fewer than three fields/],
    [
      'ssh-known-hosts',
      '# pinned\n10.0.0.1 ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
      /line 2: the line says ssh-rsa but the key is ssh-ed25519/,
    ],
    ['ssh-known-hosts', '10.0.0.1 ssh-ed25519 not-base64!', /line 1: the key of type ssh-ed25519 is not base64/],
    ['ssh-known-hosts', '@trusted 10.0.0.1 ssh-ed25519 AAAA', /line 1: unknown marker/],
    [
      'sidecar-package-url',
      'https://example.com/{versoin}/x.deb',
      /input 'sidecar-package-url': has an unknown placeholder '\{versoin\}'/,
    ],
    [
      'sidecar-package-url',
      'storage.example.com/{version}.deb',
      /input 'sidecar-package-url': must be a http\(s\) URL/,
    ],
    ['revision', 'Canary_1', /input 'revision': must be a DNS-1123 label/],
    ['cluster-id', 'cluster 1', /input 'cluster-id': must be a Kubernetes label value/],
    ['east-west-address', '10.0.0.300', /input 'east-west-address': '10.0.0.300' is not a valid IPv4 address/],
    [
      'east-west-address',
      'gw_1.example.com',
      /input 'east-west-address': .* is neither an IP address nor a DNS host name/,
    ],
    ['dns-servers', '10.0.0.2, dns.example.com', /input 'dns-servers': 'dns.example.com' is not a DNS server address/],
    ['dns-servers', '127.0.0.1:99999', /input 'dns-servers'/],
    ['verify-client-image', 'curlimages/Curl:8', /input 'verify-client-image': must be an image reference/],
    ['verify-client-image', 'curl image', /input 'verify-client-image'/],
    ['token-lifetime', '60', /input 'token-lifetime': must be between 600/],
    ['verify-ready-timeout', '2', /input 'verify-ready-timeout': must be between 5 and 900/],
  ])('rejects %s=%s with a message naming the input', (input, value, message) => {
    expect(() => settingsFrom({ [input]: value })).toThrow(SettingsError);
    expect(() => settingsFrom({ [input]: value })).toThrow(message);
  });

  it("accepts Istio's revision names, cluster IDs, addresses, resolvers and images", () => {
    const settings = settingsFrom({
      revision: '1-24-0',
      'cluster-id': 'Kubernetes',
      'east-west-address': 'gw.example.com',
      'dns-servers': '10.0.0.2, 127.0.0.1:5353, [fd00::2]:53, fd00::3',
      'verify-client-image': 'registry.example.com:5000/mirror/curl:8.11.1@sha256:' + 'a'.repeat(64),
    });
    expect(settings.overrides).toEqual({
      revision: '1-24-0',
      clusterID: 'Kubernetes',
      eastWestAddress: 'gw.example.com',
    });
    expect(settings.dnsServers).toEqual(['10.0.0.2', '127.0.0.1:5353', '[fd00::2]:53', 'fd00::3']);
  });

  it('reports every bad input at once, one line each', () => {
    expect(() => settingsFrom({ concurrency: 'ten', shard: '3/2', revision: 'A' })).toThrow(
      /^3 bad inputs:\n {2}input 'revision': .*\n {2}input 'concurrency': .*\n {2}input 'shard': /,
    );
    try {
      settingsFrom({ concurrency: 'ten', shard: '3/2' });
    } catch (error) {
      expect((error as SettingsError).problems.map((problem) => problem.input)).toEqual(['concurrency', 'shard']);
    }
  });

  it('reads verify-after-onboard, or the deprecated verify when it is not set', () => {
    expect(settingsFrom({}).verify.enabled).toBe(true);
    expect(settingsFrom({ 'verify-after-onboard': 'false' }).verify.enabled).toBe(false);
    expect(settingsFrom({ verify: 'false' }).verify.enabled).toBe(false);
    expect(settingsFrom({ verify: 'false', 'verify-after-onboard': 'false' }).verify.enabled).toBe(false);
    expect(() => settingsFrom({ verify: 'false', 'verify-after-onboard': 'true' })).toThrow(
      /input 'verify': is the deprecated name of verify-after-onboard, and the two disagree/,
    );
  });

  it('does not parse an input the mode does not use, and names it', () => {
    const plan = settingsFrom({ mode: 'plan', 'verify-requests': 'many', 'token-lifetime': '1', 'verify-url': '' });
    expect(plan.ignoredInputs).toEqual(['verify-requests', 'token-lifetime']);
    expect(ignoredInputNotices(plan)).toEqual([
      "input 'verify-requests' is ignored in mode 'plan' (that mode does not use it)",
      "input 'token-lifetime' is ignored in mode 'plan' (that mode does not use it)",
    ]);
    expect(plan.verify.enabled).toBe(false);
    // The runner passes action.yml's defaults: a default is not "given".
    expect(settingsFrom({ mode: 'verify', 'token-lifetime': '3600' }).ignoredInputs).toEqual([]);
    const offboard = settingsFrom({
      mode: 'offboard',
      'east-west-address': 'not an address',
      'sidecar-package-path': 'x.deb',
    });
    expect(offboard.ignoredInputs).toEqual(['sidecar-package-path', 'east-west-address']);
    expect(offboard.sidecarPackage.uploadPath).toBe('');
    expect(offboard.overrides).toEqual({});
    const noChecks = settingsFrom({ 'verify-after-onboard': 'false', 'verify-requests': '0' });
    expect(ignoredInputNotices(noChecks)).toEqual([
      "input 'verify-requests' is ignored: verify-after-onboard is false, so no checks run",
    ]);
    expect(() => settingsFrom({ mode: 'onboard', 'token-lifetime': '1' })).toThrow(/input 'token-lifetime'/);
  });

  it('requires an SSH key and known hosts except in plan mode', () => {
    expect(() => settingsFrom({ 'ssh-private-key': '' })).toThrow(/ssh-private-key': is required in mode 'onboard'/);
    expect(() => settingsFrom({ 'ssh-known-hosts': '' })).toThrow(/ssh-known-hosts': is required/);
    expect(settingsFrom({ 'ssh-known-hosts': '', 'ssh-trust-on-first-use': 'true' }).ssh.trustOnFirstUse).toBe(true);
    expect(settingsFrom({ mode: 'plan', 'ssh-private-key': '', 'ssh-known-hosts': '' }).mode).toBe('plan');
  });

  it('parses per-architecture checksums, shards and lists', () => {
    const settings = settingsFrom({
      'sidecar-package-sha256': `amd64:${'a'.repeat(64)}, arm64:${'B'.repeat(64)}`,
      shard: '2/4',
      groups: 'web, rabbitmq',
      'dns-servers': '127.0.0.1:5353',
    });
    expect(settings.sidecarPackage.sha256).toEqual({ amd64: 'a'.repeat(64), arm64: 'b'.repeat(64) });
    expect(settings.rollout.shard).toEqual({ index: 2, count: 4 });
    expect(settings.rollout.groups).toEqual(['web', 'rabbitmq']);
    expect(settings.dnsServers).toEqual(['127.0.0.1:5353']);
  });
});

describe('resolveShare', () => {
  it('rounds percentages up and keeps within bounds', () => {
    expect(resolveShare({ kind: 'percent', value: 25 }, 10)).toBe(3);
    expect(resolveShare({ kind: 'percent', value: 1 }, 3)).toBe(1);
    expect(resolveShare({ kind: 'count', value: 50 }, 4)).toBe(4);
    expect(resolveShare({ kind: 'percent', value: 0 }, 10, 0)).toBe(0);
  });
});

describe('packageUrlFor', () => {
  it("expands Istio's release URL pattern", () => {
    const template = INPUT_DEFAULTS['sidecar-package-url'];
    expect(packageUrlFor(template, '1.24.0', 'deb', 'amd64')).toBe(
      'https://storage.googleapis.com/istio-release/releases/1.24.0/deb/istio-sidecar.deb',
    );
    expect(packageUrlFor(template, '1.24.0', 'rpm', 'arm64')).toBe(
      'https://storage.googleapis.com/istio-release/releases/1.24.0/rpm/istio-sidecar-arm64.rpm',
    );
  });
});

describe('action.yml', () => {
  const action = parse(readFileSync('action.yml', 'utf8')) as {
    inputs: Record<string, { default?: string; description: string }>;
    outputs: Record<string, unknown>;
    runs: { using: string; main: string; post?: string; 'post-if'?: string };
  };
  it('declares exactly the inputs the settings read, with the same defaults', () => {
    expect(Object.keys(action.inputs).sort()).toEqual(Object.keys(INPUT_DEFAULTS).sort());
    for (const [name, value] of Object.entries(INPUT_DEFAULTS)) {
      expect([name, action.inputs[name]?.default ?? '']).toEqual([name, value]);
      expect(action.inputs[name]?.description.length).toBeGreaterThan(20);
    }
  });
  it('keeps the old verify input, deprecated in favour of verify-after-onboard', () => {
    const verify = action.inputs['verify'] as { deprecationMessage?: string } | undefined;
    expect(verify?.deprecationMessage).toMatch(/verify-after-onboard/);
  });
  it('runs the bundle on node24 and declares the outputs', () => {
    expect(action.runs).toEqual({
      using: 'node24',
      main: 'dist/index.js',
      post: 'dist/post.js',
      'post-if': 'always()',
    });
    expect(Object.keys(action.outputs).sort()).toEqual(['failed', 'onboarded', 'report-path', 'result']);
  });
});
