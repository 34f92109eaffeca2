// Rollback (one round trip, rollback.sh): put back the files, hosts block and package version kept by the last
// apply that changed something, and restart. A first install (nothing to go back to) is stopped,
// disabled and marked with /var/lib/istio-vm-onboard/FAILED and the reason.
import { readFileSync } from 'node:fs';
import { ISTIO_PATHS, ONBOARD_PATHS } from '../paths.js';
import type { VmSession } from '../session.js';
import { changeFunctions } from './common.js';
import { HOSTS_FUNCTIONS } from './hosts-block.js';
import { managedFilesPart } from './managed-files.js';
import { asRoot, composeScript, runScript } from './protocol.js';

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
  /** The run being undone re-bootstrapped the VM: its fresh token stays (the old one is of no use). */
  freshTokenKept: boolean;
}

const ROLLBACK = readFileSync(new URL('./rollback.sh', import.meta.url), 'utf8');

export function rollbackScript(options: RollbackOptions): string {
  const root = composeScript(
    changeFunctions({ lockWaitSeconds: options.lockWaitSeconds ?? 30 }),
    HOSTS_FUNCTIONS,
    managedFilesPart(),
    {
      values: {
        IVO_STATE_DIR: ONBOARD_PATHS.stateDir,
        IVO_REASON: options.reason.replace(/[\r\n]+/g, ' '),
        IVO_EXPECT_SNAPSHOT: options.expectSnapshotId ?? '',
        IVO_HOSTS: ISTIO_PATHS.hosts,
        IVO_UNIT: ISTIO_PATHS.unitName,
        IVO_FAILED_MARKER: ONBOARD_PATHS.failedMarker,
      },
      text: ROLLBACK,
    },
  );
  return asRoot(root);
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
    freshTokenKept: output.get('token.kept') === 'fresh',
  };
}
