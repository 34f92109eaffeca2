// One typed settings object made from the action's inputs (or the CLI's flags, which use the same
// names). Every input is validated here, once, with a message that names it; everything after this
// reads RunSettings, never the raw inputs.

export type Mode = 'onboard' | 'verify' | 'offboard' | 'plan';
export type PeerAuthenticationPolicy = 'strict' | 'permissive' | 'unchanged';
export type PackageFormat = 'deb' | 'rpm';

/** A share of something: an absolute count or a percentage of a total. */
export type Share = { kind: 'count'; value: number } | { kind: 'percent'; value: number };

export interface RunSettings {
  mode: Mode;
  /** On a push, act only on the groups the push changed in the inventory file. */
  changedGroupsOnly: boolean;
  /** Path of the inventory file, or inline YAML/JSON. */
  inventory: string;
  kube: {
    /** kubeconfig content (YAML, or base64 of it); empty = KUBECONFIG / in-cluster. */
    kubeconfig: string;
    context: string;
  };
  ssh: {
    privateKey: string;
    passphrase: string;
    /** OpenSSH known_hosts text pinning every VM's (and bastion's) host key. */
    knownHosts: string;
    /** Accept unknown host keys and report them (never a changed one). */
    trustOnFirstUse: boolean;
    connectTimeoutSeconds: number;
  };
  sidecarPackage: {
    /** URL template with {version}, {format}, {arch} and {arch-suffix}. */
    urlTemplate: string;
    /** Expected sha256 by architecture; `*` applies to any. */
    sha256: Record<string, string>;
    /** Local package file uploaded from the runner instead of downloaded by the VM. */
    uploadPath: string;
  };
  /** Istio version for the package; empty = the version of istiod found on the cluster. */
  istioVersion: string;
  rollout: {
    concurrency: number;
    maxUnavailable: Share;
    failureBudget: Share;
    shard?: { index: number; count: number };
    /** Only these groups (empty = all). */
    groups: string[];
    vmTimeoutSeconds: number;
  };
  peerAuthentication: PeerAuthenticationPolicy;
  verify: {
    enabled: boolean;
    /** URL a VM calls to prove VM→mesh traffic; empty = istiod's version endpoint through the mesh. */
    url: string;
    clientImage: string;
    requests: number;
    /** How long a (re)started sidecar may take to answer /healthz/ready with 200. */
    readyTimeoutSeconds: number;
    certificateMinValidityMinutes: number;
  };
  tokenLifetimeSeconds: number;
  /** Resolvers for a load balancer hostname (host or host:port); empty = the system's. */
  dnsServers: string[];
  overrides: {
    revision?: string;
    clusterID?: string;
    eastWestAddress?: string;
  };
  reportPath: string;
}

export const DEFAULT_SIDECAR_PACKAGE_URL =
  'https://storage.googleapis.com/istio-release/releases/{version}/{format}/istio-sidecar{arch-suffix}.{format}';
/**
 * The verification Job's image, pinned by digest (the multi-arch index of curlimages/curl:8.11.1; check with
 * `docker buildx imagetools inspect curlimages/curl:8.11.1`). ADR 0004 says where the digest came from.
 */
export const DEFAULT_VERIFY_CLIENT_IMAGE =
  'curlimages/curl:8.11.1@sha256:c1fe1679c34d9784c1b0d1e5f62ac0a79fca01fb6377cdd33e90473c6f9f9a69';

/** Every input the action declares, with its default (kept in step with action.yml by a test). */
export const INPUT_DEFAULTS = {
  inventory: '',
  kubeconfig: '',
  context: '',
  'ssh-private-key': '',
  'ssh-private-key-passphrase': '',
  'ssh-known-hosts': '',
  'ssh-trust-on-first-use': 'false',
  'ssh-connect-timeout': '20',
  mode: 'onboard',
  groups: '',
  'changed-groups-only': 'false',
  'istio-version': '',
  'sidecar-package-url': DEFAULT_SIDECAR_PACKAGE_URL,
  'sidecar-package-sha256': '',
  'sidecar-package-path': '',
  concurrency: '10',
  'max-unavailable': '25%',
  'failure-budget': '50%',
  'vm-timeout': '600',
  shard: '',
  'peer-authentication': 'unchanged',
  verify: 'true',
  'verify-url': '',
  'verify-client-image': DEFAULT_VERIFY_CLIENT_IMAGE,
  'verify-requests': '3',
  'verify-ready-timeout': '30',
  'certificate-min-validity': '60',
  'token-lifetime': '3600',
  'dns-servers': '',
  revision: '',
  'cluster-id': '',
  'east-west-address': '',
  'report-path': '',
} as const;

