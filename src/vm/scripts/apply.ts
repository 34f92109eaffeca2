// Round trip 2: make the VM match the rendered files and package, under the VM lock. The files travel
// as one tar stream on stdin (with a manifest of sha256s, so a cut upload changes nothing); the VM
// downloads and verifies the package itself when it has a URL (or gets it in the same tar stream).
// Files are staged, compared, the previous state is kept for rollback, then each file is renamed into
// place; the unit is (re)started only when something that matters changed.
import { createHash } from 'node:crypto';
import {
  BASELINE_PATHS,
  ISTIO_PATHS,
  MANAGED_FILES,
  ONBOARD_PATHS,
  TOKEN_RESTORE_DROP_IN,
  type ManagedFileKey,
} from '../paths.js';
import type { VmSession } from '../session.js';
import { createTar, type TarEntry } from '../tar.js';
import { lockFunctions, STEP_FUNCTIONS } from './common.js';
import { HOSTS_FUNCTIONS, hostsBlockContent } from './hosts-block.js';
import { runScript } from './protocol.js';
import { asRoot, shQuote } from './shell.js';

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
  /** Restart when only the bootstrap token changed; default false (a running sidecar keeps its certificate). */
  restartOnTokenChange?: boolean;
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
      return `cluster.env captures all inbound ports (ISTIO_INBOUND_PORTS='*') but ISTIO_LOCAL_EXCLUDE_PORTS does not exclude the SSH port ${sshPort}: the sidecar would cut SSH to the VM (istio#36870)`;
    }
  } else if (list(inbound).includes(String(sshPort))) {
    return `cluster.env captures the SSH port ${sshPort} (ISTIO_INBOUND_PORTS='${inbound}'): the sidecar would cut SSH to the VM`;
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
  const content: Record<ManagedFileKey, string> = {
    rootCert: change.files.rootCert,
    clusterEnv: change.files.clusterEnv,
    meshConfig: change.files.meshYaml,
    token: change.files.token,
    dropIn: TOKEN_RESTORE_DROP_IN,
  };
  for (const file of MANAGED_FILES) entries.push({ name: file.staged, data: Buffer.from(content[file.key], 'utf8') });
  entries.push({ name: 'hosts-block', data: Buffer.from(hostsBlockContent(change.hostsEntries), 'utf8') });
  const manifest = entries
    .map((entry) => `${createHash('sha256').update(entry.data).digest('hex')}  ${entry.name}\n`)
    .join('');
  entries.push({ name: 'MANIFEST', data: Buffer.from(manifest, 'utf8') });
  return createTar(entries);
}

