// Running a generated script on a VM and reading its line protocol (see shell.ts).
import type { ExecOptions, VmSession } from '../session.js';

export class ScriptOutput {
  private readonly values = new Map<string, string[]>();

  constructor(stdout: string) {
    for (const line of stdout.split('\n')) {
      const match = /^@@ivo(64)? (\S+)(?: (.*))?$/.exec(line.replace(/\r$/, ''));
      if (!match) continue;
      const [, encoded, key = '', raw = ''] = match;
      const value = encoded ? Buffer.from(raw.trim(), 'base64').toString('utf8') : raw;
      const list = this.values.get(key) ?? [];
      list.push(value);
      this.values.set(key, list);
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
        ? `sudo wants a terminal ("Defaults requiretty"): add "Defaults:${user} !requiretty" to /etc/sudoers.d/ on the VM`
        : `give ${user} passwordless sudo on the VM, e.g. "${user} ALL=(ALL) NOPASSWD: ALL" in /etc/sudoers.d/istio-vm-onboard (visudo -f)`;
    case 'lock-busy':
      return 'another istio-vm-onboard run is working on this VM; let it finish (or find it with: sudo fuser -v /run/istio-vm-onboard.lock), then rerun';
    case 'checksum':
      return 'the package at sidecar-package-url is not the one sidecar-package-sha256 names: check both (sha256sum istio-sidecar.deb)';
    case 'download':
      return 'the VM could not download the sidecar package: allow the VM to reach the URL, or let the runner upload the package';
    case 'disk-full':
      return 'free disk space on the VM (/var/lib needs room for the package and its files), then rerun';
    case 'package-arch':
      return 'use the package built for the VM architecture (sidecar-package-url with {arch})';
    case 'install':
      return 'see the package manager output above; dpkg/rpm must install istio-sidecar cleanly (dependencies: iproute2, iptables, sudo, hostname)';
    case 'restart':
      return 'the istio unit did not (re)start: see systemctl status istio and /var/log/istio/istio.err.log on the VM';
    case 'hosts-corrupt':
      return 'fix /etc/hosts by hand: the "# BEGIN istio-vm-onboard" block has no "# END istio-vm-onboard" line';
    case 'upload':
      return "the upload to the VM was cut or corrupted; rerun (nothing was changed in Istio's paths)";
    case 'snapshot-mismatch':
      return 'the previous state kept on the VM belongs to another run; inspect /var/lib/istio-vm-onboard/previous before restoring by hand';
    default:
      return undefined;
  }
}
