// Round trip 1 (inspect-user.sh, then inspect.sh as root): what is this VM? Everything the rollout
// must know before changing anything, in one script: sudo, OS, package manager, arch, init, disk,
// tools, installed sidecar, hashes of the managed files (never the token's content), the managed hosts
// block, 15012 reachability from the VM, the VM's source address towards the gateway, the lock and a
// FAILED marker.
//
// The 15012 probe runs as the istio-proxy user when it exists: on a VM already onboarded, the running
// sidecar's outbound capture (istio-iptables: nat OUTPUT → Envoy's 15001) takes every TCP connection
// except those of the proxy's uid/gid (`-m owner --uid-owner/--gid-owner … -j RETURN`), so a probe as
// root would be answered by Envoy and a blocked 15012 would read as reachable.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { PROVISIONED_CERT_PATHS } from '../../verify/provisioned-certificate.js';
import { ISTIO_PATHS, MANAGED_FILES, ONBOARD_PATHS, type ManagedFileKey } from '../paths.js';
import type { VmSession } from '../session.js';
import { ISTIO_PROXY_USER } from './common.js';
import { HOSTS_FUNCTIONS } from './hosts-block.js';
import { managedFilesPart } from './managed-files.js';
import { asRoot, composeScript, runScript, VmScriptError, type ScriptOutput, type ShellPart } from './protocol.js';

export type VmArch = 'amd64' | 'arm64';
export type PackageFormat = 'deb' | 'rpm';

export interface PreflightProblem {
  code:
    | 'sudo'
    | 'unsupported-arch'
    | 'no-package-manager'
    | 'package-format'
    | 'no-systemd'
    | 'disk-low'
    | 'missing-tool'
    | 'east-west-unreachable'
    | 'no-route-source'
    | 'locked';
  severity: 'error' | 'warning';
  message: string;
  hint: string;
}

export interface VmFacts {
  target: string;
  /** Remote login user (`id -un`). */
  user: string;
  sudo: { ok: boolean; detail?: string };
  os: {
    id: string;
    idLike: string[];
    versionId: string;
    prettyName: string;
    family: 'debian' | 'rhel' | 'suse' | 'other';
  };
  /** `uname -m`. */
  machine: string;
  /** Istio's package arch for `machine`; null = no Istio package exists for it (istio#41595). */
  arch: VmArch | null;
  /** From the tools present: dpkg first, then rpm. */
  packageFormat: PackageFormat | null;
  init: 'systemd' | 'none';
  tools: string[];
  /** Available KiB on / and /var/lib (df -Pk), null when unknown. */
  diskFreeKiB: { root: number | null; varLib: number | null };
  sidecar: {
    /** Installed istio-sidecar version, null when not installed. */
    installedVersion: string | null;
    /** sha256 of the package file we installed last (kept on the VM for rollback). */
    packageSha256: string | null;
    /** `systemctl is-active istio`. */
    unitState: string | null;
    /**
     * CA_ADDR of the VM's cluster.env, unquoted (`istiod-canary.istio-system.svc:15012`): the istiod its sidecar
     * dials; null when cluster.env is absent or sets none (istio-start.sh then uses istiod.istio-system.svc:15012).
     */
    caAddress: string | null;
  };
  /** sha256 of each managed file on the VM, null when absent (the token: hash only). */
  fileHashes: Record<ManagedFileKey | 'runtimeToken', string | null>;
  /** The lines of our /etc/hosts block, null when there is none. */
  hostsBlock: string | null;
  eastWest: {
    address: string;
    port: number;
    reachable: boolean | null;
    detail: string;
    /** Who ran the probe: `istio-proxy (setpriv|runuser|sudo)`, `root`, or `root: cannot switch to istio-proxy`. */
    probedAs?: string;
  };
  /** The VM's source address on its route to the east-west address (istio#32462/#35343), null if none usable. */
  routeSourceIP: string | null;
  routeDetail: string;
  lockHeld: boolean | null;
  /** Content of /var/lib/istio-vm-onboard/FAILED when a failed first install was left marked. */
  failedMarker: string | null;
  /**
   * /etc/certs/cert-chain.pem, the certificate pilot-agent renews with (src/verify/provisioned-certificate.ts),
   * read as the proxy user; null when absent or unreadable.
   */
  provisionedCertificate: string | null;
  /** The VM's clock (epoch ms, whole seconds) when it was inspected; null when unknown. */
  clockMs: number | null;
  /** Current content of the non-secret managed files, when asked for (for `plan` diffs). */
  contents?: { clusterEnv: string | null; meshConfig: string | null; rootCert: string | null };
  problems: PreflightProblem[];
}

