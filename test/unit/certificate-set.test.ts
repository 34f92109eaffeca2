// A PEM bundle compared as the set of certificates it holds (src/render/certificate-set.ts), and the same
// comparison in the VM scripts (`ivo_same_as certificates`, common.sh), run through the real `sh` and `awk`:
// pilot-agent rewrites /etc/certs/root-cert.pem with the roots deduplicated, sorted, without a final newline.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { certificateSet, sameCertificates } from '../../src/render/certificate-set.js';
import { changeFunctions } from '../../src/vm/scripts/common.js';
import { composeScript } from '../../src/vm/scripts/protocol.js';
import { VM_FILES } from '../../src/vm/paths.js';

/** A PEM block whose body is `seed` repeated (64-column lines, as PEM writers wrap). */
function pem(seed: string): string {
  const body = seed.repeat(40);
  const lines = body.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}
const R1 = pem('AAAA');
const R2 = pem('BBBB');
/** How pilot-agent writes a bundle: each once, sorted, joined by one newline, no final newline. */
const asAgentWrites = (...blocks: string[]) => [...new Set(blocks.map((b) => b.trimEnd()))].sort().join('\n');

describe('certificateSet / sameCertificates', () => {
  it('a bundle in another order, with a root repeated and without the final newline, holds the same roots', () => {
    expect(sameCertificates(R1 + R2 + R2, asAgentWrites(R2, R1))).toBe(true);
    expect(certificateSet(R2 + R1 + R2)).toHaveLength(2);
  });
  it('line breaks inside a certificate do not matter; its bytes do', () => {
    expect(sameCertificates(R1, R1.replace(/\n(?!-)/g, '\r\n'))).toBe(true);
    expect(sameCertificates(R1, pem('AAAB'))).toBe(false);
  });
  it('a root added or dropped is a change; an empty or certificate-less file never matches', () => {
    expect(sameCertificates(R1 + R2, R1)).toBe(false);
    expect(sameCertificates(R1, R1 + R2)).toBe(false);
    expect(sameCertificates('', '')).toBe(false);
    expect(sameCertificates('not a certificate\n', 'not a certificate\n')).toBe(false);
  });
  it('root-cert.pem is the one managed file compared as certificates', () => {
    expect(VM_FILES.filter((file) => file.comparedAs === 'certificates').map((file) => file.path)).toEqual([
      '/etc/certs/root-cert.pem',
    ]);
  });
});

describe('ivo_same_as in the VM scripts', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ivo certificate set '));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function sameAs(how: 'bytes' | 'certificates', staged: string, onVm: string | undefined): boolean {
    writeFileSync(path.join(dir, 'staged'), staged);
    rmSync(path.join(dir, 'on vm'), { force: true });
    if (onVm !== undefined) writeFileSync(path.join(dir, 'on vm'), onVm);
    const script = composeScript(changeFunctions(), { text: `ivo_same_as ${how} staged 'on vm'` });
    const result = spawnSync('sh', ['-c', script], { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0 && result.status !== 1) throw new Error(result.stderr);
    return result.status === 0;
  }

  it('certificates: what pilot-agent wrote counts as unchanged; another root set as changed', () => {
    expect(sameAs('certificates', R1 + R2 + R2, asAgentWrites(R1, R2))).toBe(true);
    expect(sameAs('certificates', R1 + R2, asAgentWrites(R1))).toBe(false);
    expect(sameAs('certificates', R1, undefined)).toBe(false);
    expect(sameAs('certificates', '', '')).toBe(false);
  });
  it('bytes: any difference is a change (the other managed files)', () => {
    expect(sameAs('bytes', R1, R1)).toBe(true);
    expect(sameAs('bytes', R1, asAgentWrites(R1))).toBe(false);
  });
});
