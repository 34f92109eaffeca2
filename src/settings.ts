// One typed settings object made from the action's inputs (or the CLI's flags, which use the same
// names). Every input is validated here, once, with a message that names it; everything after this
// reads RunSettings, never the raw inputs. What needs more than the text (the SSH key parsed, the
// kubeconfig loaded, the groups looked up in the inventory, the package file) is checked by
// check-inputs.ts, still before the first connection.
import { isIP } from 'node:net';
import { checkDns1123Label, checkHost, checkLabelValue } from './inventory/names.js';
import { knownHostsProblems } from './vm/known-hosts.js';

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
    /**
     * The namespaces the inventory's groups may use (empty = any but the refused system ones). The
     * workflow's owner sets it, so whoever edits the inventory cannot steer the credentials elsewhere.
     */
    allowedNamespaces: string[];
    vmTimeoutSeconds: number;
  };
  peerAuthentication: PeerAuthenticationPolicy;
  verify: {
    /** Mode onboard: run the checks after onboarding (verify-after-onboard). Mode verify always runs them. */
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
  /** Inputs given that this mode does not read: not parsed, and named in a notice. */
  ignoredInputs: InputName[];
}

export const DEFAULT_SIDECAR_PACKAGE_URL =
  'https://storage.googleapis.com/istio-release/releases/{version}/{format}/istio-sidecar{arch-suffix}.{format}';
/**
 * The verification Job's image, pinned by digest (the multi-arch index of curlimages/curl:8.11.1; check with
 * `docker buildx imagetools inspect curlimages/curl:8.11.1`). ADR 0005 says where the digest came from.
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
  'allowed-namespaces': '',
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
  /** Deprecated name of verify-after-onboard (it read like `mode: verify`); honoured when that one is not set. */
  verify: '',
  /** '' = true; action.yml gives no default so that the deprecated `verify` can be told apart. */
  'verify-after-onboard': '',
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

/** One or more bad inputs; `problems` holds one message per bad input (each names its input). */
export class SettingsError extends Error {
  readonly problems: readonly { input: InputName; message: string }[];

  constructor(
    readonly input: InputName,
    detail: string,
  ) {
    super(`input '${input}': ${detail}`);
    this.name = 'SettingsError';
    this.problems = [{ input, message: this.message }];
  }

  /** One error for several bad inputs: its message lists each on its own line. */
  static combine(errors: readonly SettingsError[]): SettingsError {
    if (errors.length === 1) return errors[0]!;
    const problems = errors.flatMap((error) => error.problems);
    const combined = new SettingsError(problems[0]!.input, '');
    combined.message =
      `${problems.length} bad inputs:\n` + problems.map((problem) => `  ${problem.message}`).join('\n');
    (combined as { problems: SettingsError['problems'] }).problems = problems;
    return combined;
  }
}

export interface InputSource {
  /** The raw value of an input, '' when not given. */
  get(name: InputName): string;
}

const MODES: readonly Mode[] = ['onboard', 'verify', 'offboard', 'plan'];
const PEER_AUTH: readonly PeerAuthenticationPolicy[] = ['strict', 'permissive', 'unchanged'];
const SHA256_HEX = /^[0-9a-f]{64}$/;

const VERIFICATION_INPUTS: readonly InputName[] = [
  'verify-url',
  'verify-client-image',
  'verify-requests',
  'verify-ready-timeout',
  'certificate-min-validity',
];
const INSTALL_INPUTS: readonly InputName[] = ['token-lifetime', 'sidecar-package-url', 'sidecar-package-sha256'];

/**
 * The inputs a mode never reads (what src/rollout does in that mode): given anyway, they are not
 * parsed, and the run says they are ignored. plan logs in to the VMs to read their files, so the SSH
 * inputs are read in every mode.
 */