export interface InspectOptions {
  /** The east-west gateway address (IP or DNS name) the sidecar will use for 15012. */
  eastWestAddress: string;
  discoveryPort?: number;
  /** Also return the non-secret managed files' content. */
  withContents?: boolean;
  /** The package format the run will install (a mismatch with the VM is a problem). */
  packageFormat?: PackageFormat;
  /** The VM will download the package itself (needs curl or wget). */
  downloads?: boolean;
  /** Free space wanted on /var/lib; default 150 MiB. */
  minFreeMiB?: number;
  /** The inventory has no internalIP for this VM, so the route source must be usable. */
  needsRouteSource?: boolean;
  /** The user the sidecar runs as, whose traffic its capture spares; default istio-proxy. */
  proxyUser?: string;
  timeoutMs?: number;
}

const REACH_TIMEOUT_SECONDS = 3;

export { ISTIO_PROXY_USER };

const INSPECT_USER = readFileSync(new URL('./inspect-user.sh', import.meta.url), 'utf8');
const INSPECT = readFileSync(new URL('./inspect.sh', import.meta.url), 'utf8');
const PROBE_AS_PROXY = readFileSync(new URL('./probe-as-proxy.sh', import.meta.url), 'utf8');

/**
 * The functions (root part) that run the 15012 probe outside the sidecar's traffic capture, as
 * `proxyUser` when that user exists (probe-as-proxy.sh): `ivo_probe_as_choose` picks the way and emits
 * `ew.as`, `ivo_probe_as CMD…` runs CMD from / as that user.
 */
export function probeAsProxyPart(proxyUser: string): ShellPart {
  return { values: { IVO_PROXY_USER: proxyUser }, text: PROBE_AS_PROXY };
}

export function inspectScript(options: InspectOptions): string {
  const contentFiles = options.withContents
    ? MANAGED_FILES.filter((file) => !file.secret && file.key !== 'dropIn').map((file) => `${file.key} ${file.path}`)
    : [];
  const root = composeScript(
    HOSTS_FUNCTIONS,
    managedFilesPart(),
    probeAsProxyPart(options.proxyUser ?? ISTIO_PROXY_USER),
    {
      values: {
        IVO_PACKAGE_NAME: ISTIO_PATHS.packageName,
        IVO_PACKAGE_DIR: ONBOARD_PATHS.packageDir,
        IVO_UNIT: ISTIO_PATHS.unitName,
        IVO_RUNTIME_TOKEN: ISTIO_PATHS.runtimeToken,
        IVO_HOSTS: ISTIO_PATHS.hosts,
        IVO_FAILED_MARKER: ONBOARD_PATHS.failedMarker,
        IVO_LOCK_FILE: ONBOARD_PATHS.lockFile,
        IVO_EW_HOST: options.eastWestAddress,
        IVO_EW_PORT: options.discoveryPort ?? 15012,
        IVO_EW_IS_IP: isIP(options.eastWestAddress) !== 0 ? 1 : 0,
        IVO_REACH_TIMEOUT: REACH_TIMEOUT_SECONDS,
        IVO_CONTENT_FILES: contentFiles.join('\n'),
        IVO_PROV_CHAIN: PROVISIONED_CERT_PATHS.certChain,
      },
      text: INSPECT,
    },
  );
  return asRoot(root, { text: INSPECT_USER });
}

