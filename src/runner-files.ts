// What the action leaves on the runner, and how the post step finds it again. The only file meant to
// stay is the report (where report-path says). Besides it the action keeps one folder, the run folder,
// under RUNNER_TEMP: Node's compile cache of the action's bundles (src/main.ts). Nothing else is
// written: keys, known_hosts and the kubeconfig are handled in memory (ssh2, @kubernetes/client-node
// loadFromString), and a kubeconfig exec credential plugin is the user's program, with its own files.
// No @actions/* here: the adapter passes the folder from main to post (core.saveState/getState).
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Name of the saved state (core.saveState) holding the run folder. */
export const RUN_FOLDER_STATE = 'run-folder';

/** The run folder for this job: stable across the action's steps in one job, so a later step reuses the cache. */
export function runFolderPath(env: NodeJS.ProcessEnv): string {
  return path.join(env.RUNNER_TEMP || tmpdir(), 'istio-vm-onboard');
}

/**
 * The folder the post step removes: the one the main step saved in the job state, else (it was cancelled
 * while dist/run.js was still loading, after the entry made the folder) the one it makes in this job's
 * RUNNER_TEMP — only on a runner, which gives each job its own RUNNER_TEMP, never in a shared temporary
 * directory. '' when there is none.
 */
export function runFolderToRemove(saved: string, env: NodeJS.ProcessEnv): string {
  if (saved !== '') return saved;
  return env.RUNNER_TEMP ? runFolderPath(env) : '';
}

/**
 * Removes the run folder named in the post step's state. Refuses anything that is not a folder named
 * istio-vm-onboard (state comes from a file of the job; never remove what it merely names). Returns
 * what was removed, or why nothing was.
 */
export async function removeRunFolder(saved: string): Promise<{ removed?: string; skipped?: string }> {
  if (saved === '') return { skipped: 'the main step saved no run folder (it did not get that far)' };
  const folder = path.resolve(saved);
  if (path.basename(folder) !== 'istio-vm-onboard' || folder !== saved) {
    return { skipped: `not removing ${JSON.stringify(saved)}: not a run folder of this action` };
  }
  await rm(folder, { recursive: true, force: true, maxRetries: 3 });
  return { removed: folder };
}
