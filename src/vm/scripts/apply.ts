// Round trip 2: make the VM match the rendered files and package, under the VM lock (apply.sh). The
// files travel as one tar stream on stdin (with a manifest of sha256s, so a cut upload changes nothing);
// the VM downloads and verifies the package itself when it has a URL (or gets it in the same stream).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  BASELINE_PATHS,
  ISTIO_PATHS,
  MANAGED_FILES,
  managedFileContent,
  ONBOARD_PATHS,
  type ManagedFileKey,
} from '../paths.js';
import { PROVISIONED_CERT_PATHS } from '../../verify/provisioned-certificate.js';
import type { VmSession } from '../session.js';
import { createTar, type TarEntry } from '../tar.js';
import { changeFunctions } from './common.js';
import { HOSTS_FUNCTIONS, hostsBlockContent } from './hosts-block.js';
import { managedFilesPart, parentDir } from './managed-files.js';
import { asRoot, composeScript, runScript } from './protocol.js';

export interface VmChange {
  files: { clusterEnv: string; meshYaml: string; rootCert: string; token: string };
  /** Content of istioctl's `hosts` file (may be empty: then no block). */
  hostsEntries: string;
  package: {
    /** Where the VM downloads the package (needs sha256). */
    url?: string;
    sha256?: string;
    /** Version to have installed; the package is skipped when it is already installed. */
    version: string;
    format: 'deb' | 'rpm';
    /** The package itself, sent by the runner in the same stream (when the VM cannot download). */
    upload?: Buffer;
  };
  /** `if-changed` (default): restart only when a file (other than the token) or the package changed. */
  restartPolicy?: 'if-changed' | 'always';
  /**
   * Upper bound (seconds) for receiving the upload on the VM: a runner gone mid-upload over a connection sshd
   * still thinks open would otherwise keep the apply, and the VM's lock, waiting on stdin. 0: no bound.
   */
  uploadTimeoutSeconds?: number;
  /** Restart when only the bootstrap token changed; default false (a running sidecar keeps its certificate). */
  restartOnTokenChange?: boolean;
  /**
   * Re-bootstrap: remove the certificate and key pilot-agent renews with (/etc/certs, PROV_CERT) after placing
   * the fresh token, and restart the sidecar; for a VM whose certificate expired
   * (src/verify/provisioned-certificate.ts).
   */
  reBootstrap?: boolean;
  /**
   * The VM's SSH port: the apply refuses a cluster.env whose traffic capture would take it over
   * (ISTIO_INBOUND_PORTS '*' without the port in ISTIO_LOCAL_EXCLUDE_PORTS, istio#36870).
   */
  sshPort?: number;
  /** How long to wait for another run's lock; default 30 s. */
  lockWaitSeconds?: number;
  timeoutMs?: number;
}

export type AppliedFileKey = ManagedFileKey | 'hosts';

export interface VmApplyResult {
  /** Per managed file: changed or unchanged. */
  files: Record<AppliedFileKey, 'changed' | 'unchanged'>;
  package: {
    action: 'installed' | 'upgraded' | 'unchanged';
    /** Installed version after the apply. */
    version: string | null;
    /** Installed version before the apply. */
    previousVersion: string | null;
    /** Where a newly installed package came from. */
    source: 'download' | 'upload' | null;
  };
  /** What happened to the istio unit. `started`: nothing changed but it was not running. */
  service: 'restarted' | 'started' | 'unchanged';
  restarted: boolean;
  /** The provisioned certificate and key were removed (re-bootstrap). */
  reBootstrapped: boolean;
  /** Anything changed on the VM (files, hosts block or package). */
  changed: boolean;
  /** Id of the previous-state snapshot this apply made (null when nothing changed); rollbackVm can require it. */
  snapshotId: string | null;
  /** When this apply held the VM lock (VM clock, epoch seconds): two runs never overlap. */
  lock: { acquiredAt: number; releasedAt: number };
}

const FILE_KEYS: AppliedFileKey[] = [...MANAGED_FILES.map((file) => file.key), 'hosts'];

/**
 * The variables a cluster.env sets, read as the shell reads it (istio-start.sh sources it): quoted
 * values may span lines, `\<newline>` joins lines, `'"'"'` and `\'` are quotes. A line-based reader
 * could be fooled by a multi-line value into seeing an assignment the shell never makes.
 */
