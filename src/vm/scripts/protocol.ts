// The one protocol of the scripts the runner sends to a VM (the VM layer's and the verification's):
// the prelude every script starts with (protocol.sh), how values reach a script (a header of quoted
// assignments, never text pasted into its body), how a script runs as root, and how its output is
// framed and parsed. The scripts themselves are .sh files next to the code that sends them.
import { readFileSync } from 'node:fs';
import type { ExecOptions, VmSession } from '../session.js';

/** Output framing functions (`ivo_emit`, `ivo_emit64`, `ivo_emit_file`, `ivo_fail`, `ivo_section`). */
export const PROTOCOL_PRELUDE = readFileSync(new URL('./protocol.sh', import.meta.url), 'utf8');
/** PATH and locale of the scripts that inspect or change a VM. */
const ENVIRONMENT = readFileSync(new URL('./environment.sh', import.meta.url), 'utf8');
const AS_ROOT = readFileSync(new URL('./as-root.sh', import.meta.url), 'utf8');

/** Single-quotes a value for POSIX sh: safe for any text (NUL bytes cannot be passed and are rejected). */
export function shQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a value for a remote shell command contains a NUL byte');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export type ScriptValues = Record<string, string | number>;

/** A piece of a script: shell text (a .sh file) and the values it reads. */
export interface ShellPart {
  values?: ScriptValues;
  text: string;
}

/**
 * The header that passes values to a script: one quoted assignment per value. Names are upper case
 * (the scripts' own variables are lower case `ivo_…`), so a value never meets the shell as code.
 */
export function scriptHeader(values: ScriptValues): string {
  return Object.entries(values)
    .map(([name, value]) => {
      if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`script value name must be upper case: ${name}`);
      return `${name}=${shQuote(String(value))}\n`;
    })
    .join('');
}

/**
 * A self-contained script: the values of all its parts in one header, the protocol prelude, then the
 * parts' texts in order. Two parts may not pass different values under one name.
 */
export function composeScript(...parts: ShellPart[]): string {
  const values: ScriptValues = {};
  for (const part of parts) {
    for (const [name, value] of Object.entries(part.values ?? {})) {
      if (name in values && String(values[name]) !== String(value)) {
        throw new Error(`two parts of a script pass different values as ${name}`);
      }
      values[name] = value;
    }
  }
  return [scriptHeader(values), PROTOCOL_PRELUDE, ...parts.map((part) => part.text)].join('\n');
}

/** Exit code of the wrapper when `sudo -n` does not work for the login user. */
export const SUDO_FAILED_EXIT = 3;

/**
 * A script that runs `rootScript` (composed) as root. As the login user it runs `userPart` (facts that
 * need no root), reports the user name, proves `sudo -n` works (reporting sudo's own words when it does
 * not), then replaces itself with `sudo -n /bin/sh -c ROOT-SCRIPT`, so the caller's stdin reaches the
 * root script untouched. Both run in the VM environment (environment.sh).
 */
export function asRoot(rootScript: string, userPart: ShellPart = { text: '' }): string {
  return composeScript(
    {
      values: { IVO_ROOT_SCRIPT: `${ENVIRONMENT}\n${rootScript}`, IVO_SUDO_FAILED_EXIT: SUDO_FAILED_EXIT },
      text: ENVIRONMENT,
    },
    userPart,
    { text: AS_ROOT },
  );
}

/** A script (composed) that runs as the login user, in the VM environment (reads localhost URLs, etc.). */
export function asUser(script: string): string {
  return `${ENVIRONMENT}\n${script}`;
}

/** One section of a script's output: a command's or an HTTP read's outcome. */
export interface ScriptSection {
  name: string;
  /** Exit code of curl / the command. */
  rc: number;
  /** HTTP status for reads (`000` = no response); `000` for commands. */
  http: string;
  body: string;
  stderr: string;
}

const RECORD = /^@@ivo(64)? (\S+)(?: (.*))?$/;
const SECTION = /^(\S+) rc=(-?\d+) http=(\d{3})$/;

/** The records a script printed (see protocol.sh), by key; complete sections by name. */
export class ScriptOutput {
  private readonly values = new Map<string, string[]>();
  readonly sections = new Map<string, ScriptSection>();

  constructor(stdout: string) {
    for (const line of stdout.split('\n')) {
      const match = RECORD.exec(line.replace(/\r$/, ''));
      if (!match) continue;
      const [, encoded, key = '', raw = ''] = match;
      const value = encoded ? Buffer.from(raw.trim(), 'base64').toString('utf8') : raw;
      const list = this.values.get(key) ?? [];
      list.push(value);
      this.values.set(key, list);
      const section = key === 'section' ? SECTION.exec(value) : null;
      if (section) {
        const name = section[1]!;
        this.sections.set(name, {
          name,
          rc: Number(section[2]),
          http: section[3]!,
          body: this.get(`${name}.body`) ?? '',
          stderr: this.get(`${name}.err`) ?? '',
        });
      }
    }
  }

