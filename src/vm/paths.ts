// Where things live on the VM. Istio's paths are those of the istio-sidecar package and Istio's VM
// docs; the rest is ours (state under /var/lib/istio-vm-onboard, the lock in /run, which only root can write).

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
export const TOKEN_RESTORE_DROP_IN = `# Managed by istio-vm-onboard. /var/run is tmpfs, so the bootstrap token is lost on reboot
# (istio#22665): restore it from the persistent copy before every start.
[Service]
# Root makes /var/run/secrets; istio-proxy, who owns the token and its directories, copies it.
ExecStartPre=+/bin/sh -c 'install -d -o istio-proxy -g istio-proxy -m 0755 /var/run/secrets && exec setpriv --reuid=istio-proxy --regid=istio-proxy --init-groups /bin/sh -c "mkdir -p ${ISTIO_PATHS.runtimeToken.replace(/\/[^/]+$/, '')} && install -m 0400 ${ONBOARD_PATHS.persistentToken} ${ISTIO_PATHS.runtimeToken}"'
`;

export type ManagedFileKey = 'rootCert' | 'clusterEnv' | 'meshConfig' | 'token' | 'dropIn';

export interface ManagedFile {
  key: ManagedFileKey;
  /** Name inside the staging dir and the previous/ dir. */
  staged: string;
  path: string;
  owner: 'istio-proxy' | 'root';
  mode: string;
  /** Whether a change of this file alone restarts the sidecar. */
  restarts: boolean;
  secret: boolean;
}

/** The plain files we place (the hosts block is handled separately). */
export const MANAGED_FILES: readonly ManagedFile[] = [
  {
    key: 'rootCert',
    staged: 'root-cert.pem',
    path: ISTIO_PATHS.rootCert,
    owner: 'istio-proxy',
    mode: '0644',
    restarts: true,
    secret: false,
  },
  {
    key: 'clusterEnv',
    staged: 'cluster.env',
    path: ISTIO_PATHS.clusterEnv,
    owner: 'istio-proxy',
    mode: '0644',
    restarts: true,
    secret: false,
  },
  {
    key: 'meshConfig',
    staged: 'mesh',
    path: ISTIO_PATHS.meshConfig,
    owner: 'istio-proxy',
    mode: '0644',
    restarts: true,
    secret: false,
  },
  // A fresh bootstrap token every run must not restart a healthy sidecar (it already holds its
  // certificate); pilot-agent reads the file again when it needs it, and the unit restores it on start.
  {
    key: 'token',
    staged: 'istio-token',
    path: ONBOARD_PATHS.persistentToken,
    owner: 'istio-proxy',
    mode: '0600',
    restarts: false,
    secret: true,
  },
  {
    key: 'dropIn',
    staged: 'dropin.conf',
    path: ONBOARD_PATHS.dropIn,
    owner: 'root',
    mode: '0644',
    restarts: true,
    secret: false,
  },
];

/** Paths the package or our placement create; offboard removes those that did not exist before the first onboarding. */
export const BASELINE_PATHS = [
  '/etc/istio',
  '/etc/certs',
  '/var/lib/istio',
  '/var/log/istio',
  '/var/run/secrets',
  '/etc/systemd/system/istio.service.d',
] as const;
