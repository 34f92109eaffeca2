// Entry point of the bundled action (dist/index.js). Kept small on purpose: no @actions/* and no
// library, only Node's own modules and src/action-first-line.ts. It prints the first line — what the
// run is about to do — within milliseconds of `node dist/index.js`, then loads the rest (dist/run.js:
// @actions/core, the Kubernetes client, SSH, the rollout), like the CLI's entry (src/cli/load-heavy.ts).
// `npm run bench` measures both (bench/lib/startup.ts; BENCH_ONLY=startup runs that part alone).
import './shims/esm-cjs-globals.js';
import { mkdirSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { EOL } from 'node:os';
import path from 'node:path';
import { firstLine } from './action-first-line.js';
import { runFolderPath } from './runner-files.js';

type ActionModule = typeof import('./action.js');

/** src/action.ts: bundled, the file run.js next to this entry; from the sources (tsx, jest), the module. */
async function loadAction(): Promise<ActionModule> {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return (await import(/* webpackIgnore: true */ './action.js')) as ActionModule;
  return (await import(/* webpackIgnore: true */ here.replace(/[^/]+$/, 'run.js'))) as ActionModule;
}

/**
 * Node's compile cache for dist/run.js, in the run folder the post step removes. On a fresh runner the
 * cache is empty, so the first run of the action in a job gains nothing (it compiles as without a cache,
 * and writes ~2 MB of cache as it exits); a second use of the action in the same job (plan, then
 * onboard; onboard, then verify) loads run.js from the cache. Returns the folder, or why there is none
 * (the adapter saves the one and logs the other as debug, once @actions/core is loaded).
 */
function useCompileCache(): { runFolder?: string; problem?: string } {
  const folder = runFolderPath(process.env);
  try {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const { message } = enableCompileCache(path.join(folder, 'compile-cache'));
    return { runFolder: folder, ...(message !== undefined ? { problem: `compile cache not used: ${message}` } : {}) };
  } catch (error) {
    return { problem: `no compile cache: ${error instanceof Error ? error.message : String(error)}` };
  }
}

// What @actions/core's info() writes; that module is not loaded yet. The line names no secret input, so
// it may come before the secrets' ::add-mask:: commands (src/action.ts registers them first thing).
process.stdout.write(firstLine(process.env) + EOL);
const cache = useCompileCache();
// If run.js cannot be loaded, the import throws: Node prints the error and exits with code 1.
const { runAction } = await loadAction();
await runAction(cache);