export type InputName = keyof typeof INPUT_DEFAULTS;

/** Inputs whose values are secrets: masked before anything can print them. */
export const SECRET_INPUTS: readonly InputName[] = ['kubeconfig', 'ssh-private-key', 'ssh-private-key-passphrase'];

export class SettingsError extends Error {
  constructor(
    readonly input: InputName,
    detail: string,
  ) {
    super(`input '${input}': ${detail}`);
    this.name = 'SettingsError';
  }
}

export interface InputSource {
  /** The raw value of an input, '' when not given. */
  get(name: InputName): string;
}

const MODES: readonly Mode[] = ['onboard', 'verify', 'offboard', 'plan'];
const PEER_AUTH: readonly PeerAuthenticationPolicy[] = ['strict', 'permissive', 'unchanged'];
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function readSettings(source: InputSource, env: NodeJS.ProcessEnv = {}): RunSettings {
  const raw = (name: InputName): string => {
    const value = source.get(name).trim();
    return value === '' ? INPUT_DEFAULTS[name] : value;
  };
  const mode = oneOf('mode', raw('mode'), MODES);
  const inventory = raw('inventory');
  if (inventory === '')
    throw new SettingsError('inventory', 'is required: a path to the inventory file, or inline YAML');

  const privateKey = source.get('ssh-private-key');
  if (mode !== 'plan' && privateKey.trim() === '') {
    throw new SettingsError('ssh-private-key', `is required in mode '${mode}' (the key that logs in to every VM)`);
  }
  if (privateKey.trim() !== '' && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) {
    throw new SettingsError(
      'ssh-private-key',
      'is not a PEM/OpenSSH private key (expected a -----BEGIN … PRIVATE KEY----- block)',
    );
  }
  const knownHosts = source.get('ssh-known-hosts');
  const trustOnFirstUse = bool('ssh-trust-on-first-use', raw('ssh-trust-on-first-use'));
  if (mode !== 'plan' && knownHosts.trim() === '' && !trustOnFirstUse) {
    throw new SettingsError(
      'ssh-known-hosts',
      "is required: the VMs' host keys (e.g. the output of `ssh-keyscan`), or set ssh-trust-on-first-use: true to learn them once",
    );
  }

  const sha256 = parseSha256(raw('sidecar-package-sha256'));
  const urlTemplate = raw('sidecar-package-url');
  if (!/^https?:\/\//.test(urlTemplate)) {
    throw new SettingsError('sidecar-package-url', `must be an http(s) URL template, got '${urlTemplate}'`);
  }

  const reportPath = raw('report-path') || `${env.RUNNER_TEMP ?? env.TMPDIR ?? '/tmp'}/istio-vm-onboard-report.json`;

  return {
    mode,
    changedGroupsOnly: bool('changed-groups-only', raw('changed-groups-only')),
    inventory,
    kube: { kubeconfig: source.get('kubeconfig'), context: raw('context') },
    ssh: {
      privateKey,
      passphrase: source.get('ssh-private-key-passphrase'),
      knownHosts,
      trustOnFirstUse,
      connectTimeoutSeconds: int('ssh-connect-timeout', raw('ssh-connect-timeout'), 1, 600),
    },
    sidecarPackage: { urlTemplate, sha256, uploadPath: raw('sidecar-package-path') },
    istioVersion: version(raw('istio-version')),
    rollout: {
      concurrency: int('concurrency', raw('concurrency'), 1, 1000),
      maxUnavailable: share('max-unavailable', raw('max-unavailable')),
      failureBudget: share('failure-budget', raw('failure-budget'), true),
      shard: shard(raw('shard')),
      groups: list(raw('groups')),
      vmTimeoutSeconds: int('vm-timeout', raw('vm-timeout'), 10, 86400),
    },
    peerAuthentication: oneOf('peer-authentication', raw('peer-authentication'), PEER_AUTH),
    verify: {
      enabled: bool('verify', raw('verify')),
      url: url('verify-url', raw('verify-url')),
      clientImage: raw('verify-client-image'),
      requests: int('verify-requests', raw('verify-requests'), 1, 100),
      readyTimeoutSeconds: int('verify-ready-timeout', raw('verify-ready-timeout'), 5, 900),
      certificateMinValidityMinutes: int('certificate-min-validity', raw('certificate-min-validity'), 0, 525600),
    },
    tokenLifetimeSeconds: int('token-lifetime', raw('token-lifetime'), 600, 86400 * 7),
    dnsServers: list(raw('dns-servers')),
    overrides: {
      revision: optional(raw('revision')),
      clusterID: optional(raw('cluster-id')),
      eastWestAddress: optional(raw('east-west-address')),
    },
    reportPath,
  };
}

