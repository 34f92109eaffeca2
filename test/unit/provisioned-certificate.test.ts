// The re-bootstrap decision: when the certificate pilot-agent renews with (/etc/certs/cert-chain.pem) makes a
// VM need a fresh token. One clock per test, every time derived from TEST_EPOCH_MS, never the machine's date.
import { describe, expect, it } from '@jest/globals';
import {
  describeReBootstrap,
  needsReBootstrap,
  provisionedCertificateState,
  REBOOTSTRAP_MARGIN_MS,
} from '../../src/verify/provisioned-certificate.js';
import { makeCa, makeWorkloadCert, TEST_EPOCH_MS } from './verify-fixtures.js';

const CA = makeCa('cluster.local');
const SPIFFE = 'spiffe://cluster.local/ns/vm-app/sa/vm-app';
const MINUTE = 60_000;

/** A chain as the agent writes it (leaf, then the CA), the leaf valid from `notBefore` to `notAfter` (ms). */
function chain(notBeforeMs: number, notAfterMs: number): string {
  return (
    makeWorkloadCert(CA, SPIFFE, { notBefore: new Date(notBeforeMs), notAfter: new Date(notAfterMs) }) + CA.certPem
  );
}

describe('provisionedCertificateState', () => {
  it('expired when notAfter has passed: the VM needs a re-bootstrap, with that notAfter', () => {
    const now = new Date(TEST_EPOCH_MS);
    const notAfter = TEST_EPOCH_MS - 10 * MINUTE;
    const state = provisionedCertificateState(chain(notAfter - 5 * MINUTE, notAfter), now, REBOOTSTRAP_MARGIN_MS);
    expect(state.state).toBe('expired');
    expect(needsReBootstrap(state)).toBe(true);
    if (!needsReBootstrap(state)) throw new Error('unreachable');
    expect(state.notAfter.getTime()).toBe(notAfter);
    expect(describeReBootstrap(state)).toBe('certificate expired at 2026-11-26T11:50:00.000Z');
  });

  it('expired exactly at notAfter (Go: NotAfter.Before(now) is false then, but istiod may judge a moment later)', () => {
    const now = new Date(TEST_EPOCH_MS);
    const state = provisionedCertificateState(chain(TEST_EPOCH_MS - 5 * MINUTE, TEST_EPOCH_MS), now);
    expect(state.state).toBe('expired');
  });

  it('expiring within the margin: re-bootstrapped too (it would expire before the new token is used)', () => {
    const now = new Date(TEST_EPOCH_MS);
    const notAfter = TEST_EPOCH_MS + REBOOTSTRAP_MARGIN_MS - 1_000;
    const state = provisionedCertificateState(chain(TEST_EPOCH_MS - 5 * MINUTE, notAfter), now, REBOOTSTRAP_MARGIN_MS);
    expect(state.state).toBe('expiring');
    expect(needsReBootstrap(state)).toBe(true);
    if (!needsReBootstrap(state)) throw new Error('unreachable');
    expect(describeReBootstrap(state)).toBe(`certificate expires at ${new Date(notAfter).toISOString()}`);
  });

  it('valid beyond the margin: left alone', () => {
    const now = new Date(TEST_EPOCH_MS);
    const notAfter = TEST_EPOCH_MS + REBOOTSTRAP_MARGIN_MS + 1_000;
    const state = provisionedCertificateState(chain(TEST_EPOCH_MS - 5 * MINUTE, notAfter), now, REBOOTSTRAP_MARGIN_MS);
    expect(state.state).toBe('valid');
    expect(needsReBootstrap(state)).toBe(false);
  });

  it('without a margin (verify), a certificate ending in a second is still valid', () => {
    const now = new Date(TEST_EPOCH_MS);
    const state = provisionedCertificateState(chain(TEST_EPOCH_MS - 5 * MINUTE, TEST_EPOCH_MS + 1_000), now);
    expect(state.state).toBe('valid');
  });

  it('judges the leaf, not the CA behind it in the chain (the CA outlives it by years)', () => {
    const now = new Date(TEST_EPOCH_MS);
    const state = provisionedCertificateState(chain(TEST_EPOCH_MS - 2 * MINUTE, TEST_EPOCH_MS - MINUTE), now);
    expect(state.state).toBe('expired');
  });

  it('absent (a first install, or removed): nothing to re-bootstrap', () => {
    const now = new Date(TEST_EPOCH_MS);
    for (const pem of [undefined, null, '', '  \n']) {
      const state = provisionedCertificateState(pem, now, REBOOTSTRAP_MARGIN_MS);
      expect(state).toEqual({ state: 'absent' });
      expect(needsReBootstrap(state)).toBe(false);
    }
  });

  it('unreadable (no PEM, or a broken one): said, and not a re-bootstrap', () => {
    const now = new Date(TEST_EPOCH_MS);
    expect(provisionedCertificateState('not a certificate\n', now)).toEqual({
      state: 'unreadable',
      detail: 'no PEM certificate in it',
    });
    const broken = provisionedCertificateState(
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      now,
      REBOOTSTRAP_MARGIN_MS,
    );
    expect(broken.state).toBe('unreadable');
    expect(needsReBootstrap(broken)).toBe(false);
  });
});

describe('provisionedCertificateState against the roots the VM is given', () => {
  const OTHER = makeCa('cluster.local');
  const now = new Date(TEST_EPOCH_MS);
  const valid = () => chain(TEST_EPOCH_MS - 5 * MINUTE, TEST_EPOCH_MS + 60 * MINUTE);

  it('untrusted when no root of the bundle is above it (a rotation dropped its root): re-bootstrap, saying why', () => {
    const state = provisionedCertificateState(valid(), now, REBOOTSTRAP_MARGIN_MS, OTHER.certPem);
    expect(state.state).toBe('untrusted');
    expect(needsReBootstrap(state)).toBe(true);
    if (!needsReBootstrap(state)) throw new Error('unreachable');
    expect(describeReBootstrap(state)).toMatch(/^certificate \(valid until .*\) is not under a root the mesh trusts: /);
  });

  it('valid when one root of the bundle is above it (both roots trusted during a rotation): no re-bootstrap', () => {
    const state = provisionedCertificateState(valid(), now, REBOOTSTRAP_MARGIN_MS, OTHER.certPem + CA.certPem);
    expect(state.state).toBe('valid');
    expect(needsReBootstrap(state)).toBe(false);
  });

  it('an expired certificate stays expired whatever the roots', () => {
    const expired = chain(TEST_EPOCH_MS - 10 * MINUTE, TEST_EPOCH_MS - MINUTE);
    expect(provisionedCertificateState(expired, now, 0, OTHER.certPem).state).toBe('expired');
  });
});
