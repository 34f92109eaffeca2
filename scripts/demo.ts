// npm run demo: bring up a 3-VM lab, onboard it with the bundled action (dist/index.js) exactly as a
// GitHub runner would (INPUT_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files), show the job
// summary, then inject one fault (plaintext accepted by a VM under STRICT mTLS) and show the failing
// run, and tear the lab down — whatever happens.
import { existsSync } from 'node:fs';
import { runAction, type ActionRun } from '../test/lab/action-harness.js';
import { assertMachineReady } from '../test/lab/lab.js';
import { downLab, faultCli, newLabDir, upLab } from '../test/lab/testing.js';
import { markdownForTerminal } from './markdown-terminal.js';

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

async function main(): Promise<number> {
  checkMachine();
  const started = Date.now();
  const dir = newLabDir('demo');
  try {
    step(
      'bringing up the lab: 3 VMs (network namespaces running real sshd, sudo, dpkg) + Kubernetes, istiod and Envoy doubles',
    );
    const state = await upLab(dir, 3);
    process.stdout.write(`lab ready in ${dir}: ${state.vms.map((vm) => `${vm.name} ${vm.ip}`).join(', ')}\n`);

    step('run 1: node dist/index.js — onboard every VM and verify it');
    const first = await runAction(state);
    showRun(first);

    step("injecting a fault: vm2's sidecar accepts plaintext, and the run asks for STRICT mTLS");
    await faultCli(dir, 'fault', 'plaintext-accepted', 'vm2');
    const second = await runAction(state, { 'peer-authentication': 'strict' });
    showRun(second);
    await faultCli(dir, 'heal', 'plaintext-accepted', 'vm2');

    const ok = first.code === 0 && second.code !== 0 && second.outputs.failed === 'vm2';
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