/** Round trip 1. Never throws for what it finds (see `problems`); throws on transport or protocol failures. */
export async function inspectVm(session: VmSession, options: InspectOptions): Promise<VmFacts> {
  let output: ScriptOutput | undefined;
  let sudoFailure: VmScriptError | undefined;
  try {
    output = await runScript(session, inspectScript(options), {
      what: 'inspect',
      timeoutMs: options.timeoutMs ?? 60_000,
    });
  } catch (error) {
    if (!(error instanceof VmScriptError) || error.code !== 'sudo') throw error;
    sudoFailure = error;
  }
  if (!output) {
    // sudo failed: keep what the user part printed (OS, arch, tools); the root facts stay unknown.
    return factsWithoutRoot(session.target, options, sudoFailure!);
  }
  if (output.get('done') !== 'yes') {
    throw new VmScriptError(
      session.target,
      'inspect',
      `inspect on ${session.target} did not complete (no end marker in its output)`,
    );
  }
  return parseFacts(session.target, output, options);
}

function factsWithoutRoot(target: string, options: InspectOptions, failure: VmScriptError): VmFacts {
  const facts = failure.output ? parseFacts(target, failure.output, options) : emptyFacts(target, options);
  facts.sudo = { ok: false, detail: failure.message };
  facts.problems = [];
  facts.problems.push({ code: 'sudo', severity: 'error', message: failure.message, hint: failure.hint ?? '' });
  return facts;
}

function emptyFacts(target: string, options: InspectOptions): VmFacts {
  return {
    target,
    user: '',
    sudo: { ok: true },
    os: { id: '', idLike: [], versionId: '', prettyName: '', family: 'other' },
    machine: '',
    arch: null,
    packageFormat: null,
    init: 'none',
    tools: [],
    diskFreeKiB: { root: null, varLib: null },
    sidecar: { installedVersion: null, packageSha256: null, unitState: null, caAddress: null },
    fileHashes: { rootCert: null, clusterEnv: null, meshConfig: null, token: null, dropIn: null, runtimeToken: null },
    hostsBlock: null,
    eastWest: { address: options.eastWestAddress, port: options.discoveryPort ?? 15012, reachable: null, detail: '' },
    routeSourceIP: null,
    routeDetail: '',
    lockHeld: null,
    failedMarker: null,
    provisionedCertificate: null,
    clockMs: null,
    problems: [],
  };
}

/** Maps `uname -m` to Istio's package architectures. */
export function archFromMachine(machine: string): VmArch | null {
  if (machine === 'x86_64' || machine === 'amd64') return 'amd64';
  if (machine === 'aarch64' || machine === 'arm64' || machine === 'armv8l') return 'arm64';
  return null;
}

export function parseOsRelease(text: string): VmFacts['os'] {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    let value = match[2] ?? '';
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    }
    values[match[1]!] = value;
  }
  const id = values.ID ?? '';
  const idLike = (values.ID_LIKE ?? '').split(/\s+/).filter(Boolean);
  const all = [id, ...idLike];
  const family = all.some((name) => name === 'debian' || name === 'ubuntu')
    ? 'debian'
    : all.some((name) => ['rhel', 'fedora', 'centos'].includes(name))
      ? 'rhel'
      : all.some((name) => name.startsWith('suse') || name === 'sles')
        ? 'suse'
        : 'other';
  return { id, idLike, versionId: values.VERSION_ID ?? '', prettyName: values.PRETTY_NAME ?? '', family };
}

/** `ip -o route get X` → the `src` address, refusing link-local and loopback ones. */
export function parseRouteSource(routeLine: string): { ip: string | null; detail: string } {
  const match = /\bsrc\s+(\S+)/.exec(routeLine);
  if (!match?.[1]) return { ip: null, detail: `no source address in "${routeLine.trim()}"` };
  const ip = match[1];
  if (isIP(ip) === 0) return { ip: null, detail: `"${ip}" is not an IP address` };
  if (/^169\.254\./.test(ip) || /^fe[89ab][0-9a-f]:/i.test(ip))
    return { ip: null, detail: `route source ${ip} is link-local` };
  if (/^127\./.test(ip) || ip === '::1')
    return { ip: null, detail: `route source ${ip} is loopback (the gateway address is local?)` };
  return { ip, detail: routeLine.trim() };
}

