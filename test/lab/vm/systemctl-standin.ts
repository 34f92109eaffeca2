// A small `systemctl` stand-in for the lab VMs (systemd is not PID 1 here). Installed in each VM as
// /usr/local/sbin/systemctl and /usr/bin/systemctl (a shell wrapper running this file, bundled, on Node).
//
// Reads real unit files from /lib/systemd/system/NAME.service (and /etc/systemd/system), honours
// ExecStartPre (with `+`/`-` prefixes), ExecStart, ExecStopPost, Environment(File), WorkingDirectory,
// Restart=always|on-failure with RestartSec, KillMode, TimeoutStopSec. Each started unit gets one
// supervisor process; pids and state live under /run/systemd-standin/ (so a reboot clears them) and
// "enabled" is the real symlink in /etc/systemd/system/<target>.wants/. Output of a unit's processes is
// appended to /var/log/journal-standin/NAME.log (what `status` shows as the journal tail).
import { spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import path from 'node:path';

const RUN_DIR = '/run/systemd-standin';
const JOURNAL_DIR = '/var/log/journal-standin';
const UNIT_DIRS = ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Respawns are bounded: after this many automatic restarts the unit is left failed. */
const MAX_AUTO_RESTARTS = 1000;
const START_WAIT_MS = 60_000;

interface Unit {
  name: string;
  file: string;
  description: string;
  execStartPre: string[];
  execStart: string;
  execStopPost: string[];
  restart: string;
  restartSec: number;
  killMode: string;
  timeoutStopSec: number;
  environment: Record<string, string>;
  environmentFiles: string[];
  workingDirectory: string;
  wantedBy: string[];
}

interface UnitState {
  ActiveState: 'active' | 'activating' | 'deactivating' | 'inactive' | 'failed';
  SubState: string;
  NRestarts: number;
  MainPID: number;
  SupervisorPID: number;
  ExecMainStartTimestamp: string;
  ExecMainStatus: number | null;
  Result: string;
  /** Attempt counter of the current supervisor, so `start` can wait for this run's result. */
  Generation: string;
}

function unitName(arg: string): string {
  return arg.includes('.') ? arg : `${arg}.service`;
}

function findUnitFile(name: string): string | undefined {
  for (const dir of UNIT_DIRS) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

/** Splits a systemd command line: whitespace-separated words, "double" and 'single' quotes, backslashes. */
export function splitCommandLine(line: string, env: Record<string, string>): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && i + 1 < line.length) current += line[++i];
      else current += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words.map((w) => w.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => env[a ?? b] ?? ''));
}

function parseSeconds(value: string, fallback: number): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|min|m)?$/.exec(value.trim());
  if (!m) return fallback;
  const n = Number(m[1]);
  switch (m[2]) {
    case 'ms':
      return n / 1000;
    case 'min':
    case 'm':
      return n * 60;
    default:
      return n;
  }
}

function loadUnit(name: string): Unit | undefined {
  const file = findUnitFile(name);
  if (!file) return undefined;
  const unit: Unit = {
    name,
    file,
    description: name,
    execStartPre: [],
    execStart: '',
    execStopPost: [],
    restart: 'no',
    restartSec: 0.1,
    killMode: 'control-group',
    timeoutStopSec: 90,
    environment: {},
    environmentFiles: [],
    workingDirectory: '/',
    wantedBy: [],
  };
  // The unit file, then its drop-ins (NAME.service.d/*.conf in every unit directory, in file-name
  // order, as systemd reads them). An empty `ExecStartPre=` (or ExecStopPost=) resets the list.
  for (const source of [file, ...dropInFiles(name)]) applyUnitText(unit, readFileSync(source, 'utf8'));
  return unit;
}

function dropInFiles(name: string): string[] {
  const byName = new Map<string, string>();
  for (const dir of [...UNIT_DIRS].reverse()) {
    const dropDir = path.join(dir, `${name}.d`);
    let entries: string[] = [];
    try {
      entries = readdirSync(dropDir);
    } catch {
      continue;
    }
    for (const entry of entries) if (entry.endsWith('.conf')) byName.set(entry, path.join(dropDir, entry));
  }
  return [...byName.keys()].sort().map((entry) => byName.get(entry)!);
}

