// `istio-vm-onboard onboard|plan|verify|offboard`: flags and INPUT_* variables → the same settings,
// rollout and report as the action, printed as a table.
import { checkInputs } from '../check-inputs.js';
import { InventoryError, loadInventory } from '../inventory/index.js';
import { renderTerminalTable } from '../report/table.js';
import { computeOutputs, writeReport } from '../report/outputs.js';
import { runFailed } from '../report/model.js';
import type { RunLogger } from '../rollout/ports.js';
import { runRollout } from '../rollout/run.js';
import { createRuntime, redactInputs } from '../runtime.js';
import { neutralizeWorkflowCommands, registerSecretInputs, SecretRegistry } from '../secrets.js';
import {
  ignoredInputNotices,
  INPUT_DEFAULTS,
  readSettings,
  SettingsError,
  type InputName,
  type Mode,
} from '../settings.js';
import { TOOL_VERSION } from '../version.js';

/** Flags whose value is a file to read, because the action's input is the file's content. */
const FILE_INPUTS: readonly InputName[] = ['kubeconfig', 'ssh-private-key', 'ssh-known-hosts'];

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  readFile(path: string): string;
}

export class UsageError extends Error {}

export function parseRunFlags(
  mode: Mode,
  argv: string[],
  io: CliIo,
): { inputs: Record<InputName, string>; json: boolean } {
  const inputs = Object.fromEntries((Object.keys(INPUT_DEFAULTS) as InputName[]).map((name) => [name, ''])) as Record<
    InputName,
    string
  >;
  for (const name of Object.keys(inputs) as InputName[]) {
    const fromEnv = io.env[`INPUT_${name.toUpperCase()}`];
    if (fromEnv !== undefined) inputs[name] = fromEnv;
  }
  let json = false;
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index]!;
    if (arg === '--json') {
      json = true;
      continue;
    }
    const match = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (!match) throw new UsageError(`unexpected argument '${arg}'`);
    const name = match[1] as InputName;
    if (!(name in INPUT_DEFAULTS) || name === 'mode') throw new UsageError(`unknown option '--${match[1]}'`);
    let value = match[2];
    if (value === undefined) {
      value = argv[index + 1];
      index += 1;
      if (value === undefined) throw new UsageError(`option '--${name}' needs a value`);
    }
    if (FILE_INPUTS.includes(name)) {
      try {
        value = io.readFile(value);
      } catch (error) {
        throw new UsageError(`--${name}: cannot read '${value}': ${(error as Error).message}`);
      }
    }
    inputs[name] = value;
  }
  inputs.mode = mode;
  return { inputs, json };
}

export async function runCliRun(mode: Mode, argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseRunFlags>;
  try {
    parsed = parseRunFlags(mode, argv, io);
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n(see istio-vm-onboard --help)\n`);
    return 2;
  }
  const secrets = new SecretRegistry();
  registerSecretInputs(secrets, (name) => parsed.inputs[name] ?? '');
  const logger = cliLogger(io, secrets);
  let settings;
  let inventory;
  try {
    settings = readSettings({ get: (name) => parsed.inputs[name] ?? '' }, io.env);
    inventory = await loadInventory(settings.inventory, process.cwd());
    checkInputs(settings, inventory, { env: io.env, cwd: process.cwd() });
  } catch (error) {
    if (error instanceof InventoryError || error instanceof SettingsError) {
      io.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  for (const notice of ignoredInputNotices(settings)) io.stderr.write(`notice: ${notice}\n`);
  const runtime = await createRuntime(settings, inventory, { secrets, logger });
  const report = await runRollout(settings, inventory, {
    ...runtime,
    logger,
    toolVersion: TOOL_VERSION,
    redactedInputs: redactInputs(parsed.inputs),
    progress: (state) =>
      io.stderr.write(
        `progress: ${state.done}/${state.total} VM(s) done, ${state.failed} ` +
          `failed${state.inFlight.length > 0 ? `; in flight: ${state.inFlight.join(', ')}` : ''}\n`,
      ),
  });
  await writeReport(report, settings.reportPath);
  if (parsed.json) io.stdout.write(`${secrets.scrub(JSON.stringify(report, null, 2))}\n`);
  else
    io.stdout.write(
      `\n${secrets.scrub(renderTerminalTable(report))}\nreport: ` +
        `${computeOutputs(report, settings.reportPath)['report-path']}\n`,
    );
  return runFailed(report) ? 1 : 0;
}

export function cliLogger(io: CliIo, secrets: SecretRegistry): RunLogger {
  const debug = io.env.ISTIO_VM_ONBOARD_DEBUG === '1' || io.env.RUNNER_DEBUG === '1';
  const write = (stream: CliIo['stdout'], line: string): void => {
    // The CLI may run in a workflow step: text from VMs must not become a workflow command there.
    stream.write(`${neutralizeWorkflowCommands(secrets.scrub(line))}\n`);
  };
  return {
    info: (line) => write(io.stderr, line),
    warning: (line, where) =>
      write(io.stderr, `warning: ${where?.file ? `${where.file}${where.line ? `:${where.line}` : ''}: ` : ''}${line}`),
    error: (line, where) =>
      write(io.stderr, `error: ${where?.file ? `${where.file}${where.line ? `:${where.line}` : ''}: ` : ''}${line}`),
    debug: (line) => {
      if (debug) write(io.stderr, `debug: ${line}`);
    },
    group: () => undefined,
  };
}
