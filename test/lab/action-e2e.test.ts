// The action end to end, through dist/index.js, on a lab of four VMs on real Istio (the real istiod, the real
// pilot-agent with the Go Envoy stand-in on every VM, verification Jobs run by the Pod runner and injected by the real
// istiod): onboarding, an idempotent rerun, a change that touches one VM only, VM-level failures that stay with their
// VM, rollback of a VM whose checks fail after a change, offboarding back to the VM's original file tree, and two runs
// at once.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { runAction as runActionFrom, snapshotDist, vmOf, type ActionRun } from './action-harness.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { run as runCommand } from './exec.js';
import { parseActionEnv } from './files.js';
import { execInVm } from './vm/exec.js';
import { downLab, faultCli, newLabDir, node24, REPO_ROOT, ssh, upLab } from './testing.js';

const dir = newLabDir('action-e2e');
let state: LabState;
let originalInventory: string;
const treeBefore: Record<string, string> = {};
/** The bundled action this file runs (one build pinned for the file, see snapshotDist). */
let entry: string;

/** The action through the pinned dist/, with room for the real sidecar's start and the verification Jobs. */
function runAction(labState: LabState, inputs: Record<string, string> = {}): Promise<ActionRun> {
  return runActionFrom(labState, inputs, { entry, timeoutMs: 280_000 });
}

/** A listing of the trees onboarding may touch (names, types, modes, owners; not contents). */
async function tree(vm: string): Promise<string> {
  const listing = await ssh(
    state,
    vm,
    "sudo -n sh -c \"find /etc /var/lib /usr/local /lib/systemd -printf '%p %y %m %u:%g\\n' 2>/dev/null | grep -v -E '^/var/lib/dpkg/(status-old|available-old|lock|triggers/Lock)' | sort\"",
  );
  return listing.stdout;
}

/** Writes a variant of the lab's inventory and returns its path. */
function inventoryWith(name: string, change: (doc: { groups: { vms: Record<string, unknown>[] }[] }) => void): string {
  const doc = parse(originalInventory) as { groups: { vms: Record<string, unknown>[] }[] };
  change(doc);
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(doc));
  return file;
}

function expectOutcomes(run: ActionRun, expected: Record<string, string>): void {
  const seen = Object.fromEntries(Object.keys(expected).map((name) => [name, vmOf(run.report, name).outcome]));
  const errors =
    run.report?.vms.filter((vm) => vm.error).map((vm) => `${vm.name}: ${vm.error!.step}: ${vm.error!.message}`) ?? [];
  expect([seen, errors]).toEqual([expected, expect.anything()]);
}

beforeAll(async () => {
  // Built here, not inside `up`'s time budget: the Istio build and the stand-in (no-ops when up to date).
  istioBuild();
  realSidecarSources();
  state = await upLab(dir, 4);
  entry = await snapshotDist(dir);
  originalInventory = readFileSync(state.files.inventory, 'utf8');
  for (const vm of ['vm3', 'vm4']) treeBefore[vm] = await tree(vm);
}, 600_000);

afterAll(async () => {
  const result = await downLab(dir);
  expect(result.code).toBe(0);
}, 120_000);

