// Where things live on the VM. Istio's paths are those of the istio-sidecar package and Istio's VM
// docs; the rest is ours (state under /var/lib/istio-vm-onboard, the lock in /run, which only root can write).
import type { VmFiles } from '../render/vm-files.js';

export const ISTIO_PATHS = {
  rootCert: '/etc/certs/root-cert.pem',
  clusterEnv: '/var/lib/istio/envoy/cluster.env',
  meshConfig: '/etc/istio/config/mesh',
  /** Where pilot-agent reads the bootstrap token. /var/run is tmpfs: see persistentToken. */
  runtimeToken: '/var/run/secrets/tokens/istio-token',
  proxyDir: '/etc/istio/proxy',
  hosts: '/etc/hosts',
  unitName: 'istio',
  packageName: 'istio-sidecar',
} as const;

export const ONBOARD_PATHS = {
  stateDir: '/var/lib/istio-vm-onboard',
  staging: '/var/lib/istio-vm-onboard/staging',
  previous: '/var/lib/istio-vm-onboard/previous',
  packageDir: '/var/lib/istio-vm-onboard/package',
  baseline: '/var/lib/istio-vm-onboard/baseline',
  failedMarker: '/var/lib/istio-vm-onboard/FAILED',
  /** In /run (root's, 0755), not the world-writable /var/lock where anyone could hold the lock. */
  lockFile: '/run/istio-vm-onboard.lock',
  /** The persistent copy of the bootstrap token the unit's drop-in restores after a reboot (istio#22665). */
  persistentToken: '/var/lib/istio/tokens/istio-token',
  dropIn: '/etc/systemd/system/istio.service.d/10-istio-vm-onboard.conf',
} as const;

export const HOSTS_BEGIN_MARKER = '# BEGIN istio-vm-onboard';
export const HOSTS_END_MARKER = '# END istio-vm-onboard';

/** The systemd drop-in that puts the token back into tmpfs before every start of the unit. */
export const TOKEN_RESTORE_DROP_IN = [
  '# Managed by istio-vm-onboard. /var/run is tmpfs, so the bootstrap token is lost on reboot',
  '# (istio#22665): restore it from the persistent copy before every start.',
  '[Service]',
  '# Root makes /var/run/secrets; istio-proxy, who owns the token and its directories, copies it.',
  // One systemd line: root makes the directory, then istio-proxy copies the token.
  "ExecStartPre=+/bin/sh -c 'install -d -o istio-proxy -g istio-proxy -m 0755 /var/run/secrets && " +
    'exec setpriv --reuid=istio-proxy --regid=istio-proxy --init-groups /bin/sh -c ' +
    `"mkdir -p ${ISTIO_PATHS.runtimeToken.replace(/\/[^/]+$/, '')} && ` +
    `install -m 0400 ${ONBOARD_PATHS.persistentToken} ${ISTIO_PATHS.runtimeToken}"'`,
  '',
].join('\n');

/** The files onboarding writes on a VM: the plain files, then our block of /etc/hosts. */
export type ManagedFileKey = 'rootCert' | 'clusterEnv' | 'meshConfig' | 'token' | 'dropIn';
export type VmFileKey = ManagedFileKey | 'hosts';

/** One file onboarding manages on the VM: the scripts, the plan, the report and the adapters all read this row. */
export interface VmFile<Key extends VmFileKey = VmFileKey> {
  key: Key;
  /** Name inside the staging dir, the previous/ dir and the upload's tar stream. */
  staged: string;
  /** Where it lives on the VM. */
  path: string;
  /** How plans and reports name it: the path, or for /etc/hosts the path and our block. */
  label: string;
  /** The rendered file (istioctl's output) that holds its content; undefined: ours, the same on every VM. */
  rendered: keyof VmFiles | undefined;
  /** Undefined: the file keeps its own owner and mode (the system's /etc/hosts). */
  owner: 'istio-proxy' | 'root' | undefined;
  mode: string | undefined;
  /**
   * Whether root runs it as shell (istio-start.sh sources cluster.env under `set -a`): what reaches it
   * from the inventory or the cluster is validated first (src/render/proxy-metadata.ts).
   */
  sourcedByRoot: boolean;
  /** Whether a change of this file alone restarts the sidecar. */
  restarts: boolean;
  /** Never diffed, shown or counted as a change. */
  secret: boolean;
  /**
   * When the file on the VM counts as unchanged: `bytes`, or `certificates` for a bundle pilot-agent rewrites
   * with the same roots in its own order and layout (src/render/certificate-set.ts).
   */
  comparedAs: 'bytes' | 'certificates';
}

