// Entry point of the action's post step (dist/post.js; action.yml runs.post with post-if: always()):
// runs after the job's steps whether they passed, failed or were cancelled, and removes what the main
// step left on the runner (src/runner-files.ts). The report stays where report-path says.
import * as core from '@actions/core';
import { removeRunFolder, RUN_FOLDER_STATE, runFolderToRemove } from './runner-files.js';

try {
  const outcome = await removeRunFolder(runFolderToRemove(core.getState(RUN_FOLDER_STATE), process.env));
  if (outcome.removed) core.info(`removed ${outcome.removed}`);
  else core.info(`nothing to remove: ${outcome.skipped}`);
} catch (error) {
  // A leftover is worth a warning, not a failed job after the fact.
  core.warning(
    `could not remove the action's files from the runner: ${error instanceof Error ? error.message : String(error)}`,
  );
}
