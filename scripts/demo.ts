// npm run demo: bring up a 3-VM lab on real Istio (the real istiod, the real
// pilot-agent on every VM, the Go Envoy stand-in), onboard it with the bundled action (dist/index.js) exactly as a
// GitHub runner would (INPUT_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files), show the job summary and
// `go version -m` of the running istiod and of each VM's pilot-agent, then make one VM accept plaintext under the
// STRICT policy the second run creates — with Istio's own configuration, no lab switch: an operator's older
// workload-level PeerAuthentication (PERMISSIVE) selects vm2, and Istio uses the oldest workload-level policy
// (pilot/pkg/security/authn/policy_applier.go, ComposePeerAuthentication) — show the failing run, and tear the
// lab down, whatever happens.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { runAction, type ActionRun } from '../test/lab/action-harness.js';
import { istioBuild } from '../test/lab/istio/binaries.js';
import { assertMachineReady } from '../test/lab/lab.js';
import { realSidecarSources } from '../test/lab/package/real-sidecar.js';
import { readState, type LabState } from '../test/lab/state.js';
import { downLab, newLabDir, upLab } from '../test/lab/testing.js';
import { vmPath } from '../test/lab/vm/exec.js';
import { markdownForTerminal } from './markdown-terminal.js';

const execFileP = promisify(execFile);

/** vm2's own inventory label, which the operator's PERMISSIVE PeerAuthentication selects. */
const LEGACY_LABEL = { tier: 'legacy' };
const OPERATOR_POLICY = 'vm2-legacy-permissive';

function checkMachine(): void {
  assertMachineReady();
  if (!existsSync('dist/index.js')) throw new Error('dist/index.js is missing: run `npm run build` first');
}

function step(title: string): void {
  process.stdout.write(`\n\x1b[1m━━ ${title}\x1b[0m\n`);
}

function showRun(run: ActionRun): void {
  const lines = run.log
    .split('\n')
    .filter(
      (line) =>
        !line.startsWith('::debug::') && !line.startsWith('::group::') && line !== '::endgroup::' && line.trim() !== '',
    )
    .filter((line) => line.startsWith('[') || line.startsWith('::error') || /^(onboard|verify|cluster)/.test(line))
    .map((line) => line.replace(/^::error[^:]*::/, 'error: '));
  process.stdout.write(`${lines.join('\n')}\n`);
  step(
    `job summary (GITHUB_STEP_SUMMARY) — exit code ${run.code}, outputs onboarded=${run.outputs.onboarded || '-'} failed=${run.outputs.failed || '-'}`,
  );
  process.stdout.write(`${markdownForTerminal(run.summary)}\n`);
}

function kubectl(state: LabState, args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', state.files.kubeconfig ?? path.join(state.dir, 'kubeconfig'), ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`kubectl ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout),
    );
    child.stdin?.end(input);
  });
}

/** The lab's inventory with vm2 labelled tier=legacy (a VM's labels join its sidecar's, ISTIO_METAJSON_LABELS). */
function demoInventory(state: LabState): string {
  const doc = parse(readFileSync(state.files.inventory, 'utf8')) as {
    groups: { vms: { name: string; labels?: Record<string, string> }[] }[];
  };
  for (const vm of doc.groups[0]!.vms) if (vm.name === 'vm2') vm.labels = { ...LEGACY_LABEL };
  const file = path.join(state.dir, 'demo-inventory.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}

/**
 * `go version -m` of the running istiod (its process's binary, /proc/<pid>/exe, the pid the lab recorded) and of
 * each VM's installed pilot-agent: the `path` and `mod` lines. True when every one is module istio.io/istio.
 */
async function showIstioModules(dir: string): Promise<boolean> {
  const state = readState(dir);
  const pid = state.istiod?.pid;
  const binaries: [string, string][] = [
    [`istiod (pid ${pid ?? '?'})`, `/proc/${pid ?? 0}/exe`],
    ...state.vms.map((vm): [string, string] => [
      `${vm.name} /usr/local/bin/pilot-agent`,
      vmPath(state, vm, '/usr/local/bin/pilot-agent'),
    ]),
  ];
  let allIstio = true;
  for (const [what, file] of binaries) {
    // `go` is needed to build the real lab at all (scripts/istio/build.sh stops without it), so it is here.
    const r = await execFileP('go', ['version', '-m', file], { timeout: 30_000 }).catch((e: unknown) => ({
      stdout: '',
      stderr: e instanceof Error ? e.message : String(e),
    }));
    const lines = r.stdout.split('\n').filter((line) => /^\s+(path|mod)\s/.test(line));
    const istio = lines.some((line) => /^\s+mod\s+istio\.io\/istio\s/.test(line));
    allIstio &&= istio;
    process.stdout.write(`${what}: $ go version -m ${file}\n${lines.join('\n') || r.stderr.trim()}\n`);
  }
  return allIstio;
}

async function main(): Promise<number> {
  checkMachine();
  const started = Date.now();
  // The pinned Istio build and the Envoy stand-in (no-ops when up to date; stop with a message without Go).
  istioBuild();
  realSidecarSources();
  const dir = newLabDir('demo');
  try {
    step(
      'bringing up the lab: 3 VMs (network namespaces running real sshd, sudo, dpkg) + the real istiod (pilot-discovery) and, in the sidecar package, the real pilot-agent with the Go Envoy stand-in',
    );
    const state = await upLab(dir, 3);
    process.stdout.write(`lab ready in ${dir}: ${state.vms.map((vm) => `${vm.name} ${vm.ip}`).join(', ')}\n`);
    const inventory = demoInventory(state);

    step('run 1: node dist/index.js — onboard every VM and verify it (vm2 carries the label tier=legacy)');
    const first = await runAction(state, { inventory });
    showRun(first);

    step("the running programs are Istio: go version -m on the istiod process and on each VM's pilot-agent");
    const modulesOk = await showIstioModules(dir);

    step(
      'an operator exempts vm2 from mTLS (a PeerAuthentication, PERMISSIVE, selecting tier=legacy), then the run asks for STRICT mTLS',
    );
    await kubectl(
      state,
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'security.istio.io/v1',
        kind: 'PeerAuthentication',
        metadata: { name: OPERATOR_POLICY, namespace: 'vm-app' },
        spec: { selector: { matchLabels: LEGACY_LABEL }, mtls: { mode: 'PERMISSIVE' } },
      }),
    );
    // Istio keeps the oldest workload-level policy; creation times have 1 s resolution: be older by more than that.
    await new Promise((r) => setTimeout(r, 1_500));
    const second = await runAction(state, { inventory, 'peer-authentication': 'strict' });
    showRun(second);
    await kubectl(state, ['delete', 'peerauthentication', '-n', 'vm-app', OPERATOR_POLICY, '--ignore-not-found'], '');

    const ok = first.code === 0 && modulesOk && second.code !== 0 && second.outputs.failed === 'vm2';
    step(
      `${ok ? 'demo complete' : 'demo did NOT behave as expected'} in ${((Date.now() - started) / 1000).toFixed(1)} s — tearing the lab down`,
    );
    return ok ? 0 : 1;
  } finally {
    const down = await downLab(dir);
    process.stdout.write(
      down.code === 0 ? 'lab removed (namespaces, mounts, processes)\n' : `lab teardown failed:\n${down.stderr}\n`,
    );
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
