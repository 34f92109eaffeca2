// Every secret the run handles (kubeconfig and the credentials inside it, SSH key and passphrase,
// bootstrap tokens) is registered here before anything could print it. The action forwards each one
// to the runner's masker (core.setSecret); every line we write also goes through scrub().

import { parse as parseYaml } from 'yaml';
import { decodeKubeconfigText, secretsOfKubeconfig } from './cluster/credentials.js';

const MIN_SECRET_LENGTH = 6;

export class SecretRegistry {
  private readonly values = new Set<string>();
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
      if (candidate.length < MIN_SECRET_LENGTH || isPublicMarker(candidate) || this.values.has(candidate)) continue;
      this.values.add(candidate);
      for (const listener of this.listeners) listener(candidate);
    }
  }

  onAdd(listener: (value: string) => void): void {
    this.listeners.push(listener);
    for (const value of this.values) listener(value);
  }

  /** Replaces every registered secret in the text with ***. Longest first, so parts never leak. */
  scrub(text: string): string {
    let result = text;
    for (const value of [...this.values].sort((a, b) => b.length - a.length)) {
      if (result.includes(value)) result = result.split(value).join('***');
    }
    return result;
  }

  has(text: string): boolean {
    for (const value of this.values) if (text.includes(value)) return true;
    return false;
  }
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
    for (const value of secretsOfKubeconfig(parseYaml(text))) secrets.add(value, { perLine: false });
  } catch {
    // Not YAML: mask it line by line, since we cannot tell its parts apart.
    secrets.add(kubeconfig);
  }
}