export const INPUTS_UNUSED_IN_MODE: Record<Mode, readonly InputName[]> = {
  onboard: [],
  // plan renders the files with an empty token and reports the package action without downloading it.
  plan: [...INSTALL_INPUTS, 'verify', 'verify-after-onboard', ...VERIFICATION_INPUTS],
  // verify installs nothing and always runs the checks; istio-version is the version it expects installed (drift).
  verify: [...INSTALL_INPUTS, 'verify', 'verify-after-onboard'],
  // offboard connects and removes: no mesh values, no package, no checks.
  offboard: [
    ...INSTALL_INPUTS,
    'sidecar-package-path',
    'istio-version',
    'verify',
    'verify-after-onboard',
    ...VERIFICATION_INPUTS,
    'cluster-id',
    'east-west-address',
    'dns-servers',
  ],
};

/** Whether an input was given: not empty and not its default (the runner passes the defaults of action.yml). */
function given(source: InputSource, name: InputName): boolean {
  const value = source.get(name).trim();
  return value !== '' && value !== INPUT_DEFAULTS[name];
}

export function readSettings(source: InputSource, env: NodeJS.ProcessEnv = {}): RunSettings {
  const errors: SettingsError[] = [];
  /** The value of `parse`, or `fallback` after noting its error (every input is checked, each error kept). */
  const check = <T>(parse: () => T, fallback: T): T => {
    try {
      return parse();
    } catch (error) {
      if (!(error instanceof SettingsError)) throw error;
      errors.push(error);
      return fallback;
    }
  };
  const mode = check(() => oneOf('mode', source.get('mode').trim() || INPUT_DEFAULTS.mode, MODES), 'onboard');
  const unused = new Set<InputName>(INPUTS_UNUSED_IN_MODE[mode]);
  // verify-after-onboard, or the deprecated verify when the new name is not set.
  const verifyName: InputName =
    source.get('verify-after-onboard').trim() === '' && source.get('verify').trim() !== ''
      ? 'verify'
      : 'verify-after-onboard';
  let verifyEnabled = false;
  if (!unused.has(verifyName)) {
    const enabled = check(() => bool(verifyName, source.get(verifyName).trim() || 'true'), true);
    verifyEnabled = enabled;
    if (mode === 'onboard' && !enabled) for (const name of VERIFICATION_INPUTS) unused.add(name);
    if (verifyName === 'verify-after-onboard' && source.get('verify').trim() !== '') {
      check(() => {
        if (bool('verify', source.get('verify').trim()) !== enabled) {
          throw new SettingsError(
            'verify',
            `is the deprecated name of verify-after-onboard, and the two disagree; remove verify`,
          );
        }
      }, undefined);
    }
  }
  const ignoredInputs = (Object.keys(INPUT_DEFAULTS) as InputName[]).filter(
    (name) => unused.has(name) && given(source, name),
  );
  /** The trimmed value, or the default; the default for an input this mode does not read. */
  const raw = (name: InputName): string => {
    const value = unused.has(name) ? '' : source.get(name).trim();
    return value === '' ? INPUT_DEFAULTS[name] : value;
  };

  const inventory = raw('inventory');
  if (inventory === '')
    errors.push(new SettingsError('inventory', 'is required: a path to the inventory file, or inline YAML'));

  const privateKey = source.get('ssh-private-key');
  if (mode !== 'plan' && privateKey.trim() === '') {
    errors.push(
      new SettingsError(
        'ssh-private-key',
        `is required in mode '${mode}': the private key (OpenSSH or PEM) that logs in to every VM`,
      ),
    );
  }
  const knownHosts = source.get('ssh-known-hosts');
  const trustOnFirstUse = check(() => bool('ssh-trust-on-first-use', raw('ssh-trust-on-first-use')), false);
  if (mode !== 'plan' && knownHosts.trim() === '' && !trustOnFirstUse) {
    errors.push(
      new SettingsError(
        'ssh-known-hosts',
        "is required: the VMs' host keys (e.g. the output of `ssh-keyscan`), or set " +
          'ssh-trust-on-first-use: true to learn them once',
      ),
    );
  }
  for (const problem of knownHostsProblems(knownHosts)) {
    errors.push(
      new SettingsError(
        'ssh-known-hosts',
        `line ${problem.line}: ${problem.message}; write known_hosts lines as \`ssh-keyscan\` ` +
          `prints them: HOSTS KEYTYPE BASE64KEY`,
      ),
    );
  }

  const reportPath = raw('report-path') || `${env.RUNNER_TEMP ?? env.TMPDIR ?? '/tmp'}/istio-vm-onboard-report.json`;
  const overrides: RunSettings['overrides'] = {};
  check(() => {
    const revision = optional(raw('revision'));
    if (revision !== undefined) overrides.revision = dns1123Label('revision', revision);
  }, undefined);
  check(() => {
    const clusterID = optional(raw('cluster-id'));
    if (clusterID !== undefined) overrides.clusterID = clusterId(clusterID);
  }, undefined);
  check(() => {
    const address = optional(raw('east-west-address'));
    if (address !== undefined) overrides.eastWestAddress = host('east-west-address', address);
  }, undefined);

  const settings: RunSettings = {
    mode,
    changedGroupsOnly: check(() => bool('changed-groups-only', raw('changed-groups-only')), false),
    inventory,
    kube: { kubeconfig: source.get('kubeconfig'), context: raw('context') },
    ssh: {
      privateKey,
      passphrase: source.get('ssh-private-key-passphrase'),
      knownHosts,
      trustOnFirstUse,
      connectTimeoutSeconds: check(() => int('ssh-connect-timeout', raw('ssh-connect-timeout'), 1, 600), 20),
    },
    sidecarPackage: {
      urlTemplate: check(() => urlTemplate(raw('sidecar-package-url')), DEFAULT_SIDECAR_PACKAGE_URL),
      sha256: check(() => parseSha256(raw('sidecar-package-sha256')), {}),
      uploadPath: raw('sidecar-package-path'),
    },
    istioVersion: check(() => version(raw('istio-version')), ''),
    rollout: {
      concurrency: check(() => int('concurrency', raw('concurrency'), 1, 1000), 10),
      maxUnavailable: check(() => share('max-unavailable', raw('max-unavailable')), { kind: 'percent', value: 25 }),
      failureBudget: check(() => share('failure-budget', raw('failure-budget'), true), { kind: 'percent', value: 50 }),
      ...check(() => {
        const parsed = shard(raw('shard'));
        return parsed ? { shard: parsed } : {};
      }, {}),
      groups: list(raw('groups')),
      allowedNamespaces: check(
        () => list(raw('allowed-namespaces')).map((ns) => dns1123Label('allowed-namespaces', ns)),
        [],
      ),
      vmTimeoutSeconds: check(() => int('vm-timeout', raw('vm-timeout'), 10, 86400), 600),
    },
    peerAuthentication: check(
      () => oneOf('peer-authentication', raw('peer-authentication'), PEER_AUTH),
      'unchanged' as PeerAuthenticationPolicy,
    ),
    verify: {
      enabled: verifyEnabled,
      url: check(() => url('verify-url', raw('verify-url')), ''),
      clientImage: check(() => imageReference(raw('verify-client-image')), DEFAULT_VERIFY_CLIENT_IMAGE),
      requests: check(() => int('verify-requests', raw('verify-requests'), 1, 100), 3),
      readyTimeoutSeconds: check(() => int('verify-ready-timeout', raw('verify-ready-timeout'), 5, 900), 30),
      certificateMinValidityMinutes: check(
        () => int('certificate-min-validity', raw('certificate-min-validity'), 0, 525600),
        60,
      ),
    },
    tokenLifetimeSeconds: check(() => int('token-lifetime', raw('token-lifetime'), 600, 86400 * 7), 3600),
    dnsServers: check(() => dnsServers(raw('dns-servers')), []),
    overrides,
    reportPath,
    ignoredInputs,
  };
  if (errors.length > 0) throw SettingsError.combine(errors);
  return settings;
}

