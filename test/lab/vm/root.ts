// Builds a VM's "disk seed" on the host: the upper layers of its overlays (/etc /var /usr /home /opt),
// its /root and /tmp. At boot the seed is copied into the VM's own tmpfs disk (see boot.ts), so nothing a
// VM writes reaches the host or another VM.
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';

/** Host directories a VM sees through a copy-on-write overlay (its own upper layer on its own disk). */
export const OVERLAID_DIRS = ['etc', 'var', 'usr', 'home', 'opt'] as const;

export interface VmRootOptions {
  name: string;
  ip: string;
  gatewayIP: string;
  sshPort: number;
  user: string;
  uid: number;
  /** OpenSSH public key line of the lab's login key. */
  authorizedKey: string;
  /** Bundled systemctl stand-in and workload app (host paths). */
  systemctlBundle: string;
  appBundle: string;
  appPort: number;
  seedDir: string;
  /** This VM's own range for system uids/gids (useradd/groupadd --system), see systemIdRange. */
  systemIds?: { min: number; max: number };
}

export const LAB_VM_LIB = '/usr/local/lib/lab-vm';
/**
 * The Node binary inside a VM: the runner's Node, bind-mounted read-only at boot (boot.ts). VM-side programs
 * (systemctl stand-in, workload app) run on it, so a checkout under /tmp (hidden by the VM's own /tmp) or
 * under a path with spaces works the same.
 */
export const LAB_VM_NODE = `${LAB_VM_LIB}/node`;
export const APP_UNIT = 'lab-app.service';

/** A uid/gid free on the host, so files of the lab user never look like a host user's. */
export function pickLabUid(): number {
  const used = new Set<number>();
  for (const file of ['/etc/passwd', '/etc/group']) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const id = Number(line.split(':')[2]);
      if (Number.isInteger(id)) used.add(id);
    }
  }
  for (let id = 1500; id < 60000; id++) if (!used.has(id)) return id;
  throw new Error('no free uid for the lab user');
}

/**
 * A range of system uids/gids that no other VM of any lab uses. Lab VMs share the host's PID
 * namespace, so a VM's `ps -u istio-proxy` / `kill` by user (offboard ends leftover sidecar processes
 * that way) would otherwise also see every other VM's istio-proxy (the same uid 999 everywhere), and
 * an offboard in one lab would end the sidecars of all labs. On real machines a VM sees only its own
 * processes; distinct uids give the same result for everything that selects processes by user.
 */
export function systemIdRange(labIndex: number, vmIndex: number): { min: number; max: number } {
  const min = 100_000 + labIndex * 4_096 + vmIndex * 16;
  return { min, max: min + 15 };
}

/** The host's login.defs with this VM's system uid/gid range (last definition wins in login.defs). */
export function loginDefsWithSystemIds(hostLoginDefs: string, ids: { min: number; max: number }): string {
  const kept = hostLoginDefs
    .split('\n')
    .filter((line) => !/^\s*SYS_[UG]ID_(MIN|MAX)\b/.test(line))
    .join('\n')
    .trimEnd();
  return `${kept}\n\n# Lab VM: system accounts get uids/gids no other lab VM uses (VMs share the host's PID namespace).\nSYS_UID_MIN ${ids.min}\nSYS_UID_MAX ${ids.max}\nSYS_GID_MIN ${ids.min}\nSYS_GID_MAX ${ids.max}\n`;
}

/** Host `/etc/shadow`-style content with every password replaced by `*` (no host hash reaches a VM). */
function scrubbedShadow(file: string, extra: string): string {
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(':');
      if (f.length > 1) f[1] = '*';
      return f.join(':');
    });
  return lines.join('\n') + '\n' + extra;
}

function write(file: string, content: string, mode = 0o644): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content, { mode });
  chmodSync(file, mode);
}

/** An overlayfs whiteout (char device 0/0): hides the host's file of that name inside the VM. */
async function whiteout(file: string): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await run(['mknod', file, 'c', '0', '0']);
}

export function sudoersNoPasswd(user: string): string {
  return `# Lab login user: passwordless sudo (the default of the lab; fault sudo-password removes it)\n${user} ALL=(ALL:ALL) NOPASSWD: ALL\n`;
}

export function sudoersWithPassword(user: string): string {
  return `# Lab login user: sudo asks for a password (fault sudo-password)\n${user} ALL=(ALL:ALL) ALL\n`;
}

export function sshdConfig(port: number): string {
  return [
    '# sshd of a lab VM (Debian OpenSSH); written by test/lab/vm/root.ts',
    `Port ${port}`,
    'ListenAddress 0.0.0.0',
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'PidFile /run/sshd.pid',
    'UsePAM no',
    'PermitRootLogin no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'UseDNS no',
    // VERBOSE logs every connection ("Connection from …"), even one that never authenticates: tests
    // count them in /var/log/sshd-lab.log.
    'LogLevel VERBOSE',
    'PrintMotd no',
    'X11Forwarding no',
    'AcceptEnv LANG LC_*',
    'MaxStartups 200:30:400',
    'MaxSessions 64',
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    '',
  ].join('\n');
}