export function readClusterEnv(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  let i = 0;
  const n = text.length;
  const skipLine = (): void => {
    while (i < n && text[i] !== '\n') i++;
  };
  while (i < n) {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === ';')) i++;
    if (i >= n) break;
    if (text[i] === '#') {
      skipLine();
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*=/.exec(text.slice(i, i + 256));
    if (!name) {
      skipLine();
      continue;
    }
    i += name[0].length;
    let value = '';
    let ended = false;
    while (i < n && !ended) {
      const c = text[i]!;
      if (c === "'") {
        const close = text.indexOf("'", i + 1);
        const stop = close < 0 ? n : close;
        value += text.slice(i + 1, stop);
        i = stop + 1;
      } else if (c === '"') {
        i++;
        while (i < n && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < n && '$`"\\\n'.includes(text[i + 1]!)) {
            if (text[i + 1] !== '\n') value += text[i + 1];
            i += 2;
          } else value += text[i++];
        }
        i++;
      } else if (c === '\\') {
        if (i + 1 < n && text[i + 1] !== '\n') value += text[i + 1];
        i += 2;
      } else if (c === ' ' || c === '\t' || c === '\n' || c === ';') {
        ended = true;
      } else {
        value += c;
        i++;
      }
    }
    values[name[0].slice(0, -1)] = value;
  }
  return values;
}

/** Why this cluster.env would let the sidecar's inbound capture take the SSH port, or undefined. */
export function sshCaptureProblem(clusterEnv: string, sshPort: number): string | undefined {
  const env = readClusterEnv(clusterEnv);
  const inbound = (env.ISTIO_INBOUND_PORTS ?? '*').trim();
  const list = (value: string | undefined): string[] =>
    (value ?? '')
      .split(',')
      .map((port) => port.trim())
      .filter(Boolean);
  if (inbound === '*') {
    if (!list(env.ISTIO_LOCAL_EXCLUDE_PORTS).includes(String(sshPort))) {
      return (
        "cluster.env captures all inbound ports (ISTIO_INBOUND_PORTS='*') " +
        `but ISTIO_LOCAL_EXCLUDE_PORTS does not exclude the SSH port ${sshPort}: ` +
        'the sidecar would cut SSH to the VM (istio#36870)'
      );
    }
  } else if (list(inbound).includes(String(sshPort))) {
    return (
      `cluster.env captures the SSH port ${sshPort} (ISTIO_INBOUND_PORTS='${inbound}'): ` +
      'the sidecar would cut SSH to the VM'
    );
  }
  return undefined;
}

function validateChange(change: VmChange): void {
  if (change.sshPort !== undefined) {
    const problem = sshCaptureProblem(change.files.clusterEnv, change.sshPort);
    if (problem) throw new Error(problem);
  }
  const pkg = change.package;
  if (pkg.format !== 'deb' && pkg.format !== 'rpm')
    throw new Error(`package format must be deb or rpm, got ${String(pkg.format)}`);
  if (pkg.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(pkg.sha256))
    throw new Error('sidecar package sha256 must be 64 hex digits');
  if (pkg.url !== undefined && !/^https?:\/\/[^\s]+$/.test(pkg.url))
    throw new Error(`sidecar package URL must be http(s): ${pkg.url}`);
  if (pkg.url && !pkg.upload && !pkg.sha256)
    throw new Error('a sidecar package URL needs its sha256 (the VM verifies the download)');
  if (!pkg.version && !pkg.sha256)
    throw new Error('the sidecar package needs a version or a sha256 to know when it is already installed');
}

/**
 * Free space (KiB) wanted on /var/lib before a package install: the package, its unpacked files and the kept
 * copies.
 */
function packageSpaceKiB(change: VmChange): number {
  const upload = change.package.upload?.length ?? 0;
  return Math.max(64 * 1024, Math.ceil((upload * 4) / 1024));
}

/** The tar stream sent on stdin: [package], files, then MANIFEST (sha256 of each) last. */
export function applyPayload(change: VmChange): Buffer {
  const entries: TarEntry[] = [];
  if (change.package.upload) entries.push({ name: `package.${change.package.format}`, data: change.package.upload });
  for (const file of MANAGED_FILES) {
    entries.push({ name: file.staged, data: Buffer.from(managedFileContent(file, change.files), 'utf8') });
  }
  entries.push({ name: 'hosts-block', data: Buffer.from(hostsBlockContent(change.hostsEntries), 'utf8') });
  const manifest = entries
    .map((entry) => `${createHash('sha256').update(entry.data).digest('hex')}  ${entry.name}\n`)
    .join('');
  entries.push({ name: 'MANIFEST', data: Buffer.from(manifest, 'utf8') });
  return createTar(entries);
}

