// Every secret the run handles (kubeconfig and the credentials inside it, SSH key and passphrase,
// bootstrap tokens) is registered here before anything could print it. The action forwards each one
// to the runner's masker (core.setSecret); every line we write also goes through scrub().

const MIN_SECRET_LENGTH = 6;

export class SecretRegistry {
  private readonly values = new Set<string>();
  private readonly listeners: ((value: string) => void)[] = [];

  /** Registers a secret, and each of its lines (runners mask multi-line secrets line by line). */
  add(secret: string | undefined): void {
    if (!secret) return;
    const candidates = [secret.trim(), ...secret.split(/\r?\n/).map((line) => line.trim())];
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