function applyUnitText(unit: Unit, text: string): void {
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    switch (key) {
      case 'Description':
        unit.description = value;
        break;
      case 'ExecStartPre':
        if (value === '') unit.execStartPre = [];
        else unit.execStartPre.push(value);
        break;
      case 'ExecStart':
        unit.execStart = value;
        break;
      case 'ExecStopPost':
        if (value === '') unit.execStopPost = [];
        else unit.execStopPost.push(value);
        break;
      case 'Restart':
        unit.restart = value;
        break;
      case 'RestartSec':
        unit.restartSec = parseSeconds(value, 0.1);
        break;
      case 'KillMode':
        unit.killMode = value;
        break;
      case 'TimeoutStopSec':
        unit.timeoutStopSec = parseSeconds(value, 90);
        break;
      case 'WorkingDirectory':
        unit.workingDirectory = value.replace(/^-/, '');
        break;
      case 'Environment':
        for (const word of splitCommandLine(value, {})) {
          const i = word.indexOf('=');
          if (i > 0) unit.environment[word.slice(0, i)] = word.slice(i + 1);
        }
        break;
      case 'EnvironmentFile':
        unit.environmentFiles.push(value);
        break;
      case 'WantedBy':
        unit.wantedBy.push(...value.split(/\s+/).filter(Boolean));
        break;
      default:
        break;
    }
  }
}

function statePath(name: string): string {
  return path.join(RUN_DIR, `${name}.json`);
}

function readState(name: string): UnitState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(name), 'utf8')) as UnitState;
  } catch {
    return undefined;
  }
}