/** How many of `total` a share allows, at least `minimum`. */
export function resolveShare(value: Share, total: number, minimum = 1): number {
  const count = value.kind === 'count' ? value.value : Math.ceil((total * value.value) / 100);
  return Math.max(minimum, Math.min(total, count));
}

function oneOf<T extends string>(input: InputName, value: string, allowed: readonly T[]): T {
  const lower = value.toLowerCase();
  if (!(allowed as readonly string[]).includes(lower)) {
    throw new SettingsError(input, `must be one of ${allowed.join(', ')}; got '${value}'`);
  }
  return lower as T;
}

function bool(input: InputName, value: string): boolean {
  // The YAML 1.2 core schema booleans, as @actions/core's getBooleanInput accepts them.
  if (['true', 'True', 'TRUE'].includes(value)) return true;
  if (['false', 'False', 'FALSE'].includes(value)) return false;
  throw new SettingsError(input, `must be true or false; got '${value}'`);
}

function int(input: InputName, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new SettingsError(input, `must be a whole number; got '${value}'`);
  const parsed = Number(value);
  if (parsed < min || parsed > max) throw new SettingsError(input, `must be between ${min} and ${max}; got ${parsed}`);
  return parsed;
}

function share(input: InputName, value: string, allowZero = false): Share {
  const match = /^(\d+)(%?)$/.exec(value);
  if (!match) throw new SettingsError(input, `must be a count (e.g. 2) or a percentage (e.g. 25%); got '${value}'`);
  const amount = Number(match[1]);
  if (match[2] === '%') {
    if (amount > 100 || (!allowZero && amount === 0)) {
      throw new SettingsError(input, `percentage must be ${allowZero ? '0' : '1'}–100%; got '${value}'`);
    }
    return { kind: 'percent', value: amount };
  }
  if (!allowZero && amount === 0) throw new SettingsError(input, 'must be at least 1');
  return { kind: 'count', value: amount };
}

function shard(value: string): RunSettings['rollout']['shard'] {
  if (value === '') return undefined;
  const match = /^(\d+)\/(\d+)$/.exec(value);
  if (!match) throw new SettingsError('shard', `must look like i/n with 1 ≤ i ≤ n (e.g. 2/4); got '${value}'`);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || index < 1 || index > count) {
    throw new SettingsError('shard', `must look like i/n with 1 ≤ i ≤ n (e.g. 2/4); got '${value}'`);
  }
  return { index, count };
}

function parseSha256(value: string): Record<string, string> {
  const result: Record<string, string> = {};
  if (value === '') return result;
  for (const part of list(value)) {
    const [maybeArch, maybeHash] = part.includes(':') ? part.split(':', 2) : ['*', part];
    const arch = (maybeArch ?? '').trim();
    const hash = (maybeHash ?? '').trim().toLowerCase();
    if (!SHA256_HEX.test(hash)) {
      throw new SettingsError(
        'sidecar-package-sha256',
        `'${part}' is not a sha256 (64 hex digits), optionally prefixed by an arch as amd64:HEX`,
      );
    }
    if (!['*', 'amd64', 'arm64'].includes(arch)) {
      throw new SettingsError('sidecar-package-sha256', `unknown architecture '${arch}' (use amd64 or arm64)`);
    }
    result[arch] = hash;
  }
  return result;
}

function version(value: string): string {
  if (value === '') return '';
  const trimmed = value.replace(/^v/, '');
  if (!/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(trimmed)) {
    throw new SettingsError('istio-version', `must be an Istio release like 1.24.0; got '${value}'`);
  }
  return trimmed;
}

function url(input: InputName, value: string): string {
  if (value === '') return '';
  try {
    const parsed = new URL(value);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
    return value;
  } catch {
    throw new SettingsError(input, `must be an http(s) URL; got '${value}'`);
  }
}

function list(value: string): string[] {
  return value
    .split(/[,\n]/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function optional(value: string): string | undefined {
  return value === '' ? undefined : value;
}

/** Expands the package URL template for one VM. */
export function packageUrlFor(template: string, version: string, format: PackageFormat, arch: string): string {
  return template
    .replaceAll('{version}', version)
    .replaceAll('{format}', format)
    .replaceAll('{arch}', arch)
    .replaceAll('{arch-suffix}', arch === 'amd64' ? '' : `-${arch}`);
}
