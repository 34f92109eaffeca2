// Rollback (one round trip): put back the files, hosts block and package version kept by the last
// apply that changed something, and restart. A first install (nothing to go back to) is stopped,
// disabled and marked with /var/lib/istio-vm-onboard/FAILED and the reason.
import { ISTIO_PATHS, MANAGED_FILES, ONBOARD_PATHS } from '../paths.js';
import type { VmSession } from '../session.js';
import { lockFunctions, STEP_FUNCTIONS } from './common.js';
import { HOSTS_FUNCTIONS } from './hosts-block.js';
import { runScript } from './protocol.js';
import { asRoot, shQuote } from './shell.js';

export interface RollbackOptions {
  /** Why (written into the FAILED marker of a first install). Never put secrets here. */
  reason: string;
  /** Refuse unless the kept state was made by the apply with this snapshotId. */
  expectSnapshotId?: string;
  lockWaitSeconds?: number;
  timeoutMs?: number;
}

export interface VmRollbackResult {
  action: 'rolled-back' | 'stopped-and-marked';
  /** Managed files put back (or removed because they did not exist before). */
  restoredFiles: string[];
  /** The package version reinstalled, if the version had changed. */
  packageRestored: string | null;
  /** The version had changed but the old package file was not kept. */
  packageNotRestorable: boolean;
}

export function rollbackScript(options: RollbackOptions): string {
  const q = shQuote;
  const restore = MANAGED_FILES.map(
    (file) => `if [ -f "$P/${file.staged}.absent" ]; then
  if [ -f ${q(file.path)} ]; then ivo_run restore rm -f ${q(file.path)}; ivo_emit restored ${file.key}; fi
elif [ -f "$P/${file.staged}" ] && ! ivo_same "$P/${file.staged}" ${q(file.path)}; then
  ivo_stage_file "$P/${file.staged}" ${q(file.path)} ${file.owner} ${file.mode}
  ivo_commit_file ${q(file.path)} ${file.owner}
  ivo_emit restored ${file.key}
fi`,
  ).join('\n');
  const temps = [
    ...MANAGED_FILES.map((file) => `${file.path}.ivo-new`),
    `${ISTIO_PATHS.runtimeToken}.ivo-new`,
    `${ISTIO_PATHS.hosts}.ivo-new`,
  ];
  const inner = `${HOSTS_FUNCTIONS}
${lockFunctions(options.lockWaitSeconds ?? 30)}
${STEP_FUNCTIONS}
umask 077
S=${q(ONBOARD_PATHS.stateDir)}
P="$S/previous"
REASON=${q(options.reason.replace(/[\r\n]+/g, ' '))}
EXPECT=${q(options.expectSnapshotId ?? '')}
if command -v dpkg-query >/dev/null 2>&1; then FMT=deb; else FMT=rpm; fi
trap 'rm -f ${temps.map(q).join(' ')} "$S/hosts.rollback"; ivo_cleanup_err' EXIT
trap '' HUP PIPE
ivo_lock
FIRST=0
PREV_VER=
if [ ! -d "$P" ]; then
  FIRST=1
else
  if [ -n "$EXPECT" ] && [ "$(head -n1 "$P/id" 2>/dev/null)" != "$EXPECT" ]; then
    ivo_fail snapshot-mismatch "the kept previous state is from another run (expected snapshot $EXPECT); nothing was changed"
  fi
  PREV_VER=$(head -n1 "$P/package-version" 2>/dev/null)
  [ -z "$PREV_VER" ] && FIRST=1
  [ -f "$P/cluster.env.absent" ] && FIRST=1
fi
if [ "$FIRST" = 1 ]; then
  systemctl stop ${ISTIO_PATHS.unitName} 9>&- >/dev/null 2>&1
  systemctl disable ${ISTIO_PATHS.unitName} 9>&- >/dev/null 2>&1
  install -d -m 0700 "$S" 2>/dev/null
  printf '%s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$REASON" > ${q(ONBOARD_PATHS.failedMarker)} || ivo_fail mark "cannot write ${ONBOARD_PATHS.failedMarker}"
  ivo_emit result stopped-and-marked
  ivo_emit done yes
  exit 0
fi
${restore}
ivo_hosts_render ${ISTIO_PATHS.hosts} "$P/hosts-block" "$S/hosts.rollback" || ivo_fail hosts "cannot render ${ISTIO_PATHS.hosts} from the kept block"
if ! ivo_same "$S/hosts.rollback" ${ISTIO_PATHS.hosts}; then
  ivo_run hosts ivo_hosts_write "$S/hosts.rollback" ${ISTIO_PATHS.hosts}
  ivo_emit restored hosts
fi
ivo_sync_runtime_token
CUR_VER=$(ivo_installed_version)
if [ "$CUR_VER" != "$PREV_VER" ]; then
  if [ -f "$P/package.$FMT" ]; then
    if [ "$FMT" = deb ]; then
      ivo_run package env DEBIAN_FRONTEND=noninteractive dpkg -i "$P/package.$FMT"
    else
      ivo_run package rpm -U --oldpackage --replacepkgs "$P/package.$FMT"
    fi
    ln -f "$P/package.$FMT" "$S/package/current.$FMT" 2>/dev/null || cp -p "$P/package.$FMT" "$S/package/current.$FMT"
    ivo_sha "$P/package.$FMT" > "$S/package/current.sha256"
    ivo_emit64 package.restored "$PREV_VER"
  else
    ivo_emit package.not-restorable yes
  fi
fi
ivo_run reload systemctl daemon-reload
ivo_run enable systemctl enable ${ISTIO_PATHS.unitName}
ivo_run restart systemctl restart ${ISTIO_PATHS.unitName}
rm -f ${q(ONBOARD_PATHS.failedMarker)}
ivo_emit result rolled-back
ivo_emit done yes
`;
  return asRoot(inner);
}

export async function rollbackVm(
  session: VmSession,
  options: RollbackOptions = { reason: 'rolled back' },
): Promise<VmRollbackResult> {
  const output = await runScript(session, rollbackScript(options), {
    what: 'rollback',
    timeoutMs: options.timeoutMs ?? 10 * 60_000,
  });
  if (output.get('done') !== 'yes') throw new Error(`rollback on ${session.target} did not complete`);
  return {
    action: output.get('result') === 'stopped-and-marked' ? 'stopped-and-marked' : 'rolled-back',
    restoredFiles: output.all('restored'),
    packageRestored: output.get('package.restored') ?? null,
    packageNotRestorable: output.get('package.not-restorable') === 'yes',
  };
}