function parseFacts(target: string, output: ScriptOutput, options: InspectOptions): VmFacts {
  const facts = emptyFacts(target, options);
  facts.user = output.get('user') ?? '';
  facts.machine = output.get('uname') ?? '';
  facts.arch = archFromMachine(facts.machine);
  facts.os = parseOsRelease(output.get('os-release') ?? '');
  facts.tools = output.all('tool');
  const has = (tool: string): boolean => facts.tools.includes(tool);
  facts.packageFormat = has('dpkg-query') ? 'deb' : has('rpm') ? 'rpm' : null;
  facts.init = has('systemctl') ? 'systemd' : 'none';
  const kib = (value: string | undefined): number | null => (value && /^\d+$/.test(value) ? Number(value) : null);
  facts.diskFreeKiB = { root: kib(output.get('df.root')), varLib: kib(output.get('df.varlib')) };
  facts.sidecar = {
    installedVersion: output.get('pkg.version') || null,
    packageSha256: output.get('pkg.sha256') || null,
    unitState: output.get('unit.state') ?? null,
    caAddress: unquoteEnvValue(output.get('ca.addr') ?? '') || null,
  };
  for (const key of Object.keys(facts.fileHashes) as (keyof VmFacts['fileHashes'])[]) {
    const value = output.get(`file.${key}`);
    facts.fileHashes[key] = value && value !== '-' ? value : null;
  }
  // "$(…)" drops the block's final newline; the rendered block (istioctl's hosts file) has one.
  const block = output.get('hosts.block') ?? '';
  facts.hostsBlock = output.has('hosts.block') ? (block === '' || block.endsWith('\n') ? block : `${block}\n`) : null;
  facts.failedMarker = output.has('failed') ? (output.get('failed') ?? '').trim() : null;
  const lock = output.get('lock');
  facts.lockHeld = lock === 'held' ? true : lock === 'free' ? false : null;

  const rc = output.get('ew.rc');
  const detail = (output.get('ew.detail') ?? '').trim();
  const port = options.discoveryPort ?? 15012;
  const probedAs = output.get('ew.as');
  if (rc === undefined) {
    facts.eastWest = {
      address: options.eastWestAddress,
      port,
      reachable: null,
      detail: 'no bash+timeout or nc on the VM to test it',
    };
  } else {
    const reachable = rc === '0';
    const why =
      rc === '124'
        ? `no answer within ${REACH_TIMEOUT_SECONDS}s (dropped by a firewall?)`
        : /refused/i.test(detail)
          ? 'connection refused (nothing listens there, or a firewall rejects it)'
          : /unreachable/i.test(detail)
            ? 'no route to host'
            : detail
                .split('\n')
                .pop()
                ?.replace(/^ivo: (line \d+: )?/, '') || `exit ${rc}`;
    // As root while the proxy user exists, a running sidecar's capture may have answered for the gateway.
    const connected = probedAs?.startsWith('root: ')
      ? `connected as root (${probedAs.slice('root: '.length)}): ` +
        "a running sidecar's capture may have answered for the gateway"
      : 'connected';
    facts.eastWest = { address: options.eastWestAddress, port, reachable, detail: reachable ? connected : why };
  }
  if (probedAs !== undefined) facts.eastWest.probedAs = probedAs;
  const route = parseRouteSource(output.get('route') ?? '');
  facts.routeSourceIP = route.ip;
  facts.routeDetail = route.detail;
  facts.provisionedCertificate = output.get('prov.cert') || null;
  const clock = output.get('clock');
  facts.clockMs = clock && /^\d+$/.test(clock) ? Number(clock) * 1000 : null;
  if (options.withContents) {
    facts.contents = {
      clusterEnv: output.get('content.clusterEnv') ?? null,
      meshConfig: output.get('content.meshConfig') ?? null,
      rootCert: output.get('content.rootCert') ?? null,
    };
  }
  facts.problems = preflightProblems(facts, options);
  return facts;
}

/** A cluster.env value as istioctl writes it (`'…'`, sorted `K='V'` lines), without its single quotes. */
function unquoteEnvValue(value: string): string {
  const trimmed = value.trim();
  return trimmed.length >= 2 && trimmed.startsWith("'") && trimmed.endsWith("'") ? trimmed.slice(1, -1) : trimmed;
}

