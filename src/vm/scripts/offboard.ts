// Offboard (one round trip): stop and disable the sidecar, remove our files, the drop-in, the hosts
// block and the package, then whatever the package or we created that was not there before the first
// onboarding (recorded in /var/lib/istio-vm-onboard/baseline), and finally our state directory.
import { BASELINE_PATHS, ISTIO_PATHS, MANAGED_FILES, ONBOARD_PATHS } from '../paths.js';
import type { VmSession } from '../session.js';
import { lockFunctions, STEP_FUNCTIONS } from './common.js';
import { HOSTS_FUNCTIONS } from './hosts-block.js';
import { runScript } from './protocol.js';
import { asRoot, shQuote } from './shell.js';

export interface OffboardOptions {
  lockWaitSeconds?: number;
  timeoutMs?: number;
}

export interface VmOffboardResult {
  /** The package version that was purged, null when none was installed. */
  packageRemoved: string | null;
  /** Files and directories removed. */
  removed: string[];
  hostsBlockRemoved: boolean;
  /** No baseline was found (not onboarded by us): only our own files were removed. */
  withoutBaseline: boolean;
  /** istio-proxy processes still alive 10 s after `systemctl stop`, ended by pid. */
  endedProcesses: number[];
}

export function offboardScript(options: OffboardOptions = {}): string {
  const q = shQuote;
  const files = [...MANAGED_FILES.map((file) => file.path), ISTIO_PATHS.runtimeToken];
  const removeFiles = files
    .map((path) => `if [ -e ${q(path)} ]; then ivo_run remove rm -f ${q(path)}; ivo_emit64 removed ${q(path)}; fi`)
    .join('\n');
  const dirs = [ONBOARD_PATHS.persistentToken.replace(/\/[^/]+$/, ''), ONBOARD_PATHS.dropIn.replace(/\/[^/]+$/, '')];
  const removeDirs = dirs.map((dir) => `rmdir ${q(dir)} 2>/dev/null && ivo_emit64 removed ${q(dir)}`).join('\n');
  const baselineRemovals = BASELINE_PATHS.map(
    (path) =>
      `if ! grep -q -x ${q(`path ${path}`)} "$S/baseline" && { [ -e ${q(path)} ] || [ -L ${q(path)} ]; }; then ivo_run remove rm -rf ${q(path)}; ivo_emit64 removed ${q(path)}; fi`,
  ).join('\n  ');
  const inner = `${HOSTS_FUNCTIONS}
${lockFunctions(options.lockWaitSeconds ?? 30)}
${STEP_FUNCTIONS}
umask 022
S=${q(ONBOARD_PATHS.stateDir)}
trap 'rm -f "$S.hosts.offboard" ${q(`${ISTIO_PATHS.hosts}.ivo-new`)}; ivo_cleanup_err' EXIT
trap '' HUP PIPE
ivo_lock
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop ${ISTIO_PATHS.unitName} 9>&- >/dev/null 2>&1
  systemctl disable ${ISTIO_PATHS.unitName} 9>&- >/dev/null 2>&1
fi
# the sidecar's processes run as istio-proxy: give them 10 s to end, then end the rest by pid
# Only this machine's own processes: those in our network namespace (on a VM, all of them; where
# several VMs share one kernel — containers, the lab — never another machine's sidecar).
ivo_netns=$(readlink /proc/$$/ns/net 2>/dev/null)
ivo_proxy_pids() {
  for ivo_p in $(ps -o pid= -u istio-proxy 2>/dev/null); do
    [ "$(readlink /proc/$ivo_p/ns/net 2>/dev/null)" = "$ivo_netns" ] && echo "$ivo_p"
  done
}
if getent passwd istio-proxy >/dev/null 2>&1; then
  ivo_i=0
  while [ -n "$(ivo_proxy_pids)" ] && [ "$ivo_i" -lt 20 ]; do sleep 0.5; ivo_i=$((ivo_i + 1)); done
  ivo_left=$(ivo_proxy_pids)
  if [ -n "$ivo_left" ]; then
    ivo_emit64 killed "$ivo_left"
    for ivo_pid in $ivo_left; do kill -TERM "$ivo_pid" 2>/dev/null; done
    sleep 1
    for ivo_pid in $(ivo_proxy_pids); do kill -KILL "$ivo_pid" 2>/dev/null; done
  fi
fi
${removeFiles}
${removeDirs}
command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload 9>&- >/dev/null 2>&1
ivo_hosts_render ${ISTIO_PATHS.hosts} /dev/null "$S.hosts.offboard" || ivo_fail hosts "cannot render ${ISTIO_PATHS.hosts} without our block"
if [ -f ${ISTIO_PATHS.hosts} ] && ! ivo_same "$S.hosts.offboard" ${ISTIO_PATHS.hosts}; then
  ivo_run hosts ivo_hosts_write "$S.hosts.offboard" ${ISTIO_PATHS.hosts}
  ivo_emit hosts removed
fi
CUR_VER=$(ivo_installed_version)
if [ -n "$CUR_VER" ]; then
  if command -v dpkg-query >/dev/null 2>&1; then
    ivo_run purge env DEBIAN_FRONTEND=noninteractive dpkg --purge ${ISTIO_PATHS.packageName}
  else
    ivo_run purge rpm -e ${ISTIO_PATHS.packageName}
  fi
  ivo_emit64 package.removed "$CUR_VER"
fi
if [ -f "$S/baseline" ]; then
  ${baselineRemovals}
  if ! grep -q -x 'user istio-proxy' "$S/baseline" && getent passwd istio-proxy >/dev/null 2>&1; then
    if command -v userdel >/dev/null 2>&1; then ivo_run user userdel istio-proxy; else ivo_run user deluser --system istio-proxy; fi
    ivo_emit64 removed 'user istio-proxy'
  fi
  if ! grep -q -x 'group istio-proxy' "$S/baseline" && getent group istio-proxy >/dev/null 2>&1; then
    if command -v groupdel >/dev/null 2>&1; then ivo_run group groupdel istio-proxy; else ivo_run group delgroup --system istio-proxy; fi
    ivo_emit64 removed 'group istio-proxy'
  fi
else
  ivo_emit baseline missing
fi
ivo_run state rm -rf "$S"
ivo_emit done yes
`;
  return asRoot(inner);
}

export async function offboardVm(session: VmSession, options: OffboardOptions = {}): Promise<VmOffboardResult> {
  const output = await runScript(session, offboardScript(options), {
    what: 'offboard',
    timeoutMs: options.timeoutMs ?? 10 * 60_000,
  });
  if (output.get('done') !== 'yes') throw new Error(`offboard on ${session.target} did not complete`);
  return {
    packageRemoved: output.get('package.removed') ?? null,
    removed: output.all('removed'),
    hostsBlockRemoved: output.get('hosts') === 'removed',
    withoutBaseline: output.get('baseline') === 'missing',
    endedProcesses: (output.get('killed') ?? '').split(/\s+/).filter(Boolean).map(Number),
  };
}
