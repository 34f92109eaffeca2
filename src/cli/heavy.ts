// The CLI's second bundle (dist/cli/run.js, see scripts/build.mjs): everything that needs the
// Kubernetes client or SSH. The entry (src/cli.ts) loads it through loadHeavy() only when a command
// needs it, so render, rbac and help start fast and small.
export { runCliRun } from './run-command.js';
export { createClusterClient, loadKubeConfig } from '../cluster/index.js';