const APPLY = readFileSync(new URL('./apply.sh', import.meta.url), 'utf8');

/** Directories istio-proxy owns that the package's files live in (created before placing files). */
const PLACEMENT_DIRS = ['/etc/certs', '/var/lib/istio/envoy', '/etc/istio/config', ISTIO_PATHS.proxyDir];

export function applyScript(change: VmChange, snapshotId: string): string {
  const pkg = change.package;
  const root = composeScript(
    changeFunctions({ lockWaitSeconds: change.lockWaitSeconds ?? 30 }),
    HOSTS_FUNCTIONS,
    // The bootstrap token restarts the sidecar only when asked (restartOnTokenChange).
    managedFilesPart((file) => (file.key === 'token' ? !!change.restartOnTokenChange : file.restarts)),
    {
      values: {
        IVO_STATE_DIR: ONBOARD_PATHS.stateDir,
        IVO_STAGING: ONBOARD_PATHS.staging,
        IVO_FORMAT: pkg.format,
        IVO_WANT_VERSION: pkg.version,
        IVO_WANT_SHA: (pkg.sha256 ?? '').toLowerCase(),
        IVO_PACKAGE_URL: pkg.url ?? '',
        IVO_PACKAGE_UPLOADED: pkg.upload ? 1 : 0,
        IVO_PACKAGE_SPACE_KIB: packageSpaceKiB(change),
        IVO_RESTART_POLICY: change.restartPolicy ?? 'if-changed',
        IVO_UPLOAD_TIMEOUT: Math.max(0, Math.floor(change.uploadTimeoutSeconds ?? 0)),
        IVO_SNAPSHOT_ID: snapshotId,
        IVO_BASELINE_PATHS: BASELINE_PATHS.join('\n'),
        IVO_HOSTS: ISTIO_PATHS.hosts,
        IVO_UNIT: ISTIO_PATHS.unitName,
        IVO_FAILED_MARKER: ONBOARD_PATHS.failedMarker,
        IVO_PLACEMENT_DIRS: PLACEMENT_DIRS.join('\n'),
        IVO_TOKEN_DIR: parentDir(ONBOARD_PATHS.persistentToken),
        IVO_DROP_IN_DIR: parentDir(ONBOARD_PATHS.dropIn),
        IVO_REBOOTSTRAP: change.reBootstrap ? 1 : 0,
        IVO_PROV_DIR: PROVISIONED_CERT_PATHS.dir,
        IVO_PROV_CHAIN: PROVISIONED_CERT_PATHS.certChain,
        IVO_PROV_KEY: PROVISIONED_CERT_PATHS.key,
      },
      text: APPLY,
    },
  );
  return asRoot(root);
}

/** Round trip 2 (the only one, even when the runner uploads the package). */
export async function applyVmChanges(session: VmSession, change: VmChange): Promise<VmApplyResult> {
  validateChange(change);
  const snapshotId = `${new Date().toISOString().replace(/[-:.]/g, '')}-${Math.random().toString(16).slice(2, 10)}`;
  const output = await runScript(session, applyScript(change, snapshotId), {
    what: 'apply',
    stdin: applyPayload(change),
    timeoutMs: change.timeoutMs ?? 15 * 60_000,
  });
  if (output.get('done') !== 'yes') {
    throw new Error(`apply on ${session.target} did not complete (no end marker in its output)`);
  }
  const files = {} as VmApplyResult['files'];
  for (const key of FILE_KEYS) files[key] = output.get(`file.${key}`) === 'changed' ? 'changed' : 'unchanged';
  const action = (output.get('package.action') ?? 'unchanged') as VmApplyResult['package']['action'];
  const source = output.get('package.source');
  const service = (output.get('service') ?? 'unchanged') as VmApplyResult['service'];
  return {
    files,
    package: {
      action,
      version: output.get('package.version') || null,
      previousVersion: output.get('package.previous') || null,
      source: source === 'upload' ? 'upload' : source === 'download' ? 'download' : null,
    },
    service,
    restarted: service !== 'unchanged',
    reBootstrapped: output.get('rebootstrap') === 'removed',
    changed:
      action !== 'unchanged' ||
      Object.values(files).some((value) => value === 'changed') ||
      output.get('rebootstrap') === 'removed',
    snapshotId: output.get('snapshot') ?? null,
    lock: {
      acquiredAt: Number(output.get('lock.acquired') ?? 'NaN'),
      releasedAt: Number(output.get('lock.released') ?? 'NaN'),
    },
  };
}
