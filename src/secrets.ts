// Every secret the run handles (kubeconfig and the credentials inside it, SSH key and passphrase,
// bootstrap tokens) is registered here before anything could print it. The action forwards each one
// to the runner's masker (core.setSecret); every line we write also goes through scrub().

import { parse as parseYaml } from 'yaml';
import { decodeKubeconfigText, secretsOfKubeconfig } from './cluster/credentials.js';

/**
 * Secrets at least this long are masked wherever they occur. Shorter ones (a short passphrase) are
 * masked too, but only as a whole word: masking every `abc` inside other words would garble the log
 * while telling a reader where the secret's letters are.
 */
const MIN_SECRET_LENGTH = 6;

export class SecretRegistry {
  private readonly values = new Set<string>();
  private readonly shortValues = new Set<string>();
  private readonly listeners: ((value: string) => void)[] = [];

  /**
   * Registers a secret, and by default each of its lines (a PEM key's lines are each secret; runners
   * mask a multi-line value line by line). perLine: false for documents such as a kubeconfig, whose
   * lines are mostly public structure: register their credential values one by one instead.
   */
  add(secret: string | undefined, options: { perLine?: boolean } = {}): void {
    if (!secret) return;
    const perLine = options.perLine ?? true;
    const candidates = [secret.trim(), ...(perLine ? secret.split(/\r?\n/).map((line) => line.trim()) : [])];
    for (const candidate of candidates) {
      if (candidate === '' || isPublicMarker(candidate) || this.values.has(candidate)) continue;
      if (candidate.length < MIN_SECRET_LENGTH) {
        // A line of a longer secret is never masked alone when short (a PEM's last line "xY=="):
        // only a short secret given whole is.
        if (candidate !== secret.trim() || this.shortValues.has(candidate)) continue;
        this.shortValues.add(candidate);
      } else this.values.add(candidate);
      for (const listener of this.listeners) listener(candidate);
    }
  }

  onAdd(listener: (value: string) => void): void {
    this.listeners.push(listener);
    for (const value of this.values) listener(value);
    for (const value of this.shortValues) listener(value);
  }

  /** Replaces every registered secret in the text with ***. Longest first, so parts never leak. */
  scrub(text: string): string {
    let result = text;
    for (const value of [...this.values].sort((a, b) => b.length - a.length)) {
      if (result.includes(value)) result = result.split(value).join('***');
    }
    for (const value of this.shortValues) {
      if (result.includes(value)) result = result.replace(wholeWord(value), '***');
    }
    return result;
  }

  has(text: string): boolean {
    for (const value of this.values) if (text.includes(value)) return true;
    for (const value of this.shortValues) if (wholeWord(value).test(text)) return true;
    return false;
  }
}

function wholeWord(value: string): RegExp {
  return new RegExp(`(?<![\\p{L}\\p{N}])${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}])`, 'gu');
}

/** Lines that are part of a secret's framing but say nothing secret (masking them would garble logs). */
function isPublicMarker(line: string): boolean {
  return /^-----(BEGIN|END) [A-Z ]+-----$/.test(line) || /^[a-z-]+:$/.test(line);
}

/**
 * Registers the secret inputs before anything can print them: the SSH key and passphrase whole and
 * line by line, the kubeconfig whole and each credential inside it (token, password, key and
 * certificate data, auth-provider and exec values).
 */
export function registerSecretInputs(
  secrets: SecretRegistry,
  get: (name: 'kubeconfig' | 'ssh-private-key' | 'ssh-private-key-passphrase') => string,
): void {
  secrets.add(get('ssh-private-key'));
  secrets.add(get('ssh-private-key-passphrase'));
  const kubeconfig = get('kubeconfig');
  secrets.add(kubeconfig, { perLine: false });
  if (kubeconfig.trim() === '') return;
  try {
    const text = decodeKubeconfigText(kubeconfig);
    secrets.add(text, { perLine: false });
    const parsed = parseYaml(text) as unknown;
    for (const value of secretsOfKubeconfig(parsed)) secrets.add(value, { perLine: false });
    for (const value of execPluginValues(parsed)) secrets.add(value, { perLine: false });
  } catch {
    // Not YAML: mask it line by line, since we cannot tell its parts apart.
    secrets.add(kubeconfig);
  }
}

/**
 * The arguments and environment values of every exec credential plugin in a kubeconfig
 * (users[].user.exec.args / .env[].value): plugins take tokens, client secrets and role ARNs there.
 */
export function execPluginValues(kubeconfig: unknown): string[] {
  const out: string[] = [];
  const users = (kubeconfig as { users?: unknown } | null)?.users;
  if (!Array.isArray(users)) return out;
  for (const entry of users) {
    const exec = (entry as { user?: { exec?: { args?: unknown; env?: unknown } } } | null)?.user?.exec;
    if (!exec) continue;
    if (Array.isArray(exec.args)) for (const arg of exec.args) if (typeof arg === 'string') out.push(arg);
    if (Array.isArray(exec.env)) {
      for (const variable of exec.env) {
        const value = (variable as { value?: unknown } | null)?.value;
        if (typeof value === 'string') out.push(value);
      }
    }
  }
  return out;
}

/** The environment variables through which the runner hands over the secret inputs. */
export const SECRET_INPUT_VARIABLES = ['INPUT_KUBECONFIG', 'INPUT_SSH-PRIVATE-KEY', 'INPUT_SSH-PRIVATE-KEY-PASSPHRASE'];

/**
 * Removes the secret inputs from the environment once they are read, so no child process (git, a
 * kubeconfig exec plugin, a package download) inherits the kubeconfig or the SSH key.
 */
export function forgetSecretInputs(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of SECRET_INPUT_VARIABLES) delete env[name];
}

/**
 * Text a VM (or anything outside the run) produced, made safe for the runner's log: the runner
 * executes a line starting with `::` as a workflow command (`::add-mask::`, `::error::`,
 * `::stop-commands::`). A zero-width space between the colons keeps the text readable and inert.
 */
export function neutralizeWorkflowCommands(text: string): string {
  return text.replace(/^(\s*):(?=:)/gmu, '$1:\u200b');
}
