// Entry point of the bundled action (dist/index.js). Kept small on purpose (@actions/core, the input
// defaults and the version only): it prints the first line — what the run is about to do — within
// milliseconds of `node dist/index.js`, then loads the rest (dist/run.js: the Kubernetes client, SSH,
// the rollout), like the CLI's entry (src/cli/load-heavy.ts).
import './shims/esm-cjs-globals.js';
import * as core from '@actions/core';
import { mkdirSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import path from 'node:path';
import { isInlineInventory } from './inventory/source.js';
import { RUN_FOLDER_STATE, runFolderPath } from './runner-files.js';
import { INPUT_DEFAULTS } from './settings.js';
import { TOOL_VERSION } from './version.js';

type ActionModule = typeof import('./action.js');

/** src/action.ts: bundled, the file run.js next to this entry; from the sources (tsx, jest), the module. */
async function loadAction(): Promise<ActionModule> {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return (await import(/* webpackIgnore: true */ './action.js')) as ActionModule;
  return (await import(/* webpackIgnore: true */ here.replace(/[^/]+$/, 'run.js'))) as ActionModule;
}

function firstLine(): string {
  const mode = core.getInput('mode') || INPUT_DEFAULTS.mode;
  const inventory = core.getInput('inventory');
  const source = inventory === '' ? '(none given)' : isInlineInventory(inventory) ? 'inline' : inventory.trim();
  return `istio-vm-onboard ${TOOL_VERSION}: mode ${mode}, inventory ${source}`;
}

/**
 * Node's compile cache for dist/run.js, in the run folder the post step removes. On a fresh runner the
 * cache is empty, so the first run of the action in a job gains nothing (it compiles as without a cache,
 * and writes ~2 MB of cache besides); a second use of the action in the same job (plan, then onboard;
 * onboard, then verify) loads run.js from the cache. `npm run bench` measures both (bench/lib/startup.ts).
 * Saved in the job state first, so the post step finds the folder even when this step is killed.
 */
function useCompileCache(): void {
  const folder = runFolderPath(process.env);
  try {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    core.saveState(RUN_FOLDER_STATE, folder);
    enableCompileCache(path.join(folder, 'compile-cache'));
  } catch (error) {
    core.debug(`no compile cache: ${error instanceof Error ? error.message : String(error)}`);
  }
}

core.info(firstLine());
useCompileCache();
try {
  const { run } = await loadAction();
  await run();
} catch (error) {
  core.setFailed(error instanceof Error ? error.message : String(error));
}
