// Mesh root-certificate rotation with a plugged-in CA, on the real control plane, through the bundled action: the three
// steps an operator takes by updating the `cacerts` Secret and restarting istiod (lab faults root-rotation-*,
// test/lab/istio/istiod.ts), and what the action does between them. istiod publishes `root-cert.pem` of ./etc/cacerts —
// "which may contain multiple roots" (pilot/pkg/bootstrap/istio_ca.go, createIstioCA) — as istio-ca-root-cert in every
// namespace; the action renders the VMs' /etc/certs/root-cert.pem from that ConfigMap.
//   1 add-root          both roots trusted, istiod signs with the old root's intermediate
//                       → `verify` names the VMs whose root file is stale; `onboard` pushes it, restarts them
//   2 new-intermediate  istiod signs with the new root's intermediate (its serving certificate too)
//                       → the VMs, which trust both roots now, stay connected; istiod's bundle holds the same
//                         roots (the new one twice), so `onboard` changes no file and restarts nobody — the
//                         VMs keep certificates of the old root until they renew (pilot-agent rewrites
//                         root-cert.pem in its own layout, which counts as the same file)
//   3 drop-old-root     only the new root is trusted
//                       → `onboard` pushes it; a VM whose certificate in /etc/certs is still of the old root
//                         (istiod would refuse it: the agent renews with it) is re-bootstrapped — fresh token,
//                         old pair removed — and restarted; each VM's workload certificate then comes from the
//                         new intermediate and chains to the new root, the only one the VM trusts.
// onboard runs with verify-after-onboard: false, so each step's proof comes from `mode: verify` (all checks,
// the mesh→VM call through the Pod runner's injected Job included).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runAction, snapshotDist, vmOf, type ActionRun } from './action-harness.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { downLab, faultCli, newLabDir, upLab } from './testing.js';
import { execInVm } from './vm/exec.js';
import type { CheckResult } from '../../src/verify/types.js';

const execFileP = promisify(execFile);
const VMS = ['vm1', 'vm2'];
const GROUP_NAMESPACE = 'vm-app';

let dir: string;
let state: LabState;
let entry: string;

function certificateCheck(r: ActionRun, vm: string): CheckResult | undefined {
  return vmOf(r.report, vm).checks.find((c) => c.name === 'workload-certificate');
}

/** The issuer of the VM's workload certificate, from the check's evidence (`leaf: … issuer "…"`). */
function leafIssuer(check: CheckResult | undefined): string {
  return /^leaf: .*issuer "([^"]*)"/m.exec(check?.evidence.join('\n') ?? '')?.[1] ?? '(no leaf in the evidence)';
}

/** Common names of the certificates in a PEM bundle. */
async function subjects(pem: string): Promise<string[]> {
  const names: string[] = [];
  for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
    const child = execFileP('openssl', ['x509', '-noout', '-subject', '-nameopt', 'multiline'], { timeout: 10_000 });
    child.child.stdin?.end(block);
    const { stdout } = await child;
    names.push(/commonName\s*=\s*(.+)/.exec(stdout)?.[1]?.trim() ?? '?');
  }
  return names;
}

/** istio-ca-root-cert of the group namespace (its PEM bundle), as istiod publishes it. */
async function publishedBundle(): Promise<string> {
  const { stdout } = await execFileP(
    'kubectl',
    [
      '--kubeconfig',
      state.files.kubeconfig ?? `${dir}/kubeconfig`,
      '-n',
      GROUP_NAMESPACE,
      'get',
      'configmap',
      'istio-ca-root-cert',
      '-o',
      'jsonpath={.data.root-cert\\.pem}',
    ],
    { timeout: 30_000 },
  );
  return stdout;
}

/**
 * Waits (bounded) until istiod has published a bundle other than `before` holding these roots (as a set) in the
 * group namespace; returns the roots it published, in order. (After `new-intermediate` istiod's bundle lists the
 * new root twice — the trusted roots and, again, the root of the chain it signs with — which the action copies as
 * it is: the set alone did not change then, so a step waits for the bundle to change.)
 */
