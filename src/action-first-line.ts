// The action's first log line, before anything else is loaded. Free of @actions/* and of every library
// on purpose: the entry (src/main.ts) prints this line within ~40 ms of `node dist/index.js`, and
// @actions/core alone (with the HTTP client it bundles) takes ~60 ms more to load; the adapter
// (src/action.ts) loads it afterwards. Nothing here may read a secret input.
import { isInlineInventory } from './inventory/source.js';
import { INPUT_DEFAULTS } from './settings.js';
import { TOOL_VERSION } from './version.js';

/** The inputs the first line names: neither is a secret input (kubeconfig, SSH key, passphrase). */
type FirstLineInput = 'mode' | 'inventory';

/**
 * An input as the runner hands it over (INPUT_<NAME>, spaces as underscores, upper case) and as
 * @actions/core's getInput returns it (trimmed, '' when unset). A unit test holds the two together.
 */
export function inputFromEnvironment(name: FirstLineInput, env: NodeJS.ProcessEnv): string {
  return (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
}

/** `istio-vm-onboard VERSION: mode MODE, inventory SOURCE` (SOURCE: a path, inline, or (none given)). */
export function firstLine(env: NodeJS.ProcessEnv): string {
  const mode = inputFromEnvironment('mode', env) || INPUT_DEFAULTS.mode;
  const inventory = inputFromEnvironment('inventory', env);
  const source = inventory === '' ? '(none given)' : isInlineInventory(inventory) ? 'inline' : inventory;
  return `istio-vm-onboard ${TOOL_VERSION}: mode ${mode}, inventory ${source}`;
}
