// Offboard (one round trip, offboard.sh): stop and disable the sidecar, remove our files, the drop-in, the hosts
// block and the package, then whatever the package or we created that was not there before the first
// onboarding (recorded in /var/lib/istio-vm-onboard/baseline), and finally our state directory.
import { readFileSync } from 'node:fs';
import { BASELINE_PATHS, ISTIO_PATHS, ONBOARD_PATHS } from '../paths.js';
import type { VmSession } from '../session.js';
import { changeFunctions } from './common.js';
import { HOSTS_FUNCTIONS } from './hosts-block.js';
import { managedFilesPart, parentDir } from './managed-files.js';
import { asRoot, composeScript, runScript } from './protocol.js';

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

const OFFBOARD = readFileSync(new URL('./offboard.sh', import.meta.url), 'utf8');

export function offboardScript(options: OffboardOptions = {}): string {
  const root = composeScript(
    changeFunctions({ lockWaitSeconds: options.lockWaitSeconds ?? 30 }),
    HOSTS_FUNCTIONS,
    managedFilesPart(),
    {
      values: {
        IVO_STATE_DIR: ONBOARD_PATHS.stateDir,
        IVO_HOSTS: ISTIO_PATHS.hosts,
        IVO_UNIT: ISTIO_PATHS.unitName,
        IVO_BASELINE_PATHS: BASELINE_PATHS.join('\n'),
        IVO_OWN_DIRS: [parentDir(ONBOARD_PATHS.persistentToken), parentDir(ONBOARD_PATHS.dropIn)].join('\n'),
      },
      text: OFFBOARD,
    },
  );
  return asRoot(root);
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
