import { describe, expect, it, beforeAll, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  fingerprintSha256,
  hostKeyAlgorithmsFor,
  hostKeysFor,
  knownHostsLine,
  knownHostsName,
  parseKnownHosts,
} from '../../src/vm/known-hosts.js';
import { describePrivateKey } from '../../src/vm/private-key.js';

let dir: string;
const keys: Record<string, { pub: string; blob: Buffer; fingerprint: string; privateKey: string }> = {};

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vm-known-hosts-'));
  for (const [name, args] of Object.entries({
    ed25519: ['-t', 'ed25519'],
    ecdsa: ['-t', 'ecdsa', '-b', '256'],
    rsa: ['-t', 'rsa', '-b', '2048'],
  })) {
    const file = path.join(dir, name);
    execFileSync('ssh-keygen', [...args, '-q', '-N', '', '-f', file]);
    const pub = readFileSync(`${file}.pub`, 'utf8').trim();
    const blob = Buffer.from(pub.split(' ')[1]!, 'base64');
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], {
      encoding: 'utf8',
    }).split(' ')[1]!;
    keys[name] = { pub, blob, fingerprint, privateKey: readFileSync(file, 'utf8') };
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = (hosts: string, name: string): string => `${hosts} ${keys[name]!.pub.split(' ').slice(0, 2).join(' ')}`;

describe('known_hosts', () => {
  it('computes the same SHA256 fingerprint as ssh-keygen -l', () => {
    for (const key of Object.values(keys)) expect(fingerprintSha256(key.blob)).toBe(key.fingerprint);
  });

  it('matches plain hosts on port 22 and [host]:port otherwise, never across ports', () => {
    const text = [entry('10.0.0.1', 'ed25519'), entry('[10.0.0.1]:2222', 'rsa'), '# comment', '', 'garbage line'].join(
      '\n',
    );
    expect(hostKeysFor(text, '10.0.0.1', 22).keys.map((key) => key.type)).toEqual(['ssh-ed25519']);
    expect(hostKeysFor(text, '10.0.0.1', 2222).keys.map((key) => key.type)).toEqual(['ssh-rsa']);
    expect(hostKeysFor(text, '10.0.0.2', 22).keys).toHaveLength(0);
    expect(knownHostsName('h', 22)).toBe('h');
    expect(knownHostsName('h', 2222)).toBe('[h]:2222');
  });

  it('matches hashed entries written by ssh-keygen -H, and comma lists, wildcards and negation', () => {
    const file = path.join(dir, 'kh');
    writeFileSync(file, `${entry('vm1.example,10.0.0.5', 'ecdsa')}\n${entry('[10.0.0.6]:2200', 'ed25519')}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const hashed = readFileSync(file, 'utf8');
    expect(hashed).toContain('|1|');
    expect(hashed).not.toContain('10.0.0.5');
    expect(hostKeysFor(hashed, '10.0.0.5', 22).keys.map((key) => key.type)).toEqual(['ecdsa-sha2-nistp256']);
    expect(hostKeysFor(hashed, 'vm1.example', 22).keys).toHaveLength(1);
    expect(hostKeysFor(hashed, '10.0.0.6', 2200).keys.map((key) => key.type)).toEqual(['ssh-ed25519']);
    expect(hostKeysFor(hashed, '10.0.0.6', 22).keys).toHaveLength(0);
    const globbed = `${entry('10.1.*,!10.1.0.9', 'rsa')}\n`;
    expect(hostKeysFor(globbed, '10.1.0.3', 22).keys).toHaveLength(1);
    expect(hostKeysFor(globbed, '10.1.0.9', 22).keys).toHaveLength(0);
  });

  it('lists @revoked keys apart and ignores @cert-authority lines', () => {
    const text = `@revoked * ${keys.rsa!.pub.split(' ').slice(0, 2).join(' ')}\n@cert-authority * ${keys.ecdsa!.pub.split(' ').slice(0, 2).join(' ')}\n${entry('h', 'ed25519')}`;
    const found = hostKeysFor(text, 'h', 22);
    expect(found.keys.map((key) => key.type)).toEqual(['ssh-ed25519']);
    expect(found.revoked.map((key) => key.type)).toEqual(['ssh-rsa']);
  });

  it('skips a line whose declared type does not match its key blob', () => {
    const [, b64] = keys.ed25519!.pub.split(' ');
    expect(parseKnownHosts(`h ssh-rsa ${b64}`)).toHaveLength(0);
  });

  it('writes a learned line that it can read back', () => {
    const line = knownHostsLine('10.0.0.7', 2222, keys.ed25519!.blob);
    expect(line.startsWith('[10.0.0.7]:2222 ssh-ed25519 ')).toBe(true);
    expect(hostKeysFor(line, '10.0.0.7', 2222).keys[0]!.blob.equals(keys.ed25519!.blob)).toBe(true);
  });

  it('offers host key algorithms for the pinned types (rsa with its sha2 variants)', () => {
    expect(hostKeyAlgorithmsFor(['ssh-rsa', 'ssh-ed25519', 'ssh-rsa'])).toEqual([
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
      'ssh-ed25519',
    ]);
  });
});

describe('private key description (for messages only)', () => {
  it('names OpenSSH keys by the fingerprint ssh-keygen gives their public half', () => {
    for (const [name, key] of Object.entries(keys)) {
      const description = describePrivateKey(key.privateKey);
      expect(description?.fingerprint).toBe(key.fingerprint);
      expect(description?.encrypted).toBe(false);
      expect(description?.type).toBe(key.pub.split(' ')[0]);
      expect(name).toBeTruthy();
    }
  });

  it('reports a passphrase-protected key as encrypted, and PEM keys too', () => {
    const file = path.join(dir, 'enc');
    execFileSync('ssh-keygen', ['-t', 'ed25519', '-q', '-N', 'secret-pass', '-f', file]);
    expect(describePrivateKey(readFileSync(file, 'utf8'))?.encrypted).toBe(true);
    const pem = path.join(dir, 'pem');
    execFileSync('ssh-keygen', ['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-q', '-N', '', '-f', pem]);
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${pem}.pub`], {
      encoding: 'utf8',
    }).split(' ')[1];
    expect(describePrivateKey(readFileSync(pem, 'utf8'))?.fingerprint).toBe(fingerprint);
    expect(describePrivateKey('not a key')).toBeUndefined();
  });
});
