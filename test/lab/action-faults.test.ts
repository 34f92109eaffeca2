// The fault matrix through the bundled action (dist/, run as a GitHub runner would), against one 3-VM
// lab on the real control plane: Istio's istiod and pilot-agent built
// from the pinned module, Istio's istio-start.sh, istio.service and istio-iptables in the sidecar package,
// the Go Envoy stand-in, the Pod runner for the verification Jobs. Every fault is a real condition: sshd
// stopped, connections cut by the lab's network, tc limits, a reboot, istiod stopped, objects deleted or
// changed through the lab's Kubernetes API. (host-key-changed and sudo-password through dist/ are in
// action-e2e.test.ts.) Each case applies a fault, runs the action, asserts what
// a workflow would see (exit code, outputs, report, summary, log) and what is left on the VMs, heals in
// `finally`, and a later run proves the lab converged again.
//
// The lab runs every VM's sshd on port 2222 (`up --ssh-port 2222`), and the inventory's group
// declares no ports, so Istio's istio-iptables captures EVERY inbound port (ISTIO_INBOUND_PORTS='*'): a new
// SSH connection reaches sshd after a sidecar started only because the action put 2222 into
// ISTIO_LOCAL_EXCLUDE_PORTS (istio#36870); the control case takes 2222 out by hand and, with the sidecar
// without config, a new connection is refused. Every run after the first one connects anew, so each of them
// also proves that the exclusion is in place.
//
// The VMs are inspected from the host (`execInVm`, nsenter), never over SSH, so an SSH fault cannot
// hide what is on a VM.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { expectNoVmTouched } from './action-expect.js';
import { runAction, vmOf, type ActionRun } from './action-harness.js';
import { LAB_GATEWAY_HOSTNAME } from './control-plane.js';
import { run } from './exec.js';
import { findVm, type LabState } from './state.js';
import { upRealLab } from './real-lab.js';
import { downLab, faultCli, ssh } from './testing.js';
import { execInVm } from './vm/exec.js';
import { CHECK_NAMES, type CheckResult } from '../../src/verify/types.js';
import { ISTIO_PATHS, ONBOARD_PATHS } from '../../src/vm/paths.js';

const VMS = ['vm1', 'vm2', 'vm3'] as const;
type VmName = (typeof VMS)[number];
const SSH_PORT = 2222;
const NAMESPACE = 'vm-app';
/**
 * The slow-network case's limit: the real sidecar package is tens of MiB, so a rate that makes its download
 * take seconds (at 1 Mbit/s, the default, it would take minutes).
 */
const SLOW_RATE_MBIT = 64;

let dir: string;
let state: LabState;
let entry: string;
/**
 * The inventory runs use unless told otherwise: the lab's, without the group's ports (inbound capture of every
 * port).
 */
let current: string;

interface InventoryDoc {
  groups: { ports?: Record<string, number>; vms: { name: string; labels?: Record<string, string> }[] }[];
}

