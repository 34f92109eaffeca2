// The GitHub Actions adapter: inputs → settings → rollout → report, outputs, summary, exit code.
// @actions/* is used here and in nowhere else of the core.
import * as core from '@actions/core';
import * as exec from '@actions/exec';
import * as github from '@actions/github';
import { groupsChangedByPush } from './action-changes.js';
import { checkInputs } from './check-inputs.js';
import { InventoryError, loadInventory } from './inventory/index.js';
import type { Inventory } from './inventory/types.js';
import { computeOutputs, writeReport } from './report/outputs.js';
import { renderJobSummary } from './report/summary.js';
import { runFailed } from './report/model.js';
import type { RunLogger } from './rollout/ports.js';
import { runRollout } from './rollout/run.js';
import { RUN_FOLDER_STATE } from './runner-files.js';
import { createRuntime, redactInputs } from './runtime.js';
import { forgetSecretInputs, neutralizeWorkflowCommands, registerSecretInputs, SecretRegistry } from './secrets.js';
import {
  ignoredInputNotices,
  INPUT_DEFAULTS,
  readSettings,
  SettingsError,
  type InputName,
  type RunSettings,
} from './settings.js';
import { TOOL_VERSION } from './version.js';

/**
 * Called by the entry (src/main.ts) once this bundle is loaded, with the run folder it made for Node's
 * compile cache (saved in the job state before anything else, for the post step; cancelled before this,
 * the post step finds it in RUNNER_TEMP) or why it made none. Every error ends as a failed step.
 */
export async function runAction(start: { runFolder?: string; problem?: string }): Promise<void> {
  try {
    if (start.runFolder !== undefined) core.saveState(RUN_FOLDER_STATE, start.runFolder);
    if (start.problem !== undefined) core.debug(start.problem);
    await run();
  } catch (error) {
    core.setFailed(error instanceof Error ? error.message : String(error));
  }
}

async function run(): Promise<void> {
  const secrets = new SecretRegistry();
  secrets.onAdd((value) => core.setSecret(value));
  // Mask before anything else can print: secret inputs, and the credentials inside the kubeconfig.
  registerSecretInputs(secrets, (name) => core.getInput(name));
  const logger = actionLogger(secrets);
  const rawInputs = Object.fromEntries(
    (Object.keys(INPUT_DEFAULTS) as InputName[]).map((name) => [name, core.getInput(name)]),
  ) as Record<InputName, string>;
  forgetSecretInputs(process.env);

  let settings: RunSettings;
  let inventory: Inventory;
  try {
    settings = readSettings({ get: (name) => rawInputs[name] ?? '' }, process.env);
    inventory = await loadInventory(settings.inventory, process.env.GITHUB_WORKSPACE ?? process.cwd());
    // Every input is checked before the first Kubernetes request or SSH connection.
    checkInputs(settings, inventory, { env: process.env, cwd: process.cwd() });
  } catch (error) {
    reportBadInput(error, logger);
    return;
  }

  for (const notice of ignoredInputNotices(settings)) core.notice(notice);
  if (rawInputs.verify.trim() !== '') {
    core.warning("input 'verify' is deprecated: it is now called verify-after-onboard (same values)");
  }

  if (settings.changedGroupsOnly) {
    const workspace = process.env.GITHUB_WORKSPACE ?? process.cwd();
    const decision = await groupsChangedByPush(inventory, workspace, {
      eventName: github.context.eventName,
      before: (github.context.payload as { before?: string }).before,
      git: (args) => exec.getExecOutput('git', args, { cwd: workspace, silent: true, ignoreReturnCode: true }),
    });
    logger.info(`changed-groups-only: ${decision.reason}`);
    if (decision.groups !== 'all') {
      const wanted =
        settings.rollout.groups.length > 0
          ? decision.groups.filter((name) => settings.rollout.groups.includes(name))
          : decision.groups;
      if (wanted.length === 0) {
        core.setOutput('onboarded', '');
        core.setOutput('failed', '');
        core.setOutput('result', JSON.stringify({ ok: true, skipped: decision.reason }));
        if (process.env.GITHUB_STEP_SUMMARY)
          await core.summary.addRaw(`## istio-vm-onboard · nothing to do\n\n${decision.reason}\n`, true).write();
        return;
      }
      settings.rollout.groups = wanted;
    }
  }

  const runtime = await createRuntime(settings, inventory, { secrets, logger });
  const report = await runRollout(settings, inventory, {
    ...runtime,
    logger,
    toolVersion: TOOL_VERSION,
    redactedInputs: redactInputs(rawInputs),
  });
  await writeReport(report, settings.reportPath);
  const outputs = computeOutputs(report, settings.reportPath);
  for (const [name, value] of Object.entries(outputs)) core.setOutput(name, secrets.scrub(value));
  if (process.env.GITHUB_STEP_SUMMARY) {
    await core.summary.addRaw(secrets.scrub(renderJobSummary(report)), true).write();
  }
  for (const vm of report.vms) {
    if ((vm.error || vm.checks.some((check) => check.status === 'fail')) && vm.line !== undefined) {
      core.error(secrets.scrub(`${vm.name}: ${vm.error?.message ?? 'checks failed'}`), {
        title: `istio-vm-onboard: ${vm.name} ${vm.outcome}`,
        file: inventory.source,
        startLine: vm.line,
      });
    }
  }
  if (runFailed(report)) {
    const failed = outputs.failed ? ` (${outputs.failed})` : '';
    core.setFailed(
      secrets.scrub(
        report.fatal ? report.fatal.message : `${report.totals.failed} VM(s) failed${failed}; see the job summary`,
      ),
    );
  }
}

function reportBadInput(error: unknown, logger: RunLogger): void {
  if (error instanceof InventoryError) {
    for (const issue of error.issues) {
      logger.error(`${issue.path}: ${issue.message}`, {
        file: error.source,
        ...(issue.line !== undefined ? { line: issue.line } : {}),
      });
    }
    core.setFailed(error.message);
  } else if (error instanceof SettingsError) {
    core.setFailed(error.message);
  } else {
    core.setFailed(error instanceof Error ? error.message : String(error));
  }
  core.setOutput(
    'result',
    JSON.stringify({ ok: false, fatal: error instanceof Error ? error.message : String(error) }),
  );
  core.setOutput('onboarded', '');
  core.setOutput('failed', '');
}

function actionLogger(secrets: SecretRegistry): RunLogger {
  const annotation = (where?: { file?: string; line?: number }): core.AnnotationProperties | undefined =>
    where?.file ? { file: where.file, ...(where.line !== undefined ? { startLine: where.line } : {}) } : undefined;
  // Lines can carry what a VM said (package versions, logs): masked, and never a workflow command.
  const safe = (line: string): string => neutralizeWorkflowCommands(secrets.scrub(line));
  return {
    info: (line) => core.info(safe(line)),
    warning: (line, where) => core.warning(safe(line), annotation(where)),
    error: (line, where) => core.error(safe(line), annotation(where)),
    debug: (line) => core.debug(safe(line)),
    group: (title, lines) => {
      core.startGroup(safe(title));
      for (const line of lines) core.info(safe(line));
      core.endGroup();
    },
  };
}
