// Removes secrets from text before it becomes evidence (logs, reports, job summary).

const PATTERNS: [RegExp, string][] = [
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, '[redacted private key]'],
  // JWTs (Kubernetes service-account / bootstrap tokens).
  [/eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '[redacted token]'],
  [/(\bBearer\s+)[^\s"',]+/gi, '$1[redacted]'],
  [/((?:token|password|passwd|secret|client-key-data|private[_-]?key)["']?\s*[:=]\s*["']?)[^\s"',]+/gi, '$1[redacted]'],
];

export function scrubSecrets(text: string, knownSecrets: readonly string[] = []): string {
  let out = text;
  for (const secret of knownSecrets) {
    if (secret.length >= 6) out = out.split(secret).join('[redacted]');
  }
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