/** The line a run prints for each input its mode does not read. */
export function ignoredInputNotices(settings: Pick<RunSettings, 'mode' | 'ignoredInputs'>): string[] {
  return settings.ignoredInputs.map((name) =>
    settings.mode === 'onboard'
      ? `input '${name}' is ignored: verify-after-onboard is false, so no checks run`
      : `input '${name}' is ignored in mode '${settings.mode}' (that mode does not use it)`,
  );
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

/** The placeholders sidecar-package-url may contain, with a sample value each. */
const URL_TEMPLATE_SAMPLES: Record<string, string> = {
  '{version}': '1.24.0',
  '{format}': 'deb',
  '{arch}': 'amd64',
  '{arch-suffix}': '-arm64',
};

function urlTemplate(value: string): string {
  const good = `a http(s) URL, optionally with ${Object.keys(URL_TEMPLATE_SAMPLES).join(', ')}`;
  for (const placeholder of value.match(/\{[^}]*\}?/g) ?? []) {
    if (!(placeholder in URL_TEMPLATE_SAMPLES)) {
      throw new SettingsError('sidecar-package-url', `has an unknown placeholder '${placeholder}'; expected ${good}`);
    }
  }
  let expanded = value;
  for (const [placeholder, sample] of Object.entries(URL_TEMPLATE_SAMPLES))
    expanded = expanded.replaceAll(placeholder, sample);
  try {
    const parsed = new URL(expanded);
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '')
      throw new Error('scheme');
  } catch {
    throw new SettingsError('sidecar-package-url', `must be ${good}; got '${value}'`);
  }
  return value;
}

