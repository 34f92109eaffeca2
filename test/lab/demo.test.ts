// `npm run demo`, the README's first command, run as a user runs it: a 3-VM lab on real Istio (the real istiod,
// the real pilot-agent on each VM) onboarded through dist/index.js, `go version -m` of the running istiod and of
// each VM's pilot-agent, then vm2 made to accept plaintext under the STRICT policy the run itself creates — by an
// older workload-level PERMISSIVE PeerAuthentication selecting vm2's inventory label, which Istio prefers. The
// demo exits 0 only when the first run passes every check, every binary is module istio.io/istio, and the second
// run fails vm2 alone — so a STRICT policy that is still on its way to the other sidecars must not fail them.
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
    // The running programs: istiod's process binary and each VM's installed pilot-agent are Istio's module.
    const modules = [
      ...out.matchAll(
        /^(istiod \(pid \d+\)|vm\d \/usr\/local\/bin\/pilot-agent): \$ go version -m .*\n\tpath\t(\S+)\n\tmod\tistio\.io\/istio\tv0\.0\.0-/gm,
      ),
    ].map((m) => `${m[1]!.replace(/\d+\)/, 'N)')} ${m[2]!}`);
    expect(modules).toEqual([
      'istiod (pid N) istio.io/istio/pilot/cmd/pilot-discovery',
      'vm1 /usr/local/bin/pilot-agent istio.io/istio/pilot/cmd/pilot-agent',
      'vm2 /usr/local/bin/pilot-agent istio.io/istio/pilot/cmd/pilot-agent',
      'vm3 /usr/local/bin/pilot-agent istio.io/istio/pilot/cmd/pilot-agent',
    ]);
    expect(out).toMatch(/demo complete in [\d.]+ s/);
    expect(out).toMatch(/lab removed \(namespaces, mounts, processes\)/);
  }, 300_000);
});
