// What the lab and the test suite need from the machine, in one place: the Debian package that provides
// each program. The set-up script installs what is missing; the lab and the demo refuse to start without it.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** @type {ReadonlyArray<{ program: string; debianPackage: string; usedFor: string }>} */
export const MACHINE_REQUIREMENTS = [
  { program: 'sshd', debianPackage: 'openssh-server', usedFor: "each lab VM's real SSH server" },
  { program: 'sudo', debianPackage: 'sudo', usedFor: 'root on the lab VMs, as on real ones' },
  { program: 'ip', debianPackage: 'iproute2', usedFor: 'network namespaces, veths and the lab bridge' },
  { program: 'iptables', debianPackage: 'iptables', usedFor: "the lab's forwarding guard and the sidecar capture" },
  { program: 'curl', debianPackage: 'curl', usedFor: 'the VM-side checks' },
  { program: 'openssl', debianPackage: 'openssl', usedFor: "the lab's certificates" },
  { program: 'update-ca-certificates', debianPackage: 'ca-certificates', usedFor: 'TLS trust store' },
  { program: 'nsenter', debianPackage: 'util-linux', usedFor: 'entering lab VMs (nsenter, unshare, setpriv)' },
  { program: 'kubectl', debianPackage: 'kubectl', usedFor: 'a real Kubernetes client held against the lab cluster' },
  { program: 'faketime', debianPackage: 'faketime', usedFor: 'running the unit suite on other dates' },
  {
    program: 'shellcheck',
    debianPackage: 'shellcheck',
    usedFor: "npm run lint:sh (every .sh) and actionlint's check of the workflows' scripts",
  },
];

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of `program` on PATH or in the usual system directories, or undefined. */
export function findProgram(program) {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH_PATH];
  for (const dir of dirs) {
    const candidate = path.join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The requirements whose program is missing. */
export function missingRequirements(requirements = MACHINE_REQUIREMENTS) {
  return requirements.filter((r) => findProgram(r.program) === undefined);
}

/** The one command that installs the missing packages. */
export function installCommand(missing) {
  return `apt-get update && apt-get install -y --no-install-recommends ${[...new Set(missing.map((r) => r.debianPackage))].join(' ')}`;
}