beforeAll(async () => {
  ({ dir, state, entry } = await upRealLab('action-faults', VMS.length, ['--ssh-port', String(SSH_PORT)]));
  current = inventoryWith('open', () => undefined);
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

// ------------------------------------------------------------------------------------------ running

/** Writes a variant of the open inventory (the lab's, without ports) into DIR and returns its path. */
function inventoryWith(name: string, change: (doc: InventoryDoc) => void): string {
  const doc = parseYaml(readFileSync(state.files.inventory, 'utf8')) as InventoryDoc;
  for (const group of doc.groups) delete group.ports;
  change(doc);
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, toYaml(doc));
  return file;
}

/** vm3 with labels { rev }: a change of cluster.env and the mesh config on vm3 only. */
const vm3Revision = (rev: string) =>
  inventoryWith(`vm3-rev${rev}`, (doc) => {
    doc.groups[0]!.vms.find((vm) => vm.name === 'vm3')!.labels = { rev };
  });

function action(inputs: Record<string, string> = {}): Promise<ActionRun> {
  return runAction(state, { inventory: current, ...inputs }, { entry, timeoutMs: 150_000 });
}

async function fault(verb: 'fault' | 'heal', name: string, vm?: VmName, extra: string[] = []): Promise<void> {
  await faultCli(dir, verb, name, vm, extra);
}

/** Runs a shell script as root inside the VM (from the host: no SSH involved); stdout, trimmed. */
async function onVm(vm: VmName, script: string): Promise<string> {
  const r = await execInVm(state, vm, script, { allowFailure: true, timeoutMs: 30_000 });
  return `${r.stdout}${r.stderr}`.trim();
}

const ipOf = (vm: VmName) => findVm(state, vm).ip;

/** kubectl as the lab's admin against the lab's Kubernetes API; stdout. */
async function kubectl(args: string[]): Promise<string> {
  return (await run(['kubectl', '--kubeconfig', state.files.kubeconfig!, ...args], { timeoutMs: 30_000 })).stdout;
}

/** The WorkloadEntries in the group's namespace, name by address. */
async function entriesByAddress(): Promise<Record<string, string>> {
  const list = JSON.parse(await kubectl(['-n', NAMESPACE, 'get', 'workloadentries', '-o', 'json'])) as {
    items: { metadata: { name: string }; spec: { address?: string } }[];
  };
  return Object.fromEntries(list.items.map((item) => [item.spec.address ?? '', item.metadata.name]));
}
const escapeRe = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const escapeCell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

// ------------------------------------------------------------------------------------------ asserting

function checkLines(checks: CheckResult[]): string[] {
  return checks.map((c) => `${c.name}: ${c.status}${c.status === 'pass' ? '' : ` — ${c.summary}`}`);
}

function expectAllPass(r: ActionRun, vm: VmName): void {
  expect([vm, checkLines(vmOf(r.report, vm).checks)]).toEqual([vm, CHECK_NAMES.map((name) => `${name}: pass`)]);
}

/** Exit code, `failed`/`onboarded` outputs and every VM's outcome, with the errors shown on a mismatch. */
function expectRun(r: ActionRun, code: number, outcomes: Record<VmName, string>): void {
  const seen = Object.fromEntries(VMS.map((vm) => [vm, vmOf(r.report, vm).outcome]));
  const errors =
    r.report?.vms.filter((vm) => vm.error).map((vm) => `${vm.name}: ${vm.error!.step}: ${vm.error!.message}`) ?? [];
  const failing = VMS.filter((vm) => outcomes[vm] === 'failed');
  expect({ code: r.code, outcomes: seen, errors, fatal: r.report?.fatal?.message }).toEqual({
    code,
    outcomes,
    // Only the VMs expected to fail have errors (shown here when a run goes otherwise).
    errors: failing.length ? expect.anything() : [],
    fatal: undefined,
  });
  const failed = VMS.filter(
    (vm) => !['installed', 'updated', 'unchanged', 'verified', 'offboarded'].includes(outcomes[vm]),
  );
  expect({ failed: r.outputs.failed, onboarded: r.outputs.onboarded }).toEqual({
    failed: failed.join(','),
    onboarded: VMS.filter((vm) => !failed.includes(vm)).join(','),
  });
}

/** A clean run: exit 0, the given outcomes, every VM passes all seven checks over one SSH connection. */
function expectCleanRun(r: ActionRun, outcomes: Record<VmName, string>): void {
  expectRun(r, 0, outcomes);
  for (const vm of VMS) {
    expectAllPass(r, vm);
    expect([vm, vmOf(r.report, vm).counters?.sshConnections]).toEqual([vm, 1]);
  }
}

const stepsOf = (r: ActionRun, vm: VmName) => vmOf(r.report, vm).steps.map((s) => `${s.name}:${s.status}`);

// ------------------------------------------------------------------------------------------ the VMs

const ISTIO_FILES = [ISTIO_PATHS.clusterEnv, ISTIO_PATHS.meshConfig, ISTIO_PATHS.rootCert] as const;

/** sha256 of each of Istio's files on the VM ('absent' when missing). */
async function istioFiles(vm: VmName): Promise<Record<string, string>> {
  const out = await onVm(
    vm,
    ISTIO_FILES.map(
      (f) => `if [ -f ${f} ]; then echo "${f} $(sha256sum < ${f} | cut -c1-64)"; else echo "${f} absent"; fi`,
    ).join('\n'),
  );
  return Object.fromEntries(out.split('\n').map((line) => line.split(' ') as [string, string]));
}

/**
 * What a cut apply could leave behind: *.ivo-new temp files next to Istio's files, the staging or a
 * half-made snapshot directory, error scratch files. Waits (bounded) until no run holds the VM lock
 * first, so a remote script still finishing cannot race the look. Empty when clean.
 */
async function leftovers(vm: VmName): Promise<string> {
  return onVm(
    vm,
    `lock=busy
for i in $(seq 1 100); do flock -n ${ONBOARD_PATHS.lockFile} true 2>/dev/null && { lock=free; break; }; sleep 0.1; done
[ "$lock" = free ] || echo "lock still held: ${ONBOARD_PATHS.lockFile}"
find /etc /var/lib/istio /run/secrets -name '*.ivo-new' 2>/dev/null
for d in ${ONBOARD_PATHS.staging} ${ONBOARD_PATHS.stateDir}/previous.new; do [ -e "$d" ] && echo "left: $d"; done
ls /run/ivo-err.* 2>/dev/null
true`,
  );
}

/**
 * The ISTIO_INBOUND rules Istio's istio-iptables installed in the VM (`-S` form). `pilot-agent istio-iptables`
 * picks the iptables backend itself (legacy or nft, tools/istio-iptables/pkg/dependencies in the module), so
 * both are read; a backend that does not hold the chain prints nothing for it.
 */
async function inboundCapture(vm: VmName): Promise<string[]> {
  const saved = await onVm(vm, '{ iptables-legacy-save -t nat; iptables-nft-save -t nat; } 2>/dev/null');
  return saved.split('\n').filter((line) => line.startsWith('-A ISTIO_INBOUND '));
}

const sshReturnRule = `-A ISTIO_INBOUND -p tcp -m tcp --dport ${SSH_PORT} -j RETURN`;

/** Waits (bounded) for pilot-agent's readiness on 15021 (Envoy has its config); the last HTTP code seen. */
async function sidecarReady(vm: VmName): Promise<string> {
  return onVm(
    vm,
    `for i in $(seq 1 150); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15021/healthz/ready)
  [ "$code" = 200 ] && break; sleep 0.2
done; echo "$code"`,
  );
}

async function sidecarPid(vm: VmName): Promise<string> {
  return onVm(vm, 'systemctl show -p MainPID --value istio');
}

// ------------------------------------------------------------------------------------------ cases

describe('lab faults through dist/ in a 3-VM lab (sshd on port 2222)', () => {
  it('sshd down on vm2 during the first onboard: vm2 fails at connect naming its address, with a hint; vm1 and vm3 are installed; healed, a rerun installs vm2', async () => {
    await fault('fault', 'sshd-down', 'vm2');
    let r: ActionRun;
    try {
      r = await action();
    } finally {
      await fault('heal', 'sshd-down', 'vm2');
    }
    expectRun(r, 1, { vm1: 'installed', vm2: 'failed', vm3: 'installed' });
    for (const vm of ['vm1', 'vm3'] as const) expectAllPass(r, vm);

    const vm2 = vmOf(r.report, 'vm2');
    expect(stepsOf(r, 'vm2')).toEqual(['connect:failed']);
    expect(vm2.error?.step).toBe('connect');
    const where = `${ipOf('vm2')}:${SSH_PORT}`;
    expect(vm2.error?.message).toMatch(
      new RegExp(
        `^connection refused by ${escapeRe(where)} \\(vm2\\): is sshd running and listening on port ${SSH_PORT}\\? \\(after 3 attempts\\)$`,
      ),
    );
    expect(vm2.error?.hint).toBe('start sshd on the host (systemctl start ssh) or fix the port in the inventory');
    expect(vm2.counters).toBeUndefined(); // never connected
    expect(vm2.checks).toEqual([]);
    const result = JSON.parse(r.outputs.result ?? '{}') as {
      ok: boolean;
      failed: { vm: string; step: string; message: string }[];
    };
    expect(result.ok).toBe(false);
    expect(result.failed.map((f) => `${f.vm} ${f.step}`)).toEqual(['vm2 connect']);
    expect(r.summary).toContain(`#### \`vm2\` (app, ${where})`);
    expect(r.summary).toContain(`- **connect**: ${escapeCell(vm2.error!.message)}`);
    expect(r.summary).toContain(`  - what to do: ${escapeCell(vm2.error!.hint!)}`);
    expect(r.log).toContain(`::error::[vm2] connect failed: ${vm2.error!.message} — ${vm2.error!.hint}`);

    // Healed: the same onboard converges; vm1 and vm3 are left as they are.
    const again = await action();
    expectCleanRun(again, { vm1: 'unchanged', vm2: 'installed', vm3: 'unchanged' });
    expect(again.report!.vms.filter((vm) => vm.restarted).map((vm) => vm.name)).toEqual(['vm2']);
  }, 150_000);

  it('SSH on port 2222: every cluster.env excludes 2222 from the capture of all inbound ports, and new SSH connections still reach sshd', async () => {
    for (const vm of VMS) {
      const env = await onVm(vm, `grep -E '^ISTIO_(INBOUND|LOCAL_EXCLUDE)_PORTS=' ${ISTIO_PATHS.clusterEnv}`);
      const exclude = /^ISTIO_LOCAL_EXCLUDE_PORTS='([^']*)'$/m.exec(env)?.[1] ?? '';
      expect([vm, /^ISTIO_INBOUND_PORTS='\*'$/m.test(env), exclude.split(',')]).toEqual([
        vm,
        true,
        expect.arrayContaining([String(SSH_PORT)]),
      ]);
      // Istio's capture is really on: everything inbound is redirected to Envoy except the excluded
      // ports, 2222 among them.
      const inbound = await inboundCapture(vm);
      expect([vm, inbound.at(-1)]).toEqual([vm, '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT']);
      expect([vm, inbound]).toEqual([vm, expect.arrayContaining([sshReturnRule])]);
      // A new connection with the real OpenSSH client, opened after the sidecar installed its rules.
      const login = await ssh(state, vm, 'echo ssh-ok');
      expect([vm, login.code, login.stdout.trim()]).toEqual([vm, 0, 'ssh-ok']);
    }
    // And the action itself reaches every VM on 2222 again and verifies it.
    const r = await action({ mode: 'verify' });
    expectCleanRun(r, { vm1: 'verified', vm2: 'verified', vm3: 'verified' });
    for (const vm of VMS) {
      expect(vmOf(r.report, vm).address).toBe(`${ipOf(vm)}:${SSH_PORT}`);
      expect(vmOf(r.report, vm).steps[0]?.detail).toBe(`connected to lab@${ipOf(vm)}:${SSH_PORT}`);
    }
  }, 120_000);

  it("control, istiod down: with 2222 taken out of vm2's ISTIO_LOCAL_EXCLUDE_PORTS by hand and the sidecar restarted, Istio's capture sends a new SSH connection to an Envoy without listeners and it is refused; with the action's exclusion put back, SSH works", async () => {
    // With its config, Envoy's inbound passthrough would carry plaintext SSH on to sshd (the lab's mesh is
    // PERMISSIVE: the run's peer-authentication is `unchanged`), so a capture of 2222 bites when the sidecar has
    // no config: istiod unreachable (here: stopped), the sidecar starting, Envoy down — or a STRICT policy.
    // That is when an operator needs SSH most; the exclusion keeps it off the sidecar's path.
    const vm = 'vm2';
    const env = ISTIO_PATHS.clusterEnv;
    const backup = '/root/cluster.env.before-ssh-control';
    const line = await onVm(vm, `grep -E '^ISTIO_LOCAL_EXCLUDE_PORTS=' ${env}`);
    const ports = (/^ISTIO_LOCAL_EXCLUDE_PORTS='([\d,]*)'$/.exec(line)?.[1] ?? '').split(',');
    expect(ports).toContain(String(SSH_PORT));
    const without = ports.filter((p) => p !== String(SSH_PORT)).join(',');
    /** Restarts Istio's unit and waits (bounded) until istio-iptables has (or has not) put the SSH exclusion in. */
    const restartSidecar = async (excluded: boolean): Promise<string[]> => {
      await onVm(vm, 'systemctl restart istio');
      let inbound: string[] = [];
      for (let i = 0; i < 150; i++) {
        inbound = await inboundCapture(vm);
        const redirecting = inbound.at(-1) === '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT';
        if (redirecting && inbound.includes(sshReturnRule) === excluded) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return inbound;
    };
    let refused: Awaited<ReturnType<typeof ssh>>;
    let captured: string[];
    let restored: string[];
    let login: Awaited<ReturnType<typeof ssh>>;
    await fault('fault', 'istiod-down');
    try {
      try {
        await onVm(
          vm,
          `cp -p ${env} ${backup} && sed -i "s/^ISTIO_LOCAL_EXCLUDE_PORTS=.*/ISTIO_LOCAL_EXCLUDE_PORTS='${without}'/" ${env}`,
        );
        captured = await restartSidecar(false);
        // A new connection with the real OpenSSH client: the nat rules send it to Envoy's inbound port.
        refused = await ssh(state, vm, 'echo ssh-ok');
      } finally {
        await onVm(vm, `[ -f ${backup} ] && cp -p ${backup} ${env} && rm -f ${backup}`);
      }
      // The file as the action wrote it, the sidecar still without config: SSH does not go through it.
      restored = await restartSidecar(true);
      login = await ssh(state, vm, 'echo ssh-ok');
    } finally {
      await fault('heal', 'istiod-down');
    }
    expect({ redirecting: captured.at(-1), sshExcluded: captured.includes(sshReturnRule) }).toEqual({
      redirecting: '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
      sshExcluded: false,
    });
    expect({ code: refused.code, stdout: refused.stdout.trim(), stderr: refused.stderr.trim() }).toEqual({
      code: 255,
      stdout: '',
      stderr: `ssh: connect to host ${ipOf(vm)} port ${SSH_PORT}: Connection refused`,
    });
    expect(restored).toEqual(expect.arrayContaining([sshReturnRule]));
    expect([login.code, login.stdout.trim()]).toEqual([0, 'ssh-ok']);
    expect(await leftovers(vm)).toBe('');
    // istiod back: the sidecar gets its config, and the action finds vm2's files as it left them.
    expect(await sidecarReady(vm)).toBe('200');
    const r = await action();
    expectCleanRun(r, { vm1: 'unchanged', vm2: 'unchanged', vm3: 'unchanged' });
  }, 180_000);

  it("WorkloadEntry of vm2 deleted while its sidecar stays connected: istiod does not register it again by itself (verify fails with we-missing); the next onboard restarts vm2's sidecar only and the entry is back", async () => {
    const vm2 = ipOf('vm2');
    const name = (await entriesByAddress())[vm2];
    expect(name).toEqual(expect.any(String));
    const pidBefore = await sidecarPid('vm2');
    await kubectl(['-n', NAMESPACE, 'delete', 'workloadentry', name!]);
    // Real istiod creates an auto-registered entry only when a proxy connects, or for the proxies already
    // connected when their WorkloadGroup is added (OnConnect/registerWorkload and setupAutoRecreate in
    // pilot/pkg/autoregistration/controller.go): nothing brings back an entry deleted under a connected agent.
    const verify = await action({ mode: 'verify' });
    expectRun(verify, 1, { vm1: 'verified', vm2: 'failed', vm3: 'verified' });
    const check = vmOf(verify.report, 'vm2').checks.find((c) => c.name === 'workload-entry');
    expect({ status: check?.status, hintId: check?.hintId, hint: check?.hint, summary: check?.summary }).toEqual({
      status: 'fail',
      hintId: 'we-missing',
      hint: expect.stringContaining('an entry deleted while it stays connected is not re-created: rerun onboard'),
      summary: expect.stringMatching(
        new RegExp(`^no WorkloadEntry with address ${escapeRe(vm2)} in ${NAMESPACE} after `),
      ),
    });
    // The agent stayed up (and connected) all along, and the entry is still gone.
    expect(await sidecarPid('vm2')).toBe(pidBefore);
    expect((await entriesByAddress())[vm2]).toBeUndefined();

    const r = await action();
    expectCleanRun(r, { vm1: 'unchanged', vm2: 'unchanged', vm3: 'unchanged' });
    expect(r.report!.vms.filter((vm) => vm.restarted).map((vm) => vm.name)).toEqual(['vm2']);
    expect(r.log).toContain(
      `[vm2] no WorkloadEntry with address ${vm2} in ${NAMESPACE}: the sidecar will be restarted so that it registers again`,
    );
    expect(await sidecarPid('vm2')).not.toBe(pidBefore);
    // The reconnected agent registered again, under the same name (the group, the address and the network).
    expect((await entriesByAddress())[vm2]).toBe(name);
  }, 150_000);

  it('reboot of vm1 (tmpfs /run emptied, services restarted): the drop-in restores the token and verify passes all seven checks', async () => {
    const pidBefore = await sidecarPid('vm1');
    expect(pidBefore).toMatch(/^[1-9]\d*$/);
    expect(
      await onVm('vm1', `touch /run/ivo-before-reboot && test -f ${ISTIO_PATHS.runtimeToken} && echo token-present`),
    ).toBe('token-present');
    const rebootedAt = Math.floor(Date.now() / 1000);
    await fault('fault', 'reboot', 'vm1');

    // The unit starts at boot; give it (bounded) time to be active, then look at what the boot did.
    const after = await onVm(
      'vm1',
      `for i in $(seq 1 100); do [ "$(systemctl is-active istio)" = active ] && [ -f ${ISTIO_PATHS.runtimeToken} ] && break; sleep 0.2; done
echo "marker=$([ -e /run/ivo-before-reboot ] && echo survived || echo gone)"
echo "unit=$(systemctl is-active istio) pid=$(systemctl show -p MainPID --value istio)"
echo "token=$(stat -c '%a %U %Z' ${ISTIO_PATHS.runtimeToken} 2>&1)"
echo "same-as-persistent=$(cmp -s ${ISTIO_PATHS.runtimeToken} ${ONBOARD_PATHS.persistentToken} && echo yes || echo no)"`,
    );
    const lines = Object.fromEntries(
      after.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    // /run was emptied (the marker is gone), so the token there was written by this boot: by the
    // unit's ExecStartPre drop-in, from the persistent copy, with its owner and mode.
    expect(lines.marker).toBe('gone');
    expect(lines.unit).toMatch(/^active pid=[1-9]\d*$/);
    expect(lines.unit).not.toBe(`active pid=${pidBefore}`);
    const [mode, owner, ctime] = (lines.token ?? '').split(' ');
    expect({ mode, owner, rewritten: Number(ctime) >= rebootedAt }).toEqual({
      mode: '400',
      owner: 'istio-proxy',
      rewritten: true,
    });
    expect(lines['same-as-persistent']).toBe('yes');

    const r = await action({ mode: 'verify' });
    expectCleanRun(r, { vm1: 'verified', vm2: 'verified', vm3: 'verified' });
  }, 120_000);

  it("ssh-drop on vm3 (every connection reset after 64 KiB) while its change uploads: vm3 fails in apply after one reconnect, nothing in Istio's paths changed; healed, a rerun applies it", async () => {
    // The runner uploads the package (the real pilot-agent and the stand-in: tens of MiB) in the apply's
    // tar stream, so both the first connection (after inspect) and the reconnected one are cut inside it.
    const inventory = vm3Revision('2');
    const upload = { inventory, 'sidecar-package-path': state.package.path };
    const before = await istioFiles('vm3');
    const pidBefore = await sidecarPid('vm3');
    await fault('fault', 'ssh-drop', 'vm3');
    let r: ActionRun;
    try {
      r = await action(upload);
      // Looked at before the heal: whatever the cut left is still there.
      expect(await leftovers('vm3')).toBe('');
      expect(await istioFiles('vm3')).toEqual(before);
      expect(await sidecarPid('vm3')).toBe(pidBefore); // not restarted
    } finally {
      await fault('heal', 'ssh-drop', 'vm3');
    }
    expectRun(r, 1, { vm1: 'unchanged', vm2: 'unchanged', vm3: 'failed' });
    for (const vm of ['vm1', 'vm2'] as const) expectAllPass(r, vm);
    const vm3 = vmOf(r.report, 'vm3');
    expect(stepsOf(r, 'vm3')).toEqual(['connect:ok', 'inspect:ok', 'token:ok', 'render:ok', 'apply:failed']);
    expect(vm3.error?.step).toBe('apply');
    expect(vm3.error?.message).toMatch(
      new RegExp(
        `^the (SSH connection to|remote script on) vm3 \\(lab@${escapeRe(ipOf('vm3'))}:${SSH_PORT}\\) (failed during a remote script|was lost during a remote script|ended without an exit status)`,
      ),
    );
    expect(vm3.error?.hint).toMatch(
      /the VM keeps its previous files when an apply is cut — rerun once the path is stable$/,
    );
    // The session reconnected once and ran the apply again (the second connection was cut too).
    expect(vm3.counters?.sshConnections).toBe(2);
    expect(r.log).toContain(`::error::[vm3] apply failed: ${vm3.error!.message}`);
    expect(r.summary).toContain(`- **apply**: ${escapeCell(vm3.error!.message)}`);

    // Healed: the same run converges; only vm3 changes, atomically, and nothing is left behind.
    const again = await action(upload);
    expectCleanRun(again, { vm1: 'unchanged', vm2: 'unchanged', vm3: 'updated' });
    expect(
      vmOf(again.report, 'vm3')
        .files.filter((f) => f.changed)
        .map((f) => f.path),
    ).toEqual([ISTIO_PATHS.clusterEnv, ISTIO_PATHS.meshConfig]);
    const now = await istioFiles('vm3');
    expect(now[ISTIO_PATHS.clusterEnv]).not.toBe(before[ISTIO_PATHS.clusterEnv]);
    expect(now[ISTIO_PATHS.rootCert]).toBe(before[ISTIO_PATHS.rootCert]);
    expect(await onVm('vm3', `grep -c '"rev":"2"' ${ISTIO_PATHS.clusterEnv}`)).toBe('1');
    expect(await leftovers('vm3')).toBe('');
  }, 150_000);

  it('ssh-drop on vm3 once, in the middle of the package upload (slow link): the session reconnects, reruns the apply and vm3 is updated in the same run', async () => {
    const inventory = vm3Revision('3');
    const staged = `${ONBOARD_PATHS.staging}/package.deb`;
    const fullSize = state.package.sizeBytes;
    // 128 kbit/s: the package (tens of MiB) would take most of an hour to go up, a wide window to cut it in.
    await fault('fault', 'slow-network', 'vm3', ['--rate', '128kbit']);
    let running: Promise<ActionRun> | undefined;
    let partial = -1;
    let last = -1;
    try {
      running = action({ inventory, 'sidecar-package-path': state.package.path });
      let settled = false;
      const done = () => {
        settled = true;
      };
      running.then(done, done);
      // Wait (bounded) until the VM has received part of the package, then cut the connection.
      for (let i = 0; i < 400 && !settled; i++) {
        last = Number((await onVm('vm3', `stat -c %s ${staged} 2>/dev/null || echo -1`)) || -1);
        if (last > 0 && last < fullSize) {
          partial = last;
          break;
        }
        if (last >= fullSize) break; // too late: the whole package is there
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      if (partial > 0) await fault('fault', 'ssh-drop', 'vm3', ['--after-bytes', '0']);
    } finally {
      await fault('heal', 'slow-network', 'vm3');
      await fault('heal', 'ssh-drop', 'vm3');
    }
    const r = await running!;
    expect(partial > 0 ? 'cut mid-upload' : `no partial upload seen (last size ${last} of ${fullSize} bytes)`).toBe(
      'cut mid-upload',
    );

    expectRun(r, 0, { vm1: 'unchanged', vm2: 'unchanged', vm3: 'updated' });
    for (const vm of VMS) expectAllPass(r, vm);
    const vm3 = vmOf(r.report, 'vm3');
    // One apply step, done on the second connection: the first attempt changed nothing (else the
    // rerun would have found the files already in place and restarted nothing).
    expect(stepsOf(r, 'vm3')).toEqual(['connect:ok', 'inspect:ok', 'token:ok', 'render:ok', 'apply:ok', 'verify:ok']);
    expect(vm3.counters?.sshConnections).toBe(2);
    expect(vm3.steps.find((s) => s.name === 'apply')?.detail).toBe(
      'package unchanged; 2 file(s) changed; sidecar restarted',
    );
    expect(await onVm('vm3', `grep -c '"rev":"3"' ${ISTIO_PATHS.clusterEnv}`)).toBe('1');
    expect(await leftovers('vm3')).toBe('');
    current = inventory; // vm3 keeps its labels from here on
  }, 150_000);

  it(`slow network on vm1 (${SLOW_RATE_MBIT} mbit/s both ways) while it is onboarded afresh: the VM downloads the package through the limit, vm1 is installed; vm2 and vm3 are unaffected`, async () => {
    const onlyVm1 = inventoryWith('only-vm1', (doc) => {
      doc.groups[0]!.vms = doc.groups[0]!.vms.filter((vm) => vm.name === 'vm1');
    });
    const off = await action({ mode: 'offboard', inventory: onlyVm1 });
    expect({ code: off.code, outcome: vmOf(off.report, 'vm1').outcome }).toEqual({ code: 0, outcome: 'offboarded' });

    const hostVeth = (vm: VmName) => findVm(state, vm).hostVeth;
    await fault('fault', 'slow-network', 'vm1', ['--rate', `${SLOW_RATE_MBIT}mbit`]);
    let r: ActionRun;
    let limiter: string;
    try {
      r = await action();
      // The qdisc toward vm1 (the download direction), read before the heal removes it.
      limiter = (await run(['tc', '-s', 'qdisc', 'show', 'dev', hostVeth('vm1')])).stdout;
    } finally {
      await fault('heal', 'slow-network', 'vm1');
    }
    expectCleanRun(r, { vm1: 'installed', vm2: 'unchanged', vm3: 'unchanged' });
    expect(vmOf(r.report, 'vm1').package).toEqual({ version: state.istioVersion, action: 'installed' });
    // The package went through the rate limit and was held back by it…
    const sent = Number(/Sent (\d+) bytes/.exec(limiter)?.[1] ?? 0);
    const overlimits = Number(/overlimits (\d+)/.exec(limiter)?.[1] ?? 0);
    expect({
      tbf: new RegExp(`qdisc tbf .* rate ${SLOW_RATE_MBIT}Mbit`).test(limiter),
      sentAtLeastPackage: sent >= state.package.sizeBytes,
      throttled: overlimits > 0,
    }).toEqual({
      tbf: true,
      sentAtLeastPackage: true,
      throttled: true,
    });
    // …so vm1's apply cannot have been faster than the package at the limit (less the 16 KiB burst).
    const minApplyMs = ((state.package.sizeBytes - 16 * 1024) / (SLOW_RATE_MBIT * 125_000)) * 1000 * 0.9;
    expect(vmOf(r.report, 'vm1').steps.find((s) => s.name === 'apply')!.durationMs).toBeGreaterThanOrEqual(minApplyMs);
    // The other VMs' links carry no limit at all.
    for (const vm of ['vm2', 'vm3'] as const) {
      expect([vm, (await run(['tc', 'qdisc', 'show', 'dev', hostVeth(vm)])).stdout.includes('tbf')]).toEqual([
        vm,
        false,
      ]);
    }
  }, 150_000);

  it('east-west gateway with a load-balancer hostname: the run resolves it through the lab DNS and succeeds, naming the hostname and the address; without that DNS it stops before any VM', async () => {
    const gw = state.gatewayIP;
    await fault('fault', 'eastwest-hostname');
    let r: ActionRun;
    let noDns: ActionRun;
    try {
      r = await action();
      // The same run with a resolver that cannot answer (nothing listens on 127.0.0.1:9).
      noDns = await action({ 'dns-servers': '127.0.0.1:9' });
    } finally {
      await fault('heal', 'eastwest-hostname');
    }
    // The resolved address is the gateway IP the VMs already use: nothing on them changes.
    expectCleanRun(r, { vm1: 'unchanged', vm2: 'unchanged', vm3: 'unchanged' });
    expect(r.report?.cluster?.eastWest).toEqual({
      address: gw,
      source: 'lb-hostname',
      hostname: LAB_GATEWAY_HOSTNAME,
      candidates: [gw],
    });
    expect(r.log).toContain(`east-west gateway ${LAB_GATEWAY_HOSTNAME} resolved to ${gw}; using ${gw}`);

    expect(noDns.code).toBe(1);
    expect(noDns.report?.fatal?.stage).toBe('cluster');
    expect(noDns.report?.fatal?.message).toMatch(
      new RegExp(
        `^DNS name ${escapeRe(LAB_GATEWAY_HOSTNAME)} of the east-west gateway did not resolve via 127\\.0\\.0\\.1:9 `,
      ),
    );
    for (const vm of VMS)
      expect([vm, vmOf(noDns.report, vm).outcome, vmOf(noDns.report, vm).steps]).toEqual([vm, 'skipped-preflight', []]);
  }, 120_000);

  it('plan on the onboarded fleet: nothing would change; a label change shows as a diff on vm3 only, and nothing is touched', async () => {
    const planned = (r: ActionRun, vm: VmName) => vmOf(r.report, vm);
    const quiet = await action({ mode: 'plan' });
    expect(quiet.code).toBe(0);
    for (const vm of VMS) {
      expect({
        vm,
        outcome: planned(quiet, vm).outcome,
        changed: planned(quiet, vm)
          .files.filter((f) => f.changed)
          .map((f) => f.path),
      }).toEqual({ vm, outcome: 'planned', changed: [] });
      expect(quiet.log).toContain(`[${vm}] plan: package would be left as is; no file would change`);
    }

    const onDisk = () =>
      onVm(
        'vm3',
        `sha256sum ${ISTIO_PATHS.clusterEnv} ${ISTIO_PATHS.meshConfig} /etc/hosts; systemctl show -p MainPID istio`,
      );
    const before = await onDisk();
    const r = await action({ mode: 'plan', inventory: vm3Revision('plan') });
    expect(r.code).toBe(0);
    const vm3 = planned(r, 'vm3');
    expect(vm3.files.filter((f) => f.changed).map((f) => f.path)).toEqual([
      '/var/lib/istio/envoy/cluster.env',
      '/etc/istio/config/mesh',
    ]);
    expect(vm3.files.find((f) => f.path === '/var/lib/istio/envoy/cluster.env')?.diff).toMatch(/^\+.*rev.*plan/m);
    for (const vm of ['vm1', 'vm2'] as const)
      expect({ vm, changed: planned(r, vm).files.filter((f) => f.changed) }).toEqual({ vm, changed: [] });
    // Plan writes nothing and restarts nothing.
    expect(await onDisk()).toBe(before);
    expect(r.report?.cluster?.objects.every((o) => o.action === 'unchanged' || o.action.startsWith('would-'))).toBe(
      true,
    );
  }, 120_000);

  // Last: what the lab's API does to istiod's caches when the CRDs are deleted is not what a real API server
  // does (it drops the custom resources without a DELETED event and keeps the watches open), so istiod keeps the
  // deleted WorkloadEntries and, after the heal, refuses every reconnecting agent ("failed updating
  // WorkloadEntry … not found", pilot/pkg/autoregistration/controller.go registerWorkload). Only the preflight is
  // asserted here; the convergence after the heal is left out until the lab's API deletes like a real one.
  it('WorkloadGroup/WorkloadEntry CRDs missing: the run stops at the cluster preflight naming them, and no VM is even connected to', async () => {
    // sshd logs every connection (accepted or not): its log must not grow.
    const sshdLog = () => Promise.all(VMS.map((vm) => onVm(vm, 'wc -l < /var/log/sshd-lab.log')));
    const logBefore = await sshdLog();
    await fault('fault', 'crd-missing');
    let r: ActionRun;
    try {
      r = await action();
      expect(await sshdLog()).toEqual(logBefore);
    } finally {
      await fault('heal', 'crd-missing');
    }
    expect(r.code).toBe(1);
    expect(r.report?.fatal?.stage).toBe('cluster');
    const message = r.report?.fatal?.message ?? '';
    expect(message).toMatch(
      /^Cluster preflight failed: Istio CRDs not served: workloadgroups\.networking\.istio\.io \(networking\.istio\.io\/v1\), workloadentries\.networking\.istio\.io \(networking\.istio\.io\/v1\), serviceentries\.networking\.istio\.io \(networking\.istio\.io\/v1\)\. Install Istio's CRDs/,
    );
    expectNoVmTouched(r, VMS);
    expect(r.summary).toContain(`**cluster**: ${message}`);
    expect(r.log).toContain(`::error::${message}`);
  }, 150_000);
});