/** A plain file we place whole (the hosts block is merged into the system's /etc/hosts instead). */
export type ManagedFile = VmFile<ManagedFileKey> & { owner: 'istio-proxy' | 'root'; mode: string };

/** Every file onboarding manages on the VM, in the order the scripts and reports list them. */
export const VM_FILES: readonly VmFile[] = [
  {
    key: 'rootCert',
    staged: 'root-cert.pem',
    path: ISTIO_PATHS.rootCert,
    label: ISTIO_PATHS.rootCert,
    rendered: 'rootCert',
    owner: 'istio-proxy',
    mode: '0644',
    sourcedByRoot: false,
    restarts: true,
    secret: false,
    // pilot-agent writes the trust bundle it got from istiod here (OUTPUT_CERTS=./etc/certs).
    comparedAs: 'certificates',
  },
  {
    key: 'clusterEnv',
    staged: 'cluster.env',
    path: ISTIO_PATHS.clusterEnv,
    label: ISTIO_PATHS.clusterEnv,
    rendered: 'clusterEnv',
    owner: 'istio-proxy',
    mode: '0644',
    sourcedByRoot: true,
    restarts: true,
    secret: false,
    comparedAs: 'bytes',
  },
  {
    key: 'meshConfig',
    staged: 'mesh',
    path: ISTIO_PATHS.meshConfig,
    label: ISTIO_PATHS.meshConfig,
    rendered: 'meshYaml',
    owner: 'istio-proxy',
    mode: '0644',
    sourcedByRoot: false,
    restarts: true,
    secret: false,
    comparedAs: 'bytes',
  },
  // A fresh bootstrap token every run must not restart a healthy sidecar (it already holds its
  // certificate); pilot-agent reads the file again when it needs it, and the unit restores it on start.
  {
    key: 'token',
    staged: 'istio-token',
    path: ONBOARD_PATHS.persistentToken,
    label: ONBOARD_PATHS.persistentToken,
    rendered: 'token',
    owner: 'istio-proxy',
    mode: '0600',
    sourcedByRoot: false,
    restarts: false,
    secret: true,
    comparedAs: 'bytes',
  },
  {
    key: 'dropIn',
    staged: 'dropin.conf',
    path: ONBOARD_PATHS.dropIn,
    label: ONBOARD_PATHS.dropIn,
    rendered: undefined,
    owner: 'root',
    mode: '0644',
    sourcedByRoot: false,
    restarts: true,
    secret: false,
    comparedAs: 'bytes',
  },
  {
    key: 'hosts',
    staged: 'hosts-block',
    path: ISTIO_PATHS.hosts,
    label: `${ISTIO_PATHS.hosts} (istio-vm-onboard block)`,
    rendered: 'hosts',
    owner: undefined,
    mode: undefined,
    sourcedByRoot: false,
    restarts: true,
    secret: false,
    comparedAs: 'bytes',
  },
];

/**
 * What a managed file placed whole holds on the VM: its rendered file, or ours (the drop-in). Apply writes
 * exactly this, and drift compares the VM's file with it.
 */
export function managedFileContent(file: ManagedFile, files: Omit<VmFiles, 'hosts'>): string {
  return file.rendered === undefined ? TOKEN_RESTORE_DROP_IN : files[file.rendered as Exclude<keyof VmFiles, 'hosts'>];
}

/** The plain files we place whole (the hosts block is handled separately). */
export const MANAGED_FILES: readonly ManagedFile[] = VM_FILES.filter(
  (file): file is ManagedFile => file.key !== 'hosts',
);

/** The row of a managed file by its key. */
export function vmFile(key: VmFileKey): VmFile {
  const file = VM_FILES.find((candidate) => candidate.key === key);
  if (!file) throw new Error(`no managed VM file ${key}`);
  return file;
}

/** Paths the package or our placement create; offboard removes those that did not exist before the first onboarding. */
export const BASELINE_PATHS = [
  '/etc/istio',
  '/etc/certs',
  '/var/lib/istio',
  '/var/log/istio',
  '/var/run/secrets',
  '/etc/systemd/system/istio.service.d',
] as const;
