// The lab as the benchmark uses it: up (fresh, 20 MB incompressible package) and down through the lab
// CLI, a copy of each VM's pristine /etc/hosts, the reset between runs (nsenter, not SSH, so resets are
// neither timed nor counted), the "sidecar running" check that ends every baseline, and the per-VM
// files the baselines install, rendered by the action's own CLI with a fresh token from the lab's
// Kubernetes API.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mapLimit, run } from '../../test/lab/exec.js';
import { GROUP, parseActionEnv } from '../../test/lab/files.js';
import type { LabState } from '../../test/lab/state.js';
import { downLab, newLabDir, node24, upLab } from '../../test/lab/testing.js';
import { execInVm } from '../../test/lab/vm/exec.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BASELINES_DIR = path.resolve(HERE, '..', 'baselines');
const HOSTS_COPY = '/var/tmp/ivo-bench-hosts.orig';
/** Parallel resets/checks: the machine has 2 cores; dpkg --purge is mostly CPU. */
const HOST_SIDE_PARALLELISM = 4;

export const PACKAGE_SIZE_MB = 20;

export interface BenchLab {
  state: LabState;
  dir: string;
  upMs: number;
}

export async function labUp(vms: number): Promise<BenchLab> {
  const dir = newLabDir(`bench${vms}`);
  const started = performance.now();
  try {
    const state = await upLab(dir, vms, ['--package-size-mb', String(PACKAGE_SIZE_MB)]);
    const upMs = performance.now() - started;
    await mapLimit(state.vms, HOST_SIDE_PARALLELISM, (vm) =>
      execInVm(state, vm, `cp /etc/hosts ${HOSTS_COPY}`, { timeoutMs: 15_000 }),
    );
    return { state, dir, upMs };
  } catch (error) {
    await labDown(dir);
    throw error;
  }
}

/**
 * `down`; never throws. Returns what went wrong (also printed), undefined when down was clean. After an
 * unclean down the lab dir (lab.log, state.json; the key files are gone) stays for inspection.
 */
export async function labDown(dir: string): Promise<string | undefined> {
  let problem: string | undefined;
  try {
    const r = await downLab(dir);
    if (r.code !== 0)
      problem = `lab down ${dir} exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' | ')}`;
  } catch (error) {
    problem = `lab down ${dir} failed: ${String(error)}`;
  }
  if (problem) process.stderr.write(`bench: ${problem}\n`);
  return problem;
}

/** Removes every trace of an onboarding from every VM; throws naming the VMs that did not come clean. */
export async function resetVms(lab: BenchLab): Promise<void> {
  const script = readFileSync(path.join(BASELINES_DIR, 'reset-vm.sh'), 'utf8');
  const results = await mapLimit(lab.state.vms, HOST_SIDE_PARALLELISM, (vm) =>
    execInVm(lab.state, vm, ['/bin/sh', '-c', script, 'reset-vm', lab.state.user], {
      timeoutMs: 60_000,
      allowFailure: true,
    }),
  );
  const bad = results
    .map((r, i) => (r.code === 0 ? undefined : `${lab.state.vms[i]!.name}: ${r.stderr.trim() || r.code}`))
    .filter(Boolean);
  if (bad.length > 0) throw new Error(`reset failed: ${bad.join('; ')}`);
}

/**
 * Whether every VM ends with the sidecar running: the istio unit active and Envoy's readiness endpoint
 * answering 200 (waited for up to 30 s per VM, after the timed part). Returns the VMs that are not.
 */
export async function sidecarsNotRunning(lab: BenchLab): Promise<string[]> {
  const check =
    'systemctl is-active istio >/dev/null 2>&1 || exit 3; i=0; ' +
    'while [ $i -lt 60 ]; do curl -fsS -o /dev/null -m 2 http://localhost:15021/healthz/ready && exit 0; sleep 0.5; i=$((i+1)); done; exit 4';
  const results = await mapLimit(lab.state.vms, HOST_SIDE_PARALLELISM, (vm) =>
    execInVm(lab.state, vm, check, { timeoutMs: 90_000, allowFailure: true }),
  );
  return results
    .map((r, i) =>
      r.code === 0 ? undefined : `${lab.state.vms[i]!.name} (${r.code === 3 ? 'unit not active' : 'not ready'})`,
    )
    .filter((x): x is string => x !== undefined);
}

/**
 * The five files per VM (cluster.env, mesh.yaml, hosts, root-cert.pem, istio-token) the baselines
 * install, from `dist/cli/index.js render -f <the WorkloadGroup the action applied> --kubeconfig …`:
 * the CLI reads mesh config, root cert, cluster ID and east-west address from the lab's API and
 * requests a fresh bootstrap token (TokenRequest) per VM. Written under the lab dir (0600 token).
 */
export async function renderBaselineFiles(lab: BenchLab, distDir: string): Promise<string> {
  const root = path.join(lab.dir, 'baseline-files');
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const kubeconfig = lab.state.files.kubeconfig ?? path.join(lab.dir, 'kubeconfig');
  const inputs = parseActionEnv(readFileSync(lab.state.files.actionEnv, 'utf8'));
  const wg = await run(
    ['kubectl', '--kubeconfig', kubeconfig, 'get', 'workloadgroup', '-n', GROUP.namespace, GROUP.name, '-o', 'yaml'],
    { timeoutMs: 30_000 },
  );
  const wgFile = path.join(root, 'workloadgroup.yaml');
  writeFileSync(wgFile, wg.stdout);
  const dns = inputs['INPUT_DNS-SERVERS'];
  await mapLimit(lab.state.vms, 2, async (vm) => {
    const out = path.join(root, vm.name);
    const argv = [
      node24(),
      path.join(distDir, 'cli', 'index.js'),
      'render',
      '-f',
      wgFile,
      '--kubeconfig',
      kubeconfig,
      '--internalIP',
      vm.ip,
      '--autoregister',
      ...(dns ? ['--dns-servers', dns] : []),
      '-o',
      out,
    ];
    const r = await run(argv, { timeoutMs: 60_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`render for ${vm.name} failed (${r.code}): ${r.stderr.trim()}`);
  });
  return root;
}

export function removeBaselineFiles(root: string): void {
  rmSync(root, { recursive: true, force: true });
}

/** The concrete package URL (the lab's build) the VMs download. */
export function packageUrl(lab: BenchLab): string {
  return lab.state.package.url;
}
