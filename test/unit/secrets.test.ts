import { describe, expect, it } from '@jest/globals';
import { SecretRegistry } from '../../src/secrets.js';

describe('SecretRegistry', () => {
  it('scrubs whole secrets and each line of multi-line ones, but not PEM framing', () => {
    const secrets = new SecretRegistry();
    const seen: string[] = [];
    secrets.onAdd((value) => seen.push(value));
    secrets.add(
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJDREVGR0hJSktMTU5P\n-----END OPENSSH PRIVATE KEY-----\n',
    );
    expect(seen).toContain('b3BlbnNzaC1rZXktdjEAAAAA');
    expect(seen).not.toContain('-----END OPENSSH PRIVATE KEY-----');
    expect(secrets.scrub('key line QUJDREVGR0hJSktMTU5P here')).toBe('key line *** here');
    expect(secrets.has('xx b3BlbnNzaC1rZXktdjEAAAAA')).toBe(true);
  });
  it('scrubs the longest secret first and ignores short values', () => {
    const secrets = new SecretRegistry();
    secrets.add('tokenvalue');
    secrets.add('tokenvalue-extended');
    secrets.add('abc');
    expect(secrets.scrub('tokenvalue-extended abc')).toBe('*** abc');
  });
});
