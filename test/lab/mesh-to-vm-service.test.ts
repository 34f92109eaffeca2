// Issue 15: the mesh→VM mTLS check against a client that routes as Envoy does (mesh/routing.ts), through
// the bundled action (dist/) on a one-VM lab, under STRICT and under PERMISSIVE.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runAction, snapshotDist, vmOf, type ActionRun } from './action-harness.js';
import type { LabState } from './state.js';
import { downLab, newLabDir, upLab } from './testing.js';
import type { CheckResult } from '../../src/verify/types.js';

let dir: string;
let state: LabState;
let entry: string;

beforeAll(async () => {
  dir = newLabDir('mesh-service');
  state = await upLab(dir, 1);
  entry = await snapshotDist(dir);
}, 300_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

function meshCheck(r: ActionRun): CheckResult {
  const found = vmOf(r.report, 'vm1').checks.find((c) => c.name === 'mesh-to-vm-mtls');
  if (!found) throw new Error(`no mesh-to-vm-mtls check in the report: ${r.log.slice(-1500)}`);
  return found;
}

describe('mesh→VM mTLS through dist/, the client routing as Envoy does', () => {
  it.each([
    ['strict', 'mtls-calls-failed'],
    ['permissive', 'mtls-not-mutual'],
  ])(
    'by the VM IP (ADR 0002) under %s: the call leaves the client in plaintext and the check fails with %s and onboarding fails',
    async (mode, hintId) => {
      const r = await runAction(state, { mode: 'onboard', 'peer-authentication': mode }, { entry, timeoutMs: 150_000 });
      const check = meshCheck(r);
      expect({ status: check.status, hintId: check.hintId }).toEqual({ status: 'fail', hintId });
      expect(check.evidence[0]).toMatch(/^mTLS Job \(injected\) → http:\/\/10\.233\.\d+\.11:\d+\//);
      expect(vmOf(r.report, 'vm1').outcome).toBe('failed');
      expect(r.code).toBe(1);
    },
    200_000,
  );
});