async function untilPublished(expected: string[], before: string): Promise<string[]> {
  let seen: string[] = [];
  for (let attempt = 0; attempt < 60; attempt++) {
    const bundle = await publishedBundle();
    seen = await subjects(bundle);
    if (bundle !== before && JSON.stringify([...new Set(seen)]) === JSON.stringify(expected)) return seen;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  throw new Error(`istio-ca-root-cert holds ${JSON.stringify(seen)}, not a new bundle of ${JSON.stringify(expected)}`);
}

async function vmRoots(vm: string): Promise<string[]> {
  const r = await execInVm(state, vm, ['cat', '/etc/certs/root-cert.pem']);
  return subjects(r.stdout);
}

const onboard = () =>
  runAction(state, { mode: 'onboard', 'verify-after-onboard': 'false' }, { entry, timeoutMs: 280_000 });
const verify = () => runAction(state, { mode: 'verify' }, { entry, timeoutMs: 280_000 });

function rootFileChanged(r: ActionRun, vm: string): boolean {
  return vmOf(r.report, vm).files.some((f) => f.path === '/etc/certs/root-cert.pem' && f.changed);
}

beforeAll(async () => {
  istioBuild();
  realSidecarSources();
  dir = newLabDir('root-rotation');
  state = await upLab(dir, VMS.length);
  entry = await snapshotDist(dir);
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('a mesh root rotation, step by step, with the action rerun between the steps', () => {
  it('before: every VM trusts the first root and holds a certificate of its intermediate', async () => {
    const first = await onboard();
    expect(first.code).toBe(0);
    const r = await verify();
    for (const vm of VMS) {
      const check = certificateCheck(r, vm);
      if (check?.status !== 'pass') console.log(r.log.slice(-4000));
      expect(check?.status).toBe('pass');
      expect(leafIssuer(check)).toContain('Lab Intermediate CA');
      expect(await vmRoots(vm)).toEqual(['Lab Root CA']);
    }
  }, 600_000);

  it('1 add-root: verify names every VM whose root file is stale; onboard pushes both roots and restarts them', async () => {
    const before = await publishedBundle();
    await faultCli(dir, 'fault', 'root-rotation-add-root');
    await untilPublished(['Lab Root CA', 'Lab Root CA 2'], before);
    const stale = await verify();
    expect(stale.code).toBe(1);
    for (const vm of VMS) {
      const check = certificateCheck(stale, vm);
      expect(check?.status).toBe('fail');
      expect(check?.summary).toBe("the VM's /etc/certs/root-cert.pem is not the mesh root cert");
    }
    const push = await onboard();
    expect(push.code).toBe(0);
    for (const vm of VMS) {
      expect(rootFileChanged(push, vm)).toBe(true);
      expect(vmOf(push.report, vm).restarted).toBe(true);
      expect(await vmRoots(vm)).toEqual(['Lab Root CA', 'Lab Root CA 2']);
      expect(vmOf(push.report, vm).reBootstrap).toBeUndefined();
    }
    const after = await verify();
    for (const vm of VMS) expect(certificateCheck(after, vm)?.status).toBe('pass');
  }, 900_000);

  it('2 new-intermediate: the VMs stay connected; each restarted VM renews under the new root; a rerun restarts nobody', async () => {
    const before = await publishedBundle();
    await faultCli(dir, 'fault', 'root-rotation-new-intermediate');
    const published = await untilPublished(['Lab Root CA', 'Lab Root CA 2'], before);
    const rerun = await onboard();
    expect(rerun.code).toBe(0);
    for (const vm of VMS) {
      // The VM's file holds the roots istiod publishes (pilot-agent's layout of them counts as the same file);
      // the sidecar restarts exactly when that file changed.
      expect(new Set(await vmRoots(vm))).toEqual(new Set(published));
      expect(vmOf(rerun.report, vm).restarted).toBe(rootFileChanged(rerun, vm));
    }
    const r = await verify();
    for (const vm of VMS) {
      const checks = new Map(vmOf(r.report, vm).checks.map((c) => [c.name, c]));
      const failed = [...checks.values()].filter((c) => c.status !== 'pass' && c.status !== 'skipped');
      if (failed.length > 0) {
        const file = (await execInVm(state, vm, ['cat', '/etc/certs/root-cert.pem'])).stdout;
        const now = await publishedBundle();
        console.log(vm, JSON.stringify(failed, null, 1), {
          vmFile: await subjects(file),
          publishedNow: await subjects(now),
          publishedAtOnboard: published,
          same: file === now,
          fileTail: JSON.stringify(file.slice(-80)),
          nowTail: JSON.stringify(now.slice(-80)),
          fileLen: file.length,
          nowLen: now.length,
        });
      }
      // istiod's serving certificate is from the new intermediate now: the agent (re)connected because it
      // trusts both roots since step 1.
      expect(checks.get('xds-connected')?.status).toBe('pass');
      expect(checks.get('workload-certificate')?.status).toBe('pass');
      // A restarted agent renewed — with its own certificate, which istio-start.sh provisions from /etc/certs
      // (PROV_CERT=./etc/certs), still trusted — and istiod signed with the new root's intermediate.
      if (vmOf(rerun.report, vm).restarted)
        expect(leafIssuer(checks.get('workload-certificate'))).toContain('Lab Intermediate CA 2');
    }
    // pilot-agent rewrites the root file it shares with us (OUTPUT_CERTS=./etc/certs) with the same roots in its
    // own layout — deduplicated, sorted, no final newline: a rerun counts that as unchanged and restarts nobody.
    const again = await onboard();
    expect(again.code).toBe(0);
    for (const vm of VMS) {
      const onVm = (await execInVm(state, vm, ['cat', '/etc/certs/root-cert.pem'])).stdout;
      expect(onVm).not.toBe(await publishedBundle());
      expect({ vm, changed: rootFileChanged(again, vm), restarted: vmOf(again.report, vm).restarted }).toEqual({
        vm,
        changed: false,
        restarted: false,
      });
    }
  }, 900_000);

  it('3 drop-old-root: onboard pushes the new root alone and re-bootstraps each VM still on the old root; all chain to the new one', async () => {
    const before = await publishedBundle();
    await faultCli(dir, 'fault', 'root-rotation-drop-old-root');
    expect(await untilPublished(['Lab Root CA 2'], before)).toContain('Lab Root CA 2');
    const stale = await verify();
    for (const vm of VMS) expect(certificateCheck(stale, vm)?.status).toBe('fail');
    const push = await onboard();
    expect(push.code).toBe(0);
    const r = await verify();
    for (const vm of VMS) {
      expect(rootFileChanged(push, vm)).toBe(true);
      expect(vmOf(push.report, vm).restarted).toBe(true);
      // Each VM still renewed with a certificate of the first root (step 2 restarted nobody): istiod, which now
      // trusts only the new root, would refuse it — so onboard re-bootstrapped the VM (fresh token, pair removed).
      expect(vmOf(push.report, vm).reBootstrap).toEqual({
        certificateNotAfter: expect.any(String),
        cause: 'untrusted-root',
        done: true,
      });
      expect([...new Set(await vmRoots(vm))]).toEqual(['Lab Root CA 2']);
      const check = certificateCheck(r, vm);
      if (check?.status !== 'pass') console.log(r.log.slice(-4000));
      // The check verified the chain against the VM's root file, which holds only the new root.
      expect(check?.status).toBe('pass');
      expect(check?.summary).toContain('chains to the installed root');
      expect(leafIssuer(check)).toContain('Lab Intermediate CA 2');
    }
  }, 900_000);
});