export function appUnit(options: { name: string; port: number }): string {
  return [
    '[Unit]',
    `Description=Lab workload application of ${options.name} (HTTP on port ${options.port})`,
    '',
    '[Service]',
    `ExecStart=${LAB_VM_NODE} ${LAB_VM_LIB}/workload-app.mjs --name ${options.name} --port ${options.port}`,
    'Restart=always',
    'RestartSec=1',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export async function buildVmSeed(o: VmRootOptions): Promise<{ hostPublicKey: string }> {
  const upper = (d: string): string => path.join(o.seedDir, 'upper', d);
  for (const d of OVERLAID_DIRS) {
    mkdirSync(upper(d), { recursive: true });
    mkdirSync(path.join(o.seedDir, 'work', d), { recursive: true });
  }
  mkdirSync(path.join(o.seedDir, 'root'), { recursive: true, mode: 0o700 });
  chmodSync(path.join(o.seedDir, 'root'), 0o700);
  mkdirSync(path.join(o.seedDir, 'tmp'), { recursive: true });
  chmodSync(path.join(o.seedDir, 'tmp'), 0o1777);

  // /etc: accounts, sudo, names, resolver, sshd.
  const etc = upper('etc');
  const u = o.user;
  write(
    path.join(etc, 'passwd'),
    readFileSync('/etc/passwd', 'utf8').trimEnd() + `\n${u}:x:${o.uid}:${o.uid}:Lab login user:/home/${u}:/bin/bash\n`,
  );
  write(path.join(etc, 'group'), readFileSync('/etc/group', 'utf8').trimEnd() + `\n${u}:x:${o.uid}:\n`);
  const days = Math.floor(Date.now() / 86_400_000);
  write(path.join(etc, 'shadow'), scrubbedShadow('/etc/shadow', `${u}:*:${days}:0:99999:7:::\n`), 0o640);
  write(path.join(etc, 'gshadow'), scrubbedShadow('/etc/gshadow', `${u}:!::\n`), 0o640);
  for (const f of ['shadow', 'gshadow']) chownSync(path.join(etc, f), 0, shadowGid());
  if (o.systemIds) {
    let hostDefs = '';
    try {
      hostDefs = readFileSync('/etc/login.defs', 'utf8');
    } catch {
      // no login.defs on the host: the VM gets only the range
    }
    write(path.join(etc, 'login.defs'), loginDefsWithSystemIds(hostDefs, o.systemIds));
  }
  write(
    path.join(etc, 'sudoers'),
    [
      '# sudoers of a lab VM',
      'Defaults\tenv_reset',
      'Defaults\tmail_badpass',
      'Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
      'Defaults\tuse_pty',
      'root\tALL=(ALL:ALL) ALL',
      '%sudo\tALL=(ALL:ALL) ALL',
      '@includedir /etc/sudoers.d',
      '',
    ].join('\n'),
    0o440,
  );
  write(path.join(etc, 'sudoers.d', '90-lab-user'), sudoersNoPasswd(u), 0o440);
  write(path.join(etc, 'hostname'), `${o.name}\n`);
  write(
    path.join(etc, 'hosts'),
    `127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n${o.ip}\t${o.name}\n`,
  );
  // Only the lab gateway is a resolver: VMs never ask the machine's real DNS.
  write(path.join(etc, 'resolv.conf'), `nameserver ${o.gatewayIP}\noptions timeout:1 attempts:1\n`);
  write(path.join(etc, 'ssh', 'sshd_config'), sshdConfig(o.sshPort));
  for (const f of readdirSync('/etc/ssh')) {
    if (f.startsWith('ssh_host_')) await whiteout(path.join(etc, 'ssh', f));
  }
  const hostKey = path.join(etc, 'ssh', 'ssh_host_ed25519_key');
  await run(['rm', '-f', hostKey, `${hostKey}.pub`]);
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${o.name}`, '-f', hostKey]);
  const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim();

  // /home: the login user with the lab's key.
  const home = path.join(upper('home'), u);
  write(path.join(home, '.ssh', 'authorized_keys'), o.authorizedKey.trim() + '\n', 0o600);
  write(path.join(home, '.profile'), 'export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n');
  chmodSync(path.join(home, '.ssh'), 0o700);
  chmodSync(home, 0o755);
  for (const p of [
    home,
    path.join(home, '.ssh'),
    path.join(home, '.ssh', 'authorized_keys'),
    path.join(home, '.profile'),
  ]) {
    chownSync(p, o.uid, o.uid);
  }

  // /usr: systemctl stand-in (first on PATH, and in place of the host's /usr/bin/systemctl), the app.
  const usr = upper('usr');
  const lib = path.join(usr, LAB_VM_LIB.slice('/usr/'.length));
  mkdirSync(lib, { recursive: true });
  copyFileSync(o.systemctlBundle, path.join(lib, 'systemctl.mjs'));
  copyFileSync(o.appBundle, path.join(lib, 'workload-app.mjs'));
  const wrapper = `#!/bin/sh\n# systemctl stand-in of the lab (systemd is not PID 1 in a lab VM)\nexec ${LAB_VM_NODE} ${LAB_VM_LIB}/systemctl.mjs "$@"\n`;
  write(path.join(usr, 'local', 'sbin', 'systemctl'), wrapper, 0o755);
  write(path.join(usr, 'bin', 'systemctl'), wrapper, 0o755);
  write(path.join(usr, 'lib', 'systemd', 'system', APP_UNIT), appUnit({ name: o.name, port: o.appPort }));
  return { hostPublicKey };
}

function shadowGid(): number {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === 'shadow') return Number(f[2]);
  }
  return 0;
}
