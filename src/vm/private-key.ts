// Reads the PUBLIC half of the SSH private key we were given, only to name it in messages
// (`ssh-ed25519 SHA256:…`), and checks that the SSH client can parse the key before anything connects.
// The private part is never printed or stored here.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import ssh2 from 'ssh2';
import { fingerprintSha256 } from './known-hosts.js';

export interface PrivateKeyDescription {
  type: string;
  fingerprint: string;
  /** The key is passphrase-protected (OpenSSH format says so in its header). */
  encrypted: boolean;
}

export function describePrivateKey(text: string, passphrase?: string): PrivateKeyDescription | undefined {
  try {
    const openssh = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
    if (openssh?.[1]) return describeOpenSshKey(Buffer.from(openssh[1].replace(/\s+/g, ''), 'base64'));
    return describePemKey(text, passphrase);
  } catch {
    return undefined;
  }
}

function describeOpenSshKey(raw: Buffer): PrivateKeyDescription | undefined {
  const magic = 'openssh-key-v1\0';
  if (raw.subarray(0, magic.length).toString('latin1') !== magic) return undefined;
  let offset = magic.length;
  const readString = (): Buffer => {
    const length = raw.readUInt32BE(offset);
    const value = raw.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
    return value;
  };
  const cipher = readString().toString('latin1');
  readString(); // kdf name
  readString(); // kdf options
  const count = raw.readUInt32BE(offset);
  offset += 4;
  if (count < 1) return undefined;
  const blob = readString();
  const typeLength = blob.readUInt32BE(0);
  return {
    type: blob.subarray(4, 4 + typeLength).toString('latin1'),
    fingerprint: fingerprintSha256(blob),
    encrypted: cipher !== 'none',
  };
}

function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function sshMpint(unsigned: Buffer): Buffer {
  let bytes = unsigned;
  while (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1);
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return sshString(bytes);
}

function describePemKey(text: string, passphrase?: string): PrivateKeyDescription | undefined {
  const encrypted = /ENCRYPTED/.test(text);
  const key = createPublicKey(
    createPrivateKey(passphrase ? { key: text, format: 'pem', passphrase } : { key: text, format: 'pem' }),
  );
  const jwk = key.export({ format: 'jwk' });
  const b64 = (value: string | undefined): Buffer => Buffer.from(value ?? '', 'base64url');
  let type: string;
  let blob: Buffer;
  if (jwk.kty === 'RSA') {
    type = 'ssh-rsa';
    blob = Buffer.concat([sshString(type), sshMpint(b64(jwk.e)), sshMpint(b64(jwk.n))]);
  } else if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    type = 'ssh-ed25519';
    blob = Buffer.concat([sshString(type), sshString(b64(jwk.x))]);
  } else if (jwk.kty === 'EC' && jwk.crv) {
    const curve = { 'P-256': 'nistp256', 'P-384': 'nistp384', 'P-521': 'nistp521' }[jwk.crv];
    if (!curve) return undefined;
    type = `ecdsa-sha2-${curve}`;
    const point = Buffer.concat([Buffer.from([4]), b64(jwk.x), b64(jwk.y)]);
    blob = Buffer.concat([sshString(type), sshString(curve), sshString(point)]);
  } else {
    return undefined;
  }
  return { type, fingerprint: fingerprintSha256(blob), encrypted };
}

/** What is wrong with the ssh-private-key / ssh-private-key-passphrase pair, or undefined when ssh2 can use it. */
export interface PrivateKeyProblem {
  input: 'ssh-private-key' | 'ssh-private-key-passphrase';
  detail: string;
}

const KEY_FORMATS =
  'an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----, as ssh-keygen writes it) or a PEM RSA/EC key';

/**
 * Parses the key as the SSH connection will (ssh2's parser, which node-ssh hands the key to). The
 * messages never quote the key or ssh2's error text (which can echo decoded key bytes).
 */
export function privateKeyProblem(text: string, passphrase: string): PrivateKeyProblem | undefined {
  const parsed = ssh2.utils.parseKey(text, passphrase === '' ? undefined : passphrase);
  if (!(parsed instanceof Error)) {
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || !key.isPrivateKey()) {
      return { input: 'ssh-private-key', detail: `is a public key; give ${KEY_FORMATS}` };
    }
    return undefined;
  }
  const reason = parsed.message;
  if (/no passphrase given/i.test(reason)) {
    return {
      input: 'ssh-private-key-passphrase',
      detail: 'is required: ssh-private-key is passphrase-protected (give its passphrase, or a key without one)',
    };
  }
  if (passphrase !== '' && /bad passphrase|integrity check failed|bad decrypt/i.test(reason)) {
    return { input: 'ssh-private-key-passphrase', detail: 'does not decrypt ssh-private-key (wrong passphrase)' };
  }
  if (/-----BEGIN (ENCRYPTED )?PRIVATE KEY-----/.test(text)) {
    return {
      input: 'ssh-private-key',
      detail:
        `is a PKCS#8 key, which the SSH client cannot read; convert it with \`ssh-keygen -p ` +
        `-f KEYFILE\` (OpenSSH format) and give ${KEY_FORMATS}`,
    };
  }
  const framed = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text);
  return {
    input: 'ssh-private-key',
    detail: framed
      ? `cannot be parsed: the -----BEGIN … PRIVATE KEY----- block does not hold a valid key ` +
        `(damaged or truncated secret?); give ${KEY_FORMATS}`
      : `is not a private key; give ${KEY_FORMATS}`,
  };
}