  /** The last value of KEY, if the script printed it. */
  get(key: string): string | undefined {
    const list = this.values.get(key);
    return list?.[list.length - 1];
  }

  all(key: string): string[] {
    return this.values.get(key) ?? [];
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  /** Whether the script printed any record at all (a script that could not run prints none). */
  get empty(): boolean {
    return this.values.size === 0;
  }

  /** The `error:CODE` the script reported, if any. */
  error(): { code: string; message: string } | undefined {
    for (const [key, list] of this.values) {
      if (key.startsWith('error:')) return { code: key.slice('error:'.length), message: list[list.length - 1] ?? '' };
    }
    return undefined;
  }
}

/** A remote script failed for a reason it named (or exited non-zero without one). */
export class VmScriptError extends Error {
  constructor(
    readonly target: string,
    /** What failed: `sudo`, `lock-busy`, `checksum`, `download`, `disk-full`, `install`, `restart`, … */
    readonly code: string,
    message: string,
    readonly hint?: string,
    /** What the script printed before it failed. */
    readonly output?: ScriptOutput,
  ) {
    super(message);
    this.name = 'VmScriptError';
  }
}

export interface RunOptions extends ExecOptions {
  /** For messages: `inspect`, `apply`, … */
  what: string;
}

/** Runs one script (one round trip) and returns its output; a named failure becomes VmScriptError. */
export async function runScript(session: VmSession, script: string, options: RunOptions): Promise<ScriptOutput> {
  const result = await session.exec(script, options);
  const output = new ScriptOutput(result.stdout);
  const error = output.error();
  if (error) {
    throw new VmScriptError(
      session.target,
      error.code,
      describeFailure(session.target, error.code, error.message, output),
      hintFor(error.code, output),
      output,
    );
  }
  if (result.code !== 0) {
    const tail = result.stderr.trim().split('\n').slice(-5).join(' | ');
    throw new VmScriptError(
      session.target,
      'script',
      `${options.what} on ${session.target} exited ${result.code}${tail ? `: ${tail}` : ''}`,
      undefined,
      output,
    );
  }
  return output;
}
function describeFailure(target: string, code: string, message: string, output: ScriptOutput): string {
  const detail = message.trim();
  if (code === 'sudo') {
    const user = output.get('user') || 'the login user';
    return `sudo -n does not work on ${target} for user ${user}: ${detail || 'no reason given'}`;
  }
  return `${code} failed on ${target}: ${detail}`;
}

function hintFor(code: string, output: ScriptOutput): string | undefined {
  const user = output.get('user') || 'USER';
  switch (code) {
    case 'sudo':
      return /tty/i.test(output.get('error:sudo') ?? '')
        ? `sudo wants a terminal ("Defaults requiretty"): add "Defaults:${user} !requiretty" ` +
            'to /etc/sudoers.d/ on the VM'
        : `give ${user} passwordless sudo on the VM, e.g. "${user} ALL=(ALL) NOPASSWD: ALL" in ` +
            '/etc/sudoers.d/istio-vm-onboard (visudo -f)';
    case 'lock-busy':
      return (
        'another istio-vm-onboard run is working on this VM; let it finish ' +
        '(or find it with: sudo fuser -v /run/istio-vm-onboard.lock), then rerun'
      );
    case 'checksum':
      return (
        'the package at sidecar-package-url is not the one sidecar-package-sha256 names: ' +
        'check both (sha256sum istio-sidecar.deb)'
      );
    case 'download':
      return (
        'the VM could not download the sidecar package: ' +
        'allow the VM to reach the URL, or let the runner upload the package'
      );
    case 'disk-full':
      return 'free disk space on the VM (/var/lib needs room for the package and its files), then rerun';
    case 'package-arch':
      return 'use the package built for the VM architecture (sidecar-package-url with {arch})';
    case 'install':
      return (
        'see the package manager output above; dpkg/rpm must install istio-sidecar cleanly ' +
        '(dependencies: iproute2, iptables, sudo, hostname)'
      );
    case 'restart':
      return 'the istio unit did not (re)start: see systemctl status istio and /var/log/istio/istio.err.log on the VM';
    case 'hosts-corrupt':
      return 'fix /etc/hosts by hand: the "# BEGIN istio-vm-onboard" block has no "# END istio-vm-onboard" line';
    case 'upload':
      return "the upload to the VM was cut or corrupted; rerun (nothing was changed in Istio's paths)";
    case 'snapshot-mismatch':
      return (
        'the previous state kept on the VM belongs to another run; ' +
        'inspect /var/lib/istio-vm-onboard/previous before restoring by hand'
      );
    default:
      return undefined;
  }
}
