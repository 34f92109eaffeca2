// Istio's control plane / data plane skew rule and the version parser it reads versions with.
import { describe, expect, it } from '@jest/globals';
import {
  checkVersionSkew,
  parseMinorVersion,
  SKEW_POLICY_URL,
  VersionSkewError,
} from '../../src/rollout/version-skew.js';

describe('parseMinorVersion', () => {
  it.each([
    ['1.24.2', 1, 24],
    ['v1.24.2', 1, 24],
    ['1.25.0-beta.1', 1, 25],
    ['1.24.2-1', 1, 24],
    ['1.31-dev-eed52ebb', 1, 31],
    ['1.28-alpha.0123abcd', 1, 28],
    ['1.30', 1, 30],
    ['1.24.0+build.5', 1, 24],
  ])('%s is %i.%i', (version, major, minor) => {
    expect(parseMinorVersion(version)).toEqual({ major, minor });
  });

  it.each(['', 'latest', '1', 'x.24.0', '1.24x', '1..2'])('%j has no major.minor', (version) => {
    expect(parseMinorVersion(version)).toBeUndefined();
  });
});

describe('checkVersionSkew (data plane, control plane)', () => {
  it.each([
    ['1.31.0', '1.31-dev-eed52ebb'],
    ['1.30.4', '1.31-dev-eed52ebb'],
    ['1.24.0', '1.24.5'],
    ['1.24.9', '1.24.0'],
  ])('sidecar %s with istiod %s is supported', (data, control) => {
    expect(checkVersionSkew(data, control)).toEqual({ ok: true });
  });

  it.each([
    ['1.32.0', '1.31-dev-eed52ebb', 'the data plane cannot be ahead of the control plane'],
    ['1.29.0', '1.31-dev-eed52ebb', 'the control plane can be at most 1 minor version ahead of the data plane'],
    ['1.24.0', '1.31-dev-eed52ebb', 'the control plane can be at most 1 minor version ahead of the data plane'],
    ['2.0.0', '1.31.0', 'the data plane and the control plane must share the major version'],
  ])('sidecar %s with istiod %s is refused: %s', (data, control, rule) => {
    expect(checkVersionSkew(data, control)).toMatchObject({ ok: false, rule });
  });

  it('cannot judge a version without major.minor', () => {
    expect(checkVersionSkew('1.24.0', '')).toMatchObject({ ok: false, unknown: true });
  });

  it('the error names the rule, its source and a hint id', () => {
    const verdict = checkVersionSkew('1.26.1', '1.25.0');
    if (verdict.ok || verdict.unknown) throw new Error('expected a refusal');
    const error = new VersionSkewError(verdict);
    expect(error.message).toBe(
      'unsupported version skew: sidecar 1.26.1 (1.26) is newer than istiod 1.25.0 (1.25); ' +
        `Istio's rule: the data plane cannot be ahead of the control plane (${SKEW_POLICY_URL})`,
    );
    expect(error.hintId).toBe('version-skew');
    expect(error.hint).toMatch(/^\[version-skew\] /);
  });
});