/** What stops (error) or should worry (warning) an onboarding of this VM. */
export function preflightProblems(facts: VmFacts, options: InspectOptions): PreflightProblem[] {
  const problems: PreflightProblem[] = [];
  const add = (
    code: PreflightProblem['code'],
    message: string,
    hint: string,
    severity: PreflightProblem['severity'] = 'error',
  ): void => {
    problems.push({ code, severity, message: `${facts.target}: ${message}`, hint });
  };
  if (!facts.arch) {
    add(
      'unsupported-arch',
      `architecture "${facts.machine || 'unknown'}" has no istio-sidecar package (Istio ships amd64 and arm64)`,
      'run the sidecar on an amd64 or arm64 VM (istio#41595)',
    );
  }
  if (!facts.packageFormat) {
    add(
      'no-package-manager',
      'neither dpkg nor rpm found',
      'the istio-sidecar package needs a dpkg- or rpm-based Linux',
    );
  } else if (options.packageFormat && options.packageFormat !== facts.packageFormat) {
    add(
      'package-format',
      `the VM uses ${facts.packageFormat} packages but a ${options.packageFormat} package was given`,
      `use the .${facts.packageFormat} package for this VM`,
    );
  }
  if (facts.init !== 'systemd') {
    add(
      'no-systemd',
      'systemctl not found: the istio unit cannot be managed',
      'the sidecar package ships a systemd unit (istio.service); use a systemd VM',
    );
  }
  const needed = ['tar', 'flock', 'sha256sum', 'base64', 'awk', 'install'];
  if (options.downloads) {
    if (!facts.tools.includes('curl') && !facts.tools.includes('wget')) {
      add(
        'missing-tool',
        'neither curl nor wget is installed to download the sidecar package',
        'install curl on the VM, or let the runner upload the package',
      );
    }
  }
  const missing = needed.filter((tool) => !facts.tools.includes(tool));
  if (missing.length > 0)
    add(
      'missing-tool',
      `missing commands: ${missing.join(', ')}`,
      'install coreutils, tar, util-linux (flock) and awk on the VM',
    );
  const minKiB = (options.minFreeMiB ?? 150) * 1024;
  const free = facts.diskFreeKiB.varLib ?? facts.diskFreeKiB.root;
  if (free !== null && free < minKiB) {
    add(
      'disk-low',
      `not enough disk space: only ${Math.floor(free / 1024)} MiB free on /var/lib ` +
        `(need ${Math.round(minKiB / 1024)} MiB for the package and files)`,
      'free disk space on the VM, then rerun',
    );
  }
  if (facts.eastWest.reachable === false) {
    add(
      'east-west-unreachable',
      `east-west gateway ${facts.eastWest.address}:${facts.eastWest.port} is not reachable from the VM: ` +
        `${facts.eastWest.detail}`,
      `open the path from the VM to ${facts.eastWest.address}:${facts.eastWest.port} ` +
        '(east-west gateway Service, security group / firewall)',
    );
  }
  if (options.needsRouteSource && !facts.routeSourceIP) {
    add(
      'no-route-source',
      `no usable source address towards ${facts.eastWest.address}: ${facts.routeDetail}`,
      'set internalIP for this VM in the inventory',
    );
  }
  if (facts.lockHeld) {
    add(
      'locked',
      'another istio-vm-onboard run holds the VM lock right now',
      'the apply will wait for it (up to 30 s) and then fail',
      'warning',
    );
  }
  return problems;
}

/** Throws one error listing every error-severity problem. */
export class VmPreflightError extends Error {
  constructor(
    readonly target: string,
    readonly problems: PreflightProblem[],
  ) {
    super(problems.map((problem) => problem.message).join('; '));
    this.name = 'VmPreflightError';
  }
  get hint(): string {
    return this.problems
      .map((problem) => problem.hint)
      .filter(Boolean)
      .join('; ');
  }
}

export function assertPreflight(facts: VmFacts): void {
  const errors = facts.problems.filter((problem) => problem.severity === 'error');
  if (errors.length > 0) throw new VmPreflightError(facts.target, errors);
}
