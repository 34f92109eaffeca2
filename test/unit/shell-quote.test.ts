// shellQuote must behave exactly like istio's pkg/util/shellescape.Quote (raw-string regexp:
// the only safe characters are \ w @ % + = : , . / -), and quoted values must survive /bin/sh.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { isIstioShellSafe, shellQuote, shellQuoteLossless } from '../../src/render/shell-quote.js';

const SAFE = new Set(['\\', 'w', '@', '%', '+', '=', ':', ',', '.', '/', '-']);

/** What /bin/sh prints for `printf %s <quoted>`. */
function shellEvaluate(quoted: string): Buffer {
  const result = spawnSync('/bin/sh', ['-c', `printf %s ${quoted}`], { timeout: 5000 });
  if (result.status !== 0) throw new Error(`sh failed (${result.status}): ${result.stderr.toString()}`);
  return result.stdout;
}

const noNul = (s: string): boolean => !s.includes('\0');

describe('shellQuote (istio shellescape semantics)', () => {
  it.each([
    ['', "''"],
    ['latest', "'latest'"],
    ['10.10.10.10', "'10.10.10.10'"],
    ['*', "'*'"],
    ['true', "'true'"],
    ['w', 'w'],
    ['www', 'www'],
    ['@%+=:,./-', '@%+=:,./-'],
    ['\\w', '\\w'],
    ['\\', '\\'],
    ["it's", `'it'"'"'s'`],
    ['a b', "'a b'"],
    ['{"a":"b"}', `'{"a":"b"}'`],
    ['ünï', "'ünï'"],
  ])('%j → %s', (input, expected) => {
    expect(shellQuote(input)).toBe(expected);
  });

  it("leaves a value unquoted exactly when every character is one of istio's safe characters", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('\\', 'w', '@', 'a', '1', '-', '.', "'", ' ', '*') }), (s) => {
        const safe = s.length > 0 && Array.from(s).every((c) => SAFE.has(c));
        expect(isIstioShellSafe(s) && s.length > 0).toBe(safe);
        expect(shellQuote(s)).toBe(safe ? s : s === '' ? "''" : `'${s.replaceAll("'", `'"'"'`)}'`);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips arbitrary strings through real /bin/sh (every value istio quotes, or without backslash)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }).filter(noNul), (s) => {
        const quoted = shellQuote(s);
        fc.pre(quoted.startsWith("'") || !s.includes('\\'));
        expect(shellEvaluate(quoted).equals(Buffer.from(s, 'utf8'))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('round-trips strings made of shell metacharacters through /bin/sh', () => {
    const meta = fc.constantFrom(
      "'",
      '"',
      '$',
      '`',
      '\\n',
      '\n',
      ' ',
      '*',
      '?',
      '!',
      '&',
      ';',
      '|',
      '(',
      ')',
      '#',
      '~',
      '{',
      '}',
      'a',
    );
    fc.assert(
      fc.property(fc.string({ unit: meta, maxLength: 20 }), (s) => {
        const quoted = shellQuote(s);
        fc.pre(quoted.startsWith("'") || !s.includes('\\'));
        expect(shellEvaluate(quoted).toString('utf8')).toBe(s);
      }),
      { numRuns: 100 },
    );
  });

  it("keeps istio's quirk: an unquoted value with a backslash does not survive sh (\\w → w)", () => {
    expect(shellQuote('\\w')).toBe('\\w');
    expect(shellEvaluate(shellQuote('\\w')).toString()).toBe('w');
  });

  it('shellQuoteLossless round-trips every string, backslashes included', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('\\', 'w', "'", 'x', ' '), maxLength: 12 }), (s) => {
        expect(shellEvaluate(shellQuoteLossless(s)).toString('utf8')).toBe(s);
      }),
      { numRuns: 50 },
    );
  });
});