function dns1123Label(input: InputName, value: string): string {
  const problem = checkDns1123Label(value);
  if (problem) throw new SettingsError(input, `${problem}; got '${value}'`);
  return value;
}

/**
 * Istio puts the cluster ID into the topology.istio.io/cluster label
 * (pilot/pkg/serviceregistry/util/label/label.go).
 */
function clusterId(value: string): string {
  if (checkLabelValue(value)) {
    throw new SettingsError(
      'cluster-id',
      `must be a Kubernetes label value (at most 63 letters, digits, '-', '_' and '.', starting and ` +
        `ending with a letter or digit, e.g. cluster1); got '${value}'`,
    );
  }
  return value;
}

function host(input: InputName, value: string): string {
  const problem = checkHost(value);
  if (problem)
    throw new SettingsError(input, `${problem}; write an IP address (10.0.0.5) or a DNS name (gw.example.com)`);
  return value;
}

/** Resolvers as node:dns setServers takes them: IP, IPv4:port or [IPv6]:port. */
function dnsServers(value: string): string[] {
  const servers = list(value);
  for (const server of servers) {
    const match = /^\[([^\]]+)\]:(\d+)$/.exec(server) ?? /^([^:]+):(\d+)$/.exec(server);
    const address = match ? match[1]! : server;
    const port = match ? Number(match[2]) : 53;
    if (isIP(address) === 0 || port < 1 || port > 65535) {
      throw new SettingsError(
        'dns-servers',
        `'${server}' is not a DNS server address: write IP, IPv4:port or [IPv6]:port, separated by ` +
          `commas (e.g. 10.0.0.2, 127.0.0.1:5353)`,
      );
    }
  }
  return servers;
}

/** An image reference as `docker pull` takes it: [registry[:port]/]path[:tag][@sha256:digest]. */
const IMAGE_REFERENCE =
  /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/;

function imageReference(value: string): string {
  if (!IMAGE_REFERENCE.test(value)) {
    throw new SettingsError(
      'verify-client-image',
      `must be an image reference like registry.example.com/curl:8.11.1 (lowercase path, optional ` +
        `tag or @sha256: digest); got '${value}'`,
    );
  }
  return value;
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