function writeState(name: string, state: UnitState): void {
  mkdirSync(RUN_DIR, { recursive: true });
  const tmp = `${statePath(name)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state) + '\n');
  renameSync(tmp, statePath(name));
}

function pidAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to root (a non-root `systemctl is-active`).
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A zombie is not alive.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function supervisorPid(name: string): number {
  try {
    return Number(readFileSync(path.join(RUN_DIR, `${name}.supervisor.pid`), 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function isRunning(name: string): boolean {
  return pidAlive(supervisorPid(name));
}

function currentState(name: string): UnitState {
  const state = readState(name);
  if (state && (isRunning(name) || state.ActiveState === 'failed')) return state;
  return {
    ActiveState: state?.ActiveState === 'failed' ? 'failed' : 'inactive',
    SubState: 'dead',
    NRestarts: state?.NRestarts ?? 0,
    MainPID: 0,
    SupervisorPID: 0,
    ExecMainStartTimestamp: state?.ExecMainStartTimestamp ?? '',
    ExecMainStatus: state?.ExecMainStatus ?? null,
    Result: state?.Result ?? 'success',
    Generation: state?.Generation ?? '',
  };
}

function wantsLinks(name: string): string[] {
  const links: string[] = [];
  const base = '/etc/systemd/system';
  let entries: string[] = [];
  try {
    entries = readdirSync(base).filter((e) => e.endsWith('.wants'));
  } catch {
    return links;
  }
  for (const dir of entries) {
    const link = path.join(base, dir, name);
    try {
      readlinkSync(link);
      links.push(link);
    } catch {
      // not there
    }
  }
  return links;
}

function isEnabled(name: string): boolean {
  return wantsLinks(name).length > 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function journal(name: string, text: string): void {
  mkdirSync(JOURNAL_DIR, { recursive: true });
  appendFileSync(path.join(JOURNAL_DIR, `${name}.log`), text);
}

function stamp(): string {
  return new Date().toISOString();
}

// ---------------------------------------------------------------------------------------------
// Supervisor (one per started unit)

function serviceEnv(unit: Unit): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH, LANG: 'C.UTF-8', INVOCATION_ID: String(process.pid) };
  for (const spec of unit.environmentFiles) {
    const optional = spec.startsWith('-');
    const file = optional ? spec.slice(1) : spec;
    try {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const m = /^\s*(?:export\s+)?([A-Za-z_]\w*)=(.*)$/.exec(line);
        if (m) env[m[1] as string] = (m[2] as string).replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
      }
    } catch {
      if (!optional) throw new Error(`EnvironmentFile ${file} not readable`);
    }
  }
  Object.assign(env, unit.environment);
  return env;
}

function spawnCommand(
  unit: Unit,
  commandLine: string,
  env: Record<string, string>,
): { child: ChildProcess; ignoreFailure: boolean } {
  let line = commandLine;
  let ignoreFailure = false;
  while (/^[@\-:+!]/.test(line)) {
    if (line.startsWith('-')) ignoreFailure = true;
    line = line.slice(1);
  }
  const argv = splitCommandLine(line, env);
  const [file, ...args] = argv;
  if (!file) throw new Error(`empty command in ${unit.file}`);
  const fd = openSync(path.join(JOURNAL_DIR, `${unit.name}.log`), 'a');
  const child = spawn(file, args, {
    cwd: unit.workingDirectory,
    env,
    stdio: ['ignore', fd, fd],
    detached: true, // own process group: KillMode acts on it
  });
  closeSync(fd);
  return { child, ignoreFailure };
}

function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('error', () => resolve({ code: 203, signal: null }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

async function runSequential(unit: Unit, lines: string[], env: Record<string, string>): Promise<boolean> {
  for (const line of lines) {
    const { child, ignoreFailure } = spawnCommand(unit, line, env);
    const { code } = await waitExit(child);
    if (code !== 0 && !ignoreFailure) {
      journal(unit.name, `${stamp()} systemctl-standin: ${line} failed with ${code}\n`);
      return false;
    }
  }
  return true;
}

/** A process as identified by pid and start time (so a reused pid is never mistaken for it). */
interface Member {
  pid: number;
  startTime: string;
}

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Every live descendant of pid, read from /proc (systemd would know them from the unit's cgroup). */
function descendantsOf(root: number): Member[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited while reading
    }
  }
  const found: Member[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0 && found.length < 10_000) {
    const pid = queue.shift()!;
    const startTime = startTimeOf(pid);
    if (startTime) found.push({ pid, startTime });
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** The unit's "control group": the main process's descendants seen while it ran (some re-parent away). */
class UnitMembers {
  private readonly members = new Map<number, string>();
  private timer: NodeJS.Timeout | undefined;

  watch(mainPid: number): void {
    const refresh = (): void => {
      for (const member of descendantsOf(mainPid)) this.members.set(member.pid, member.startTime);
    };
    refresh();
    this.timer = setInterval(refresh, 500);
  }

  unwatch(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * SIGKILL whatever is left of the group: what systemd does after the main process of
   * KillMode=mixed/control-group exits.
   */
  killRemaining(): void {
    for (const [pid, startTime] of this.members) {
      if (startTimeOf(pid) !== startTime) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.members.clear();
  }
}

async function supervise(name: string): Promise<void> {
  const unit = loadUnit(name);
  if (!unit) process.exit(5);
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(JOURNAL_DIR, { recursive: true });
  writeFileSync(path.join(RUN_DIR, `${name}.supervisor.pid`), `${process.pid}\n`);
  const generation = process.env.SYSTEMCTL_STANDIN_GENERATION ?? String(process.pid);
  const state: UnitState = {
    ActiveState: 'activating',
    SubState: 'start-pre',
    NRestarts: 0,
    MainPID: 0,
    SupervisorPID: process.pid,
    ExecMainStartTimestamp: '',
    ExecMainStatus: null,
    Result: 'success',
    Generation: generation,
  };
  writeState(name, state);
  let stopping = false;
  let main: ChildProcess | undefined;
  const members = new UnitMembers();
  let wake: (() => void) | undefined;
  const onStop = (): void => {
    stopping = true;
    wake?.();
    if (main?.pid) {
      const target = unit.killMode === 'mixed' || unit.killMode === 'process' ? main.pid : -main.pid;
      try {
        process.kill(target, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {});

  for (let attempt = 0; ; attempt++) {
    let env: Record<string, string>;
    try {
      env = serviceEnv(unit);
    } catch (e) {
      journal(name, `${stamp()} systemctl-standin: ${(e as Error).message}\n`);
      Object.assign(state, { ActiveState: 'failed', SubState: 'failed', Result: 'resources', MainPID: 0 });
      writeState(name, state);
      break;
    }
    Object.assign(state, { ActiveState: 'activating', SubState: 'start-pre', MainPID: 0 });
    writeState(name, state);
    const preOk = await runSequential(unit, unit.execStartPre, env);
    let exit: { code: number | null; signal: NodeJS.Signals | null } = { code: 1, signal: null };
    if (preOk && !stopping) {
      main = spawnCommand(unit, unit.execStart, env).child;
      Object.assign(state, {
        ActiveState: 'active',
        SubState: 'running',
        MainPID: main.pid ?? 0,
        ExecMainStartTimestamp: new Date().toISOString(),
      });
      writeFileSync(path.join(RUN_DIR, `${name}.main.pid`), `${main.pid ?? 0}\n`);
      writeState(name, state);
      if (main.pid) members.watch(main.pid);
      exit = await waitExit(main);
      members.unwatch();
      // KillMode=mixed / control-group: whatever is left of the group goes now (also children that
      // left the process group, e.g. through sudo's pty).
      if (unit.killMode !== 'process') {
        try {
          if (main.pid) process.kill(-main.pid, 'SIGKILL');
        } catch {
          // group already empty
        }
        members.killRemaining();
      }
      state.ExecMainStatus = exit.code;
    }
    Object.assign(state, { ActiveState: 'deactivating', SubState: 'stop-post', MainPID: 0 });
    writeState(name, state);
    rmSync(path.join(RUN_DIR, `${name}.main.pid`), { force: true });
    await runSequential(unit, unit.execStopPost, env);
    const failed = !preOk || exit.code !== 0;
    const restart = !stopping && (unit.restart === 'always' || (unit.restart === 'on-failure' && failed));
    if (!restart || state.NRestarts >= MAX_AUTO_RESTARTS) {
      Object.assign(state, {
        ActiveState: stopping || !failed ? 'inactive' : 'failed',
        SubState: stopping || !failed ? 'dead' : 'failed',
        Result: stopping || !failed ? 'success' : exit.signal ? 'signal' : 'exit-code',
      });
      writeState(name, state);
      break;
    }
    Object.assign(state, {
      ActiveState: 'activating',
      SubState: 'auto-restart',
      Result: exit.signal ? 'signal' : 'exit-code',
    });
    writeState(name, state);
    journal(name, `${stamp()} systemctl-standin: ${name}: scheduled restart in ${unit.restartSec}s\n`);
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, unit.restartSec * 1000);
    });
    wake = undefined;
    if (stopping) {
      Object.assign(state, { ActiveState: 'inactive', SubState: 'dead', Result: 'success' });
      writeState(name, state);
      break;
    }
    state.NRestarts += 1;
    journal(name, `${stamp()} systemctl-standin: ${name}: restart counter is at ${state.NRestarts}\n`);
  }
  rmSync(path.join(RUN_DIR, `${name}.supervisor.pid`), { force: true });
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Commands

async function start(name: string): Promise<number> {
  const unit = loadUnit(name);
  if (!unit) {
    process.stderr.write(`Failed to start ${name}: Unit ${name} not found.\n`);
    return 5;
  }
  if (isRunning(name)) return 0;
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(JOURNAL_DIR, { recursive: true });
  const generation = `${process.pid}-${Date.now()}`;
  const self = process.argv[1] as string;
  const child = spawn(process.execPath, [self, '__supervise', name], {
    detached: true,
    stdio: 'ignore',
    cwd: '/',
    env: { PATH: DEFAULT_PATH, SYSTEMCTL_STANDIN_GENERATION: generation },
  });
  child.unref();
  const deadline = Date.now() + START_WAIT_MS;
  while (Date.now() < deadline) {
    const state = readState(name);
    if (state && state.Generation === generation) {
      if (state.ActiveState === 'active') return 0;
      if (state.ActiveState === 'failed' || (state.SubState === 'auto-restart' && state.ActiveState === 'activating')) {
        process.stderr.write(
          `Job for ${name} failed because the control process exited with error code.\nSee "systemctl status ${name}" for details.\n`,
        );
        return 1;
      }
    }
    await sleep(25);
  }
  process.stderr.write(`Job for ${name} timed out.\n`);
  return 1;
}

async function stop(name: string): Promise<number> {
  const unit = loadUnit(name);
  if (!unit) {
    process.stderr.write(`Failed to stop ${name}: Unit ${name} not loaded.\n`);
    return 5;
  }
  const pid = supervisorPid(name);
  if (!pidAlive(pid)) {
    const state = readState(name);
    if (state && state.ActiveState !== 'failed')
      writeState(name, { ...state, ActiveState: 'inactive', SubState: 'dead', MainPID: 0 });
    return 0;
  }
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 0;
  }
  const limitMs = Math.min(unit.timeoutStopSec, 30) * 1000 + 5000;
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline && pidAlive(pid)) await sleep(25);
  if (pidAlive(pid)) {
    const state = readState(name);
    for (const target of [state?.MainPID ? -state.MainPID : 0, pid]) {
      try {
        if (target) process.kill(target, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(path.join(RUN_DIR, `${name}.supervisor.pid`), { force: true });
    if (state) writeState(name, { ...state, ActiveState: 'failed', SubState: 'failed', Result: 'timeout', MainPID: 0 });
  }
  return 0;
}

function enable(name: string): number {
  const unit = loadUnit(name);
  if (!unit) {
    process.stderr.write(`Failed to enable unit: Unit file ${name} does not exist.\n`);
    return 1;
  }
  const targets = unit.wantedBy.length ? unit.wantedBy : ['multi-user.target'];
  for (const target of targets) {
    const dir = path.join('/etc/systemd/system', `${target}.wants`);
    mkdirSync(dir, { recursive: true });
    const link = path.join(dir, name);
    if (!existsSync(link)) {
      symlinkSync(unit.file, link);
      process.stderr.write(`Created symlink ${link} → ${unit.file}.\n`);
    }
  }
  return 0;
}

function disable(name: string): number {
  for (const link of wantsLinks(name)) {
    unlinkSync(link);
    process.stderr.write(`Removed "${link}".\n`);
  }
  return 0;
}

/** systemd's timestamp format in `show` (`Thu 2026-11-26 03:05:27 UTC`; the lab VMs run in UTC); '' stays ''. */
function systemdTimestamp(iso: string): string {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()];
  return `${day} ${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC`;
}

function showProperty(name: string, prop: string): string {
  const state = currentState(name);
  const unit = loadUnit(name);
  switch (prop) {
    case 'NRestarts':
      return String(state.NRestarts);
    case 'ActiveState':
      return state.ActiveState;
    case 'SubState':
      return state.SubState;
    case 'MainPID':
      return String(state.MainPID);
    case 'Result':
      return state.Result;
    case 'ExecMainStatus':
      return String(state.ExecMainStatus ?? 0);
    case 'ExecMainStartTimestamp':
      return systemdTimestamp(state.ExecMainStartTimestamp);
    case 'LoadState':
      return unit ? 'loaded' : 'not-found';
    case 'UnitFileState':
      return unit ? (isEnabled(name) ? 'enabled' : 'disabled') : '';
    case 'FragmentPath':
      return unit?.file ?? '';
    case 'Id':
      return name;
    case 'Description':
      return unit?.description ?? '';
    case 'Restart':
      return unit?.restart ?? '';
    default:
      return '';
  }
}

function status(name: string): number {
  const unit = loadUnit(name);
  if (!unit) {
    process.stderr.write(`Unit ${name} could not be found.\n`);
    return 4;
  }
  const state = currentState(name);
  const enabled = isEnabled(name) ? 'enabled' : 'disabled';
  const since = state.ExecMainStartTimestamp ? ` since ${state.ExecMainStartTimestamp}` : '';
  const lines = [
    `● ${name} - ${unit.description}`,
    `     Loaded: loaded (${unit.file}; ${enabled}; preset: enabled)`,
    `     Active: ${state.ActiveState} (${state.SubState})${state.ActiveState === 'active' ? since : ''}`,
  ];
  if (state.MainPID) lines.push(`   Main PID: ${state.MainPID}`);
  if (state.NRestarts) lines.push(`   Restarts: ${state.NRestarts}`);
  let tail: string[] = [];
  try {
    tail = readFileSync(path.join(JOURNAL_DIR, `${name}.log`), 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-10);
  } catch {
    // no journal yet
  }
  process.stdout.write(lines.join('\n') + '\n' + (tail.length ? '\n' + tail.join('\n') + '\n' : ''));
  return state.ActiveState === 'active' ? 0 : 3;
}

function enabledUnits(): string[] {
  const base = '/etc/systemd/system';
  const names = new Set<string>();
  try {
    for (const dir of readdirSync(base).filter((e) => e.endsWith('.wants'))) {
      for (const entry of readdirSync(path.join(base, dir))) if (entry.endsWith('.service')) names.add(entry);
    }
  } catch {
    // none
  }
  return [...names].sort();
}

function activeUnits(): string[] {
  try {
    return readdirSync(RUN_DIR)
      .filter((f) => f.endsWith('.supervisor.pid'))
      .map((f) => f.slice(0, -'.supervisor.pid'.length))
      .filter(isRunning);
  } catch {
    return [];
  }
}

async function main(argv: string[]): Promise<number> {
  const flags = new Set(argv.filter((a) => a.startsWith('-')));
  const props: string[] = [];
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-p' || a === '--property') props.push(...(argv[++i] ?? '').split(','));
    else if (a.startsWith('--property=')) props.push(...a.slice('--property='.length).split(','));
    else if (a.startsWith('-p') && a.length > 2) props.push(...a.slice(2).split(','));
    else if (!a.startsWith('-')) words.push(a);
  }
  const [verb, ...rest] = words;
  const names = rest.map(unitName);
  const quiet = flags.has('-q') || flags.has('--quiet');
  switch (verb) {
    case '__supervise':
      await supervise(names[0] as string);
      return 0;
    case '__boot': {
      let rc = 0;
      for (const name of enabledUnits()) rc = Math.max(rc, await start(name));
      return rc;
    }
    case '__shutdown': {
      await Promise.all(activeUnits().map((n) => stop(n)));
      return 0;
    }
    case 'daemon-reload':
    case 'reset-failed':
      return 0;
    case 'start': {
      let rc = 0;
      for (const n of names) rc = Math.max(rc, await start(n));
      return rc;
    }
    case 'stop': {
      let rc = 0;
      for (const n of names) rc = Math.max(rc, await stop(n));
      return rc;
    }
    case 'restart':
    case 'reload-or-restart':
    case 'try-restart': {
      let rc = 0;
      for (const n of names) {
        if (verb === 'try-restart' && !isRunning(n)) continue;
        await stop(n);
        rc = Math.max(rc, await start(n));
      }
      return rc;
    }
    case 'enable': {
      let rc = 0;
      for (const n of names) rc = Math.max(rc, enable(n));
      if (rc === 0 && flags.has('--now')) for (const n of names) rc = Math.max(rc, await start(n));
      return rc;
    }
    case 'disable': {
      let rc = 0;
      for (const n of names) rc = Math.max(rc, disable(n));
      if (flags.has('--now')) for (const n of names) await stop(n);
      return rc;
    }
    case 'is-active': {
      let rc = 0;
      for (const n of names) {
        const s = loadUnit(n) ? currentState(n).ActiveState : 'inactive';
        if (!quiet) process.stdout.write(`${s}\n`);
        if (s !== 'active') rc = 3;
      }
      return rc;
    }
    case 'is-failed': {
      let rc = 1;
      for (const n of names) {
        const s = currentState(n).ActiveState;
        if (!quiet) process.stdout.write(`${s}\n`);
        if (s === 'failed') rc = 0;
      }
      return rc;
    }
    case 'is-enabled': {
      let rc = 0;
      for (const n of names) {
        if (!loadUnit(n)) {
          process.stderr.write(`Failed to get unit file state for ${n}: No such file or directory\n`);
          rc = 1;
          continue;
        }
        const e = isEnabled(n);
        if (!quiet) process.stdout.write(`${e ? 'enabled' : 'disabled'}\n`);
        if (!e) rc = 1;
      }
      return rc;
    }
    case 'status': {
      let rc = 0;
      for (const n of names) rc = Math.max(rc, status(n));
      return rc;
    }
    case 'show': {
      const wanted = props.length
        ? props
        : ['Id', 'ActiveState', 'SubState', 'MainPID', 'NRestarts', 'UnitFileState', 'LoadState'];
      const valueOnly = flags.has('--value');
      for (const n of names) {
        for (const p of wanted)
          process.stdout.write(valueOnly ? `${showProperty(n, p)}\n` : `${p}=${showProperty(n, p)}\n`);
      }
      return 0;
    }
    case 'list-units': {
      for (const n of activeUnits())
        process.stdout.write(`${n} loaded active running ${loadUnit(n)?.description ?? ''}\n`);
      return 0;
    }
    default:
      process.stderr.write(`systemctl (lab stand-in): unsupported command ${verb ?? '(none)'}\n`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (process.argv[2] !== '__supervise') process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`systemctl (lab stand-in): ${(e as Error).message}\n`);
    process.exit(1);
  },
);
