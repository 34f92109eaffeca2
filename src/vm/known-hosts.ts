// OpenSSH known_hosts handling for pinning VM host keys: plain, `[host]:port`, wildcard, negated and
// hashed (`|1|salt|hmac`) host patterns; `@revoked` lines; key types ed25519 / ecdsa / rsa.
// Format facts from sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"; our own implementation.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface KnownHostKey {
  /** Key type as written in the file, e.g. `ssh-ed25519`. */
  type: string;
  /** The public key blob (SSH wire format). */
  blob: Buffer;
  /** 1-based line in the known_hosts text. */
  line: number;
  revoked: boolean;
}

interface KnownHostsEntry extends KnownHostKey {
  patterns: string[];
  certAuthority: boolean;
}

export const SUPPORTED_HOST_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
] as const;

/** Parses known_hosts text; lines it cannot read are skipped (OpenSSH does the same). */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const fields = trimmed.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]?.startsWith('@')) marker = fields.shift();
    const [hosts, type, base64] = fields;
    if (!hosts || !type || !base64) return;
    const blob = Buffer.from(base64, 'base64');
    if (blob.length === 0 || keyTypeOfBlob(blob) !== type) return;
    entries.push({
      patterns: hosts.split(','),
      type,
      blob,
      line: index + 1,
      revoked: marker === '@revoked',
      certAuthority: marker === '@cert-authority',
    });
  });
  return entries;
}

const MARKERS = ['@cert-authority', '@revoked'];

/**
 * The lines of known_hosts text that are not known_hosts lines (parseKnownHosts skips them, as
 * OpenSSH does; an input is checked before it is used, so a typo is reported instead of pinning nothing).
 */
export function knownHostsProblems(text: string): { line: number; message: string }[] {
  const problems: { line: number; message: string }[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const fields = trimmed.split(/\s+/);
    const problem = (message: string): void => void problems.push({ line: index + 1, message });
    if (fields[0]?.startsWith('@') && !MARKERS.includes(fields.shift()!)) {
      return problem(`unknown marker (only ${MARKERS.join(' and ')})`);
    }
    const [hosts, type, base64] = fields;
    if (!hosts || !type || !base64) return problem('has fewer than three fields (hosts, key type, key)');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return problem(`the key of type ${type} is not base64`);
    const blobType = keyTypeOfBlob(Buffer.from(base64, 'base64'));
    if (blobType === '') return problem(`the key of type ${type} is not an SSH public key`);
    if (blobType !== type) return problem(`the line says ${type} but the key is ${blobType}`);
  });
  return problems;
}

/** The name OpenSSH looks up for host + port: `host` on 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The host keys known_hosts pins for host:port (revoked ones listed separately). CA lines are ignored. */
export function hostKeysFor(
  text: string,
  host: string,
  port: number,
): { keys: KnownHostKey[]; revoked: KnownHostKey[] } {
  const name = knownHostsName(host, port);
  const keys: KnownHostKey[] = [];
  const revoked: KnownHostKey[] = [];
  for (const entry of parseKnownHosts(text)) {
    if (entry.certAuthority) continue;
    if (!entry.revoked && !patternsMatch(entry.patterns, name)) continue;
    const key = { type: entry.type, blob: entry.blob, line: entry.line, revoked: entry.revoked };
    // A revoked key is revoked for every host.
    (entry.revoked ? revoked : keys).push(key);
  }
  return { keys, revoked };
}

function patternsMatch(patterns: string[], name: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    if (pattern.startsWith('|1|')) {
      if (hashedMatches(pattern, name)) matched = true;
      continue;
    }
    const negated = pattern.startsWith('!');
    const glob = negated ? pattern.slice(1) : pattern;
    if (globMatches(glob.toLowerCase(), name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function hashedMatches(pattern: string, name: string): boolean {
  const [, , salt, hash] = pattern.split('|');
  if (!salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function globMatches(glob: string, text: string): boolean {
  const source = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`).test(text);
}

/** The key type named at the start of an SSH public key blob (`ssh-ed25519`, …), or '' if unreadable. */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return '';
  const length = blob.readUInt32BE(0);
  if (length <= 0 || length > 64 || 4 + length > blob.length) return '';
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** `SHA256:…` as `ssh-keygen -lf` prints it. */
export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** A known_hosts line for a learned key (trust on first use). */
export function knownHostsLine(host: string, port: number, blob: Buffer): string {
  return `${knownHostsName(host, port)} ${keyTypeOfBlob(blob)} ${blob.toString('base64')}`;
}

/** Host key algorithms to offer so the server presents a key type we have pinned (OpenSSH does the same). */
export function hostKeyAlgorithmsFor(types: string[]): string[] {
  const algorithms: string[] = [];
  for (const type of types) {
    const forType = type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
    for (const algorithm of forType) if (!algorithms.includes(algorithm)) algorithms.push(algorithm);
  }
  return algorithms;
}
