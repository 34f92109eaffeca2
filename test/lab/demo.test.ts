// `npm run demo`, the README's first command, run as a user runs it: a 3-VM lab onboarded through
// dist/index.js, then vm2 made to accept plaintext under a STRICT policy the run itself creates. The
// demo exits 0 only when the first run passes every check and the second fails vm2 alone — so a
// STRICT policy that is still on its way to the other sidecars must not fail them.
import { describe, expect, it } from '@jest/globals';
import { run } from './exec.js';
import { node24, REPO_ROOT } from './testing.js';

describe('npm run demo', () => {
  it('onboards the lab, shows the summary, fails only the faulty VM, and removes the lab', async () => {
    const demo = await run([node24(), 'node_modules/tsx/dist/cli.mjs', 'scripts/demo.ts'], {
      cwd: REPO_ROOT,
      timeoutMs: 240_000,
      allowFailure: true,
    });
    const out = demo.stdout;
    expect({ code: demo.code, tail: out.slice(-1500) }).toMatchObject({ code: 0 });
    expect(out).toMatch(/exit code 0, outputs onboarded=vm1,vm2,vm3 failed=-/);
    expect(out).toMatch(/exit code 1, outputs onboarded=vm1,vm3 failed=vm2/);
    expect(out).toMatch(/\[vm2\] mesh-to-vm-mtls: plaintext accepted: 3 of 3 plaintext calls answered under STRICT/);
    expect(out).not.toMatch(/\[vm[13]\] mesh-to-vm-mtls/);
    expect(out).toMatch(/demo complete in [\d.]+ s/);
    expect(out).toMatch(/lab removed \(namespaces, mounts, processes\)/);
  }, 300_000);
});