export function applyScript(change: VmChange, snapshotId: string): string {
  const pkg = change.package;
  const S = ONBOARD_PATHS.stateDir;
  const q = shQuote;
  const temps = [
    ...MANAGED_FILES.map((file) => `${file.path}.ivo-new`),
    `${ISTIO_PATHS.runtimeToken}.ivo-new`,
    `${ISTIO_PATHS.hosts}.ivo-new`,
  ];
  const checks = MANAGED_FILES.map(
    (file) =>
      `ivo_check ${file.key} ${q(file.staged)} ${q(file.path)} ${file.key === 'token' ? '"$RESTART_ON_TOKEN"' : file.restarts ? 1 : 0}`,
  ).join('\n');
  const snapshotFiles = MANAGED_FILES.map(
    (file) =>
      `if [ -f ${q(file.path)} ]; then ivo_snapshot_file ${q(file.path)} ${file.owner} "$SNAP/${file.staged}"; else : > "$SNAP/${file.staged}.absent"; fi`,
  ).join('\n  ');
  const stageChanged = MANAGED_FILES.map(
    (file) =>
      `ivo_changed ${file.key} && ivo_stage_file "$STG/${file.staged}" ${q(file.path)} ${file.owner} ${file.mode}`,
  ).join('\n');
  const commitChanged = MANAGED_FILES.map(
    (file) => `ivo_changed ${file.key} && ivo_commit_file ${q(file.path)} ${file.owner}`,
  ).join('\n');
  const fixModes = MANAGED_FILES.map((file) => `ivo_fix_file ${q(file.path)} ${file.owner} ${file.mode}`).join('\n');
  const baseline = BASELINE_PATHS.map(
    (path) => `if [ -e ${q(path)} ] || [ -L ${q(path)} ]; then echo "path ${path}"; fi`,
  ).join('\n    ');
  const inner = `${HOSTS_FUNCTIONS}
${lockFunctions(change.lockWaitSeconds ?? 30)}
${STEP_FUNCTIONS}
umask 077
S=${q(S)}
STG=${q(ONBOARD_PATHS.staging)}
FMT=${q(pkg.format)}
WANT_VERSION=${q(pkg.version)}
WANT_SHA=${q((pkg.sha256 ?? '').toLowerCase())}
PKG_URL=${q(pkg.url ?? '')}
PKG_UPLOADED=${pkg.upload ? 1 : 0}
POLICY=${q(change.restartPolicy ?? 'if-changed')}
RESTART_ON_TOKEN=${change.restartOnTokenChange ? 1 : 0}
SNAP_ID=${q(snapshotId)}
ivo_cleanup() {
  rm -rf "$STG" "$S/previous.new"
  rm -f ${temps.map(q).join(' ')}
  ivo_conntrack_unprime
  ivo_cleanup_err
}
# Before the sidecar (re)starts, connection tracking must follow this SSH session: the sidecar's nat
# REDIRECT rules spare only flows conntrack already tracks, so on a VM where nothing used conntrack
# before, a session older than the rules is redirected mid-stream and hangs (checked in the lab: a
# nat-only rule is not enough, a conntrack match is). A conntrack rule in a chain nothing jumps to (so
# no packet is ever judged by it) turns tracking on; the session's next packets are tracked; then chain
# and rule go, and the entries they made stay. Primed as soon as a start is known to come, so the
# package install and the file placement give the session's packets time to pass.
IVO_PRIMED_AT=
ivo_conntrack_prime() {
  [ -n "$IVO_PRIMED_AT" ] && return 0
  command -v iptables >/dev/null 2>&1 || return 0
  iptables -w -N IVO_CONNTRACK_PRIME 2>/dev/null || true
  if iptables -w -A IVO_CONNTRACK_PRIME -m conntrack --ctstate INVALID -j RETURN 2>/dev/null; then
    IVO_PRIMED_AT=$(date +%s%3N 2>/dev/null)
    case "$IVO_PRIMED_AT" in ''|*[!0-9]*) IVO_PRIMED_AT=0 ;; esac
    ivo_emit conntrack primed
  fi
  return 0
}
# Just before the start: at least 0.3 s since priming (packets of this session have passed), then clean up.
ivo_conntrack_settle() {
  [ -n "$IVO_PRIMED_AT" ] || return 0
  ivo_ps_now=$(date +%s%3N 2>/dev/null)
  case "$ivo_ps_now" in ''|*[!0-9]*) sleep 0.3 ;; *) [ $(( ivo_ps_now - IVO_PRIMED_AT )) -lt 300 ] && sleep 0.3 ;; esac
  ivo_conntrack_unprime
}
ivo_conntrack_unprime() {
  [ -n "$IVO_PRIMED_AT" ] || return 0
  iptables -w -F IVO_CONNTRACK_PRIME 2>/dev/null
  iptables -w -X IVO_CONNTRACK_PRIME 2>/dev/null
  IVO_PRIMED_AT=
  return 0
}
trap ivo_cleanup EXIT
# finish what was started even if the SSH connection goes away
trap '' HUP PIPE
ivo_lock
ivo_need_space 1024 "the staged files"
ivo_run state install -d -m 0700 "$S" "$S/package"
if [ ! -f "$S/baseline" ]; then
  {
    ${baseline}
    getent passwd istio-proxy >/dev/null 2>&1 && echo "user istio-proxy"
    getent group istio-proxy >/dev/null 2>&1 && echo "group istio-proxy"
    ivo_bv=$(ivo_installed_version)
    [ -n "$ivo_bv" ] && echo "package $ivo_bv"
    true
  } > "$S/baseline.new" 2>/dev/null && mv -f "$S/baseline.new" "$S/baseline" || ivo_fail state "cannot record $S/baseline (disk full?)"
fi

# 1. receive the upload (one tar stream) and check it against its manifest
rm -rf "$STG"
ivo_run staging install -d -m 0700 "$STG"
tar -xf - -C "$STG" >"$IVO_ERR" 2>&1 || ivo_step_failed upload $? "$(tail -c 1500 "$IVO_ERR")"
[ -f "$STG/MANIFEST" ] || ivo_fail upload "the upload is incomplete (no manifest; connection cut?); nothing was changed"
(cd "$STG" && sha256sum -c MANIFEST) >"$IVO_ERR" 2>&1 || ivo_step_failed upload $? "$(tail -c 1500 "$IVO_ERR")"

# 2. the package: skip when that version is installed; else fetch (or take the upload) and verify
CUR_VER=$(ivo_installed_version)
CUR_SHA=$(head -n1 "$S/package/current.sha256" 2>/dev/null)
PKG_NEEDED=1
if [ -n "$CUR_VER" ]; then
  if [ -n "$WANT_VERSION" ]; then
    case "$CUR_VER" in "$WANT_VERSION"|"$WANT_VERSION"-*|"$WANT_VERSION"~*) PKG_NEEDED=0 ;; esac
  fi
  if [ -n "$WANT_SHA" ] && [ "$CUR_SHA" = "$WANT_SHA" ]; then PKG_NEEDED=0; fi
fi
PKG_FILE="$STG/package.$FMT"
GOT_SHA=
if [ "$PKG_NEEDED" = 1 ]; then
  ivo_need_space ${packageSpaceKiB(change)} "the sidecar package"
  if [ "$PKG_UPLOADED" = 1 ]; then
    [ -f "$PKG_FILE" ] || ivo_fail upload "the package is missing from the upload"
    PKG_SOURCE=upload
  else
    [ -n "$PKG_URL" ] || ivo_fail package "istio-sidecar $WANT_VERSION is not installed and there is neither a package URL nor an upload"
    if command -v curl >/dev/null 2>&1; then
      ivo_run download curl -fsSL --retry 2 --connect-timeout 15 --max-time 900 -o "$PKG_FILE" "$PKG_URL"
    elif command -v wget >/dev/null 2>&1; then
      ivo_run download wget -q -T 30 -t 2 -O "$PKG_FILE" "$PKG_URL"
    else
      ivo_fail download "neither curl nor wget on the VM to download $PKG_URL"
    fi
    PKG_SOURCE="download from $PKG_URL"
  fi
  GOT_SHA=$(ivo_sha "$PKG_FILE")
  if [ -n "$WANT_SHA" ] && [ "$GOT_SHA" != "$WANT_SHA" ]; then
    ivo_fail checksum "sidecar package checksum mismatch: expected $WANT_SHA, got $GOT_SHA ($PKG_SOURCE); nothing was installed"
  fi
  case "$FMT" in
    deb)
      PKG_ARCH=$(dpkg-deb -f "$PKG_FILE" Architecture 2>/dev/null)
      SYS_ARCH=$(dpkg --print-architecture 2>/dev/null)
      ;;
    rpm)
      PKG_ARCH=$(rpm -qp --qf '%{ARCH}' "$PKG_FILE" 2>/dev/null)
      SYS_ARCH=$(uname -m)
      ;;
  esac
  case "$PKG_ARCH" in
    ""|all|noarch|"$SYS_ARCH") ;;
    *) ivo_fail package-arch "the sidecar package is built for $PKG_ARCH but this VM is $SYS_ARCH; nothing was installed" ;;
  esac
  ivo_emit package.source "\${PKG_SOURCE%% *}"
fi

# 3. what changes
CHANGED=" "
RESTART=0
ivo_check() {
  if ivo_same "$STG/$2" "$3"; then
    ivo_emit "file.$1" unchanged
  else
    ivo_emit "file.$1" changed
    CHANGED="$CHANGED$1 "
    [ "$4" = 1 ] && RESTART=1
  fi
  return 0
}
ivo_changed() { case "$CHANGED" in *" $1 "*) return 0 ;; esac; return 1; }
${checks}
ivo_hosts_render ${ISTIO_PATHS.hosts} "$STG/hosts-block" "$STG/hosts.new"
ivo_hr_rc=$?
[ "$ivo_hr_rc" = 3 ] && ivo_fail hosts-corrupt "${ISTIO_PATHS.hosts} has a '# BEGIN istio-vm-onboard' line without its '# END istio-vm-onboard'; nothing was changed"
[ "$ivo_hr_rc" = 0 ] || ivo_fail hosts "cannot render the new ${ISTIO_PATHS.hosts} (exit $ivo_hr_rc)"
if [ -f ${ISTIO_PATHS.hosts} ] && ivo_same "$STG/hosts.new" ${ISTIO_PATHS.hosts}; then
  ivo_emit file.hosts unchanged
else
  ivo_emit file.hosts changed
  CHANGED="\${CHANGED}hosts "
  RESTART=1
fi

# 4. keep the state before this run for rollback
if [ "$CHANGED" != " " ] || [ "$PKG_NEEDED" = 1 ]; then
  SNAP="$S/previous.new"
  rm -rf "$SNAP"
  ivo_run snapshot install -d -m 0700 "$SNAP"
  ${snapshotFiles}
  ivo_hosts_extract ${ISTIO_PATHS.hosts} > "$SNAP/hosts-block" || ivo_fail snapshot "cannot save the current hosts block"
  printf '%s\\n' "$CUR_VER" > "$SNAP/package-version"
  if [ "$PKG_NEEDED" = 1 ] && [ -n "$CUR_VER" ] && [ -f "$S/package/current.$FMT" ]; then
    ln -f "$S/package/current.$FMT" "$SNAP/package.$FMT" 2>/dev/null || ivo_run snapshot cp -p "$S/package/current.$FMT" "$SNAP/package.$FMT"
  fi
  printf '%s\\n' "$SNAP_ID" > "$SNAP/id" || ivo_fail snapshot "cannot write the snapshot (disk full?)"
  rm -rf "$S/previous"
  ivo_run snapshot mv -f "$SNAP" "$S/previous"
  ivo_emit snapshot "$SNAP_ID"
fi

# A (re)start will come (package or a restarting file changed): prime connection tracking now.
[ "$PKG_NEEDED" = 1 ] || [ "$RESTART" = 1 ] || [ "$POLICY" = always ] && ivo_conntrack_prime

# 5. install the package
ivo_pkg_failed() {
  ivo_pf_rc=$1
  ivo_pf_out=$(tail -c 1500 "$IVO_ERR" 2>/dev/null)
  # leave no half-configured package behind
  if [ -z "$CUR_VER" ]; then
    if [ "$FMT" = deb ]; then dpkg --purge ${ISTIO_PATHS.packageName} 9>&- >/dev/null 2>&1; else rpm -e ${ISTIO_PATHS.packageName} 9>&- >/dev/null 2>&1; fi
  elif [ -f "$S/package/current.$FMT" ]; then
    if [ "$FMT" = deb ]; then dpkg -i "$S/package/current.$FMT" 9>&- >/dev/null 2>&1; else rpm -U --oldpackage --replacepkgs "$S/package/current.$FMT" 9>&- >/dev/null 2>&1; fi
  fi
  ivo_step_failed install "$ivo_pf_rc" "$ivo_pf_out"
}
if [ "$PKG_NEEDED" = 1 ]; then
  if [ "$FMT" = deb ]; then
    env DEBIAN_FRONTEND=noninteractive dpkg -i "$PKG_FILE" 9>&- >"$IVO_ERR" 2>&1 || ivo_pkg_failed $?
  else
    getent group istio-proxy >/dev/null 2>&1 || ivo_run install groupadd -r istio-proxy
    if [ -n "$CUR_VER" ]; then
      rpm -U --oldpackage --replacepkgs "$PKG_FILE" 9>&- >"$IVO_ERR" 2>&1 || ivo_pkg_failed $?
    else
      rpm -i "$PKG_FILE" 9>&- >"$IVO_ERR" 2>&1 || ivo_pkg_failed $?
    fi
  fi
  ivo_run keep-package mv -f "$PKG_FILE" "$S/package/current.$FMT"
  printf '%s\\n' "$GOT_SHA" > "$S/package/current.sha256"
  if [ -n "$CUR_VER" ]; then ivo_emit package.action upgraded; else ivo_emit package.action installed; fi
  RESTART=1
else
  ivo_emit package.action unchanged
fi
ivo_emit64 package.version "$(ivo_installed_version)"
ivo_emit64 package.previous "$CUR_VER"
getent passwd istio-proxy >/dev/null 2>&1 || ivo_fail install "there is no istio-proxy user after installing istio-sidecar"

# 6. place the files: all new files next to their targets first, then one rename each
ivo_run dirs install -d -o istio-proxy -g istio-proxy -m 0755 /etc/certs /var/lib/istio/envoy /etc/istio/config ${ISTIO_PATHS.proxyDir}
ivo_run dirs install -d -o istio-proxy -g istio-proxy -m 0700 ${q(ONBOARD_PATHS.persistentToken.replace(/\/[^/]+$/, ''))}
ivo_run dirs install -d -m 0755 ${q(ONBOARD_PATHS.dropIn.replace(/\/[^/]+$/, ''))}
${stageChanged}
${commitChanged}
${fixModes}
if ivo_changed hosts; then ivo_run hosts ivo_hosts_write "$STG/hosts.new" ${ISTIO_PATHS.hosts}; fi
ivo_sync_runtime_token

# 7. the unit: (re)start only when something that matters changed, or it is not running.
ivo_changed dropIn && ivo_run reload systemctl daemon-reload
[ "$POLICY" = always ] && RESTART=1
if [ "$RESTART" = 1 ]; then
  ivo_run enable systemctl enable ${ISTIO_PATHS.unitName}
  ivo_conntrack_prime
  ivo_conntrack_settle
  ivo_run restart systemctl restart ${ISTIO_PATHS.unitName}
  ivo_emit service restarted
else
  case "$(systemctl is-active ${ISTIO_PATHS.unitName} 2>/dev/null | head -n1)" in
    active|activating|reloading) ivo_emit service unchanged ;;
    *)
      ivo_run enable systemctl enable ${ISTIO_PATHS.unitName}
      ivo_conntrack_prime
      ivo_conntrack_settle
      ivo_run restart systemctl start ${ISTIO_PATHS.unitName}
      ivo_emit service started
      ;;
  esac
fi
rm -f ${q(ONBOARD_PATHS.failedMarker)}
ivo_emit lock.released "$(date +%s.%N)"
ivo_emit done yes
`;
  return asRoot(inner);
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
    changed: action !== 'unchanged' || Object.values(files).some((value) => value === 'changed'),
    snapshotId: output.get('snapshot') ?? null,
    lock: {
      acquiredAt: Number(output.get('lock.acquired') ?? 'NaN'),
      releasedAt: Number(output.get('lock.released') ?? 'NaN'),
    },
  };
}