describe('the action in the lab, through dist/', () => {
  it('onboards four VMs, verifies them, and exits 0 with outputs, summary and report', async () => {
    const run = await runAction(state);
    expect([run.code, run.log.slice(-2000)]).toEqual([0, run.log.slice(-2000)]);
    expectOutcomes(run, { vm1: 'installed', vm2: 'installed', vm3: 'installed', vm4: 'installed' });
    for (const vm of run.report!.vms) {
      expect(vm.checks.map((check) => `${check.name}:${check.status}`)).toEqual([
        'sidecar-running:pass',
        'sidecar-ready:pass',
        'xds-connected:pass',
        'workload-certificate:pass',
        'workload-entry:pass',
        'vm-to-mesh:pass',
        'mesh-to-vm-mtls:pass',
      ]);
      expect(vm.counters).toMatchObject({ sshConnections: 1 });
      expect(vm.counters!.execRoundTrips).toBeLessThanOrEqual(4);
    }
    expect((run.outputs.onboarded ?? '').split(',').sort()).toEqual(['vm1', 'vm2', 'vm3', 'vm4']);
    expect(run.outputs.failed).toBe('');
    expect(JSON.parse(run.outputs.result!)).toMatchObject({ ok: true, totals: { vms: 4, succeeded: 4 } });
    expect(run.summary).toContain('## istio-vm-onboard · onboard · ✅ succeeded');
    expect(run.log).toMatch(/::group::vm1: installed/);
  }, 600_000);

  it('a rerun with nothing new changes and restarts nothing', async () => {
    const run = await runAction(state);
    expect(run.code).toBe(0);
    expectOutcomes(run, { vm1: 'unchanged', vm2: 'unchanged', vm3: 'unchanged', vm4: 'unchanged' });
    expect(run.report!.vms.every((vm) => !vm.restarted)).toBe(true);
    expect(run.report!.cluster!.objects.every((object) => object.action === 'unchanged')).toBe(true);
  }, 600_000);

  it('an inventory change restarts only the VMs it affects', async () => {
    const inventory = inventoryWith('labels-vm2', (doc) => {
      doc.groups[0]!.vms[1]!.labels = { zone: 'b' };
    });
    const run = await runAction(state, { inventory });
    expect(run.code).toBe(0);
    expectOutcomes(run, { vm1: 'unchanged', vm2: 'updated', vm3: 'unchanged', vm4: 'unchanged' });
    expect(run.report!.vms.filter((vm) => vm.restarted).map((vm) => vm.name)).toEqual(['vm2']);
  }, 600_000);

  it('a changed host key, a sudo password prompt and a full disk each fail their VM; the others finish', async () => {
    await faultCli(dir, 'fault', 'host-key-changed', 'vm1');
    await faultCli(dir, 'fault', 'sudo-password', 'vm2');
    await faultCli(dir, 'fault', 'disk-full', 'vm3');
    try {
      const inventory = inventoryWith('touch-all', (doc) => {
        for (const vm of doc.groups[0]!.vms) vm.labels = { rev: '2' };
      });
      const run = await runAction(state, { inventory });
      expect(run.code).toBe(1);
      expectOutcomes(run, { vm1: 'failed', vm2: 'failed', vm3: 'failed', vm4: 'updated' });
      expect(vmOf(run.report, 'vm1').error).toMatchObject({ step: 'connect' });
      expect(vmOf(run.report, 'vm1').error!.message).toMatch(/host key .*does not match known_hosts/);
      expect(vmOf(run.report, 'vm2').error!.message).toMatch(/sudo -n does not work on vm2 .* for user lab/);
      expect(vmOf(run.report, 'vm2').error!.hint).toContain('NOPASSWD');
      expect(vmOf(run.report, 'vm3').error!.message).toMatch(/not enough disk space: only \d+ MiB free on \/var\/lib/);
      expect((run.outputs.failed ?? '').split(',').sort()).toEqual(['vm1', 'vm2', 'vm3']);
      expect(run.summary).toContain('#### `vm2` (app, ');
    } finally {
      await faultCli(dir, 'heal', 'disk-full', 'vm3');
      await faultCli(dir, 'heal', 'sudo-password', 'vm2');
      await faultCli(dir, 'heal', 'host-key-changed', 'vm1');
    }
  }, 600_000);

  it('a checksum mismatch fails the VM that needs the package, before anything is installed', async () => {
    const offboard = await runAction(state, {
      mode: 'offboard',
      groups: 'app',
      inventory: inventoryWith('only-vm3', (doc) => {
        doc.groups[0]!.vms = doc.groups[0]!.vms.filter((vm) => vm.name === 'vm3');
      }),
    });
    expect(offboard.code).toBe(0);
    const run = await runAction(state, { 'sidecar-package-sha256': '0'.repeat(64) });
    expect(run.code).toBe(1);
    expect(vmOf(run.report, 'vm3')).toMatchObject({ outcome: 'failed', error: { step: 'apply' } });
    expect(vmOf(run.report, 'vm3').error!.message).toContain('checksum mismatch');
    expect(run.outputs.failed).toBe('vm3');
    const placed = await ssh(
      state,
      'vm3',
      'dpkg-query -W istio-sidecar 2>/dev/null; ls /etc/certs /var/lib/istio/envoy 2>/dev/null; true',
    );
    expect(placed.stdout).toBe('');
    const again = await runAction(state);
    expect(again.code).toBe(0);
    expect(vmOf(again.report, 'vm3').outcome).toBe('installed');
  }, 600_000);

  it('rolls back a VM whose checks fail after a change, and it still serves', async () => {
    const broken = inventoryWith('bad-ip-vm1', (doc) => {
      doc.groups[0]!.vms[0]!.internalIP = '10.233.250.250';
    });
    const run = await runAction(state, { inventory: broken });
    expect(run.code).toBe(1);
    const vm1 = vmOf(run.report, 'vm1');
    expect(vm1.outcome).toBe('rolled-back');
    expect(vm1.checks.filter((check) => check.status === 'fail').length).toBeGreaterThan(0);
    expect(vm1.steps.map((step) => step.name)).toContain('rollback');
    expectOutcomes(run, { vm2: 'unchanged', vm3: 'unchanged', vm4: 'unchanged' });
    const verify = await runAction(state, { mode: 'verify' });
    expect([verify.code, verify.log.slice(-1500)]).toEqual([0, verify.log.slice(-1500)]);
    expect(vmOf(verify.report, 'vm1').outcome).toBe('verified');
  }, 600_000);

  it('two runs at once on the same VMs do not interleave and both end clearly', async () => {
    const inventory = inventoryWith('concurrent', (doc) => {
      for (const vm of doc.groups[0]!.vms) vm.labels = { rev: '3' };
    });
    const [first, second] = await Promise.all([runAction(state, { inventory }), runAction(state, { inventory })]);
    for (const run of [first, second]) {
      const clear = run.code === 0 || /another istio-vm-onboard run holds/.test(run.log);
      expect([clear, run.log.slice(-1500)]).toEqual([true, run.log.slice(-1500)]);
    }
    // Between them every VM got the change exactly once: one run updated it, the other found it done.
    for (const name of ['vm1', 'vm2', 'vm3', 'vm4']) {
      const outcomes = [vmOf(first.report, name).outcome, vmOf(second.report, name).outcome].sort();
      expect([name, outcomes]).toEqual([name, expect.arrayContaining(['updated'])]);
      expect([name, outcomes.filter((outcome) => outcome === 'updated').length]).toEqual([name, 1]);
    }
  }, 600_000);

  it('the CLI runs the same core: verify prints progress and the per-VM table', async () => {
    const labInputs = parseActionEnv(readFileSync(state.files.actionEnv, 'utf8'));
    const result = await runCommand(
      [
        node24(),
        path.join(REPO_ROOT, 'dist', 'cli', 'index.js'),
        'verify',
        // The inventory the VMs were last onboarded with (the test above): against another one they have
        // drifted, and verify fails on drift.
        '--inventory',
        path.join(dir, 'concurrent.yaml'),
        '--kubeconfig',
        state.files.kubeconfig ?? path.join(dir, 'kubeconfig'),
        '--ssh-private-key',
        state.files.privateKey,
        '--ssh-known-hosts',
        state.files.knownHosts,
        '--dns-servers',
        labInputs['INPUT_DNS-SERVERS']!,
        // The sidecar version onboard installed: without it verify expects istiod's own version (1.31-dev on the
        // real control plane) and reports the package as drift.
        '--istio-version',
        labInputs['INPUT_ISTIO-VERSION']!,
        // The real control plane sets none: the default, istiod's own Service, is the mesh service.
        ...(labInputs['INPUT_VERIFY-URL'] ? ['--verify-url', labInputs['INPUT_VERIFY-URL']] : []),
        '--report-path',
        path.join(dir, 'cli-report.json'),
      ],
      { cwd: dir, env: { PATH: process.env.PATH ?? '' }, timeoutMs: 280_000, allowFailure: true },
    );
    expect([result.code, result.stderr.slice(-1500)]).toEqual([0, result.stderr.slice(-1500)]);
    expect(result.stderr).toMatch(/progress: 4\/4 VM\(s\) done, 0 failed/);
    expect(result.stdout).toMatch(/^VM\s+GROUP\s+ADDRESS\s+RESULT\s+SIDECAR-RUNNING/m);
    expect(result.stdout).toMatch(/^vm1\s+app\s+\S+:22\s+verified\s+ok\s+ok/m);
    expect(result.stdout).toContain('OK: 4 ok, 0 failed');
  }, 600_000);

  it('never shows a secret: not in logs, summary, report, outputs or files left on the runner', async () => {
    const run = await runAction(state, { 'ssh-private-key-passphrase': '' });
    expect(run.code).toBe(0);
    const token = (await ssh(state, 'vm1', 'sudo -n cat /var/lib/istio/tokens/istio-token')).stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const kubeconfig = readFileSync(state.files.kubeconfig ?? path.join(dir, 'kubeconfig'), 'utf8');
    const kubeToken = /token: "?([^"\n]+)"?/.exec(kubeconfig)![1]!;
    const keyLines = readFileSync(state.files.privateKey, 'utf8')
      .split('\n')
      .filter((line) => line.length > 20 && !line.startsWith('-----'));
    const secrets = [token, kubeToken, ...keyLines];
    // Every file the run left in its RUNNER_TEMP / workspace, plus what it printed and set.
    const workDir = path.dirname(run.outputs['report-path']!);
    const leftFiles = readdirSync(workDir)
      .map((name) => path.join(workDir, name))
      .filter((file) => statSync(file).isFile())
      .map((file) => readFileSync(file, 'utf8'));
    const seen = [run.log, run.summary, JSON.stringify(run.report), JSON.stringify(run.outputs), ...leftFiles].join(
      '\n',
    );
    for (const secret of secrets)
      expect([secret.slice(0, 8), seen.includes(secret)]).toEqual([secret.slice(0, 8), false]);
    // …and each was handed to the runner's masker.
    for (const secret of [token, kubeToken]) expect(run.raw).toContain(`::add-mask::${secret}`);
  }, 600_000);

  it('offboards a VM back to the file tree it had before onboarding, and removes its WorkloadEntry', async () => {
    const inventory = inventoryWith('only-vm4', (doc) => {
      doc.groups[0]!.vms = doc.groups[0]!.vms.filter((vm) => vm.name === 'vm4');
    });
    const run = await runAction(state, { mode: 'offboard', inventory });
    expect([run.code, run.log.slice(-1500)]).toEqual([0, run.log.slice(-1500)]);
    expect(vmOf(run.report, 'vm4').outcome).toBe('offboarded');
    expect(await tree('vm4')).toBe(treeBefore.vm4);
  }, 600_000);

  it('reaches a VM the runner cannot reach directly through its bastion', async () => {
    // vm4 was offboarded above: like a real jump host it runs no sidecar (whose capture would take the
    // forwarded connection).
    const bastion = state.vms.find((vm) => vm.name === 'vm4')!;
    const target = state.vms.find((vm) => vm.name === 'vm3')!;
    const onlyVm3 = (withBastion: boolean) =>
      inventoryWith(withBastion ? 'vm3-bastion' : 'vm3-direct', (doc) => {
        doc.groups[0]!.vms = doc.groups[0]!.vms.filter((vm) => vm.name === 'vm3');
        if (withBastion) doc.groups[0]!.vms[0]!.bastion = { host: bastion.ip, user: 'lab' };
      });
    const rule = `INPUT -p tcp --dport 22 -s ${state.gatewayIP} -j REJECT --reject-with tcp-reset`;
    await execInVm(state, target, `iptables -I ${rule}`);
    try {
      const direct = await runAction(state, { mode: 'verify', inventory: onlyVm3(false), 'ssh-connect-timeout': '5' });
      expect(direct.code).toBe(1);
      expect(vmOf(direct.report, 'vm3').error).toMatchObject({ step: 'connect' });
      const viaBastion = await runAction(state, { mode: 'verify', inventory: onlyVm3(true) });
      expect([viaBastion.code, viaBastion.log.slice(-1500)]).toEqual([0, viaBastion.log.slice(-1500)]);
      expect(vmOf(viaBastion.report, 'vm3').outcome).toBe('verified');
    } finally {
      await execInVm(state, target, `iptables -D ${rule}`);
    }
  }, 600_000);
});
