// The three baselines, each doing the runbook's steps with the files the action's CLI rendered, on the
// same lab and package as the action, timed from the first SSH command to the last VM's
// `systemctl start istio` returning (rendering the files is not timed: it needs the cluster, which the
// runbook's operator does beforehand with istioctl). Each run is followed (untimed) by the check that
// every VM's sidecar is running and ready; a run that does not pass it is recorded as failed.
//   (a) runbook.sh   — one ssh/scp per runbook command, VM after VM
//   (b) playbook.yml — ansible-playbook, forks = N, pipelining, ControlPersist
//   (c) lean.sh      — one ssh per VM carrying a tar stream into one batched script, all VMs at once
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../test/lab/exec.js';
import { BASELINES_DIR, packageUrl, sidecarsNotRunning, type BenchLab } from './lab.js';
import { runTimed } from './proc.js';

export type BaselineName = 'runbook' | 'ansible' | 'lean';

export interface BaselineMeasurement {
  name: BaselineName;
  vms: number;
  ok: boolean;
  problems: string[];
  wallMs: number;
  /** Runner CPU (the script and every ssh/scp/ansible process it started), seconds. */
  cpuS: number;
}

function vmPairs(lab: BenchLab): string[] {
  return lab.state.vms.map((vm) => `${vm.name}=${vm.ip}`);
}

export async function runBaseline(name: BaselineName, lab: BenchLab, filesRoot: string): Promise<BaselineMeasurement> {
  const n = lab.state.vms.length;
  const { privateKey, knownHosts } = lab.state.files;
  const url = packageUrl(lab);
  const sha = lab.state.package.sha256;
  const timeoutMs = name === 'lean' ? 180_000 : 600_000;
  let cleanup: (() => Promise<void>) | undefined;
  let argv: string[];
  let env: NodeJS.ProcessEnv = process.env;
  switch (name) {
    case 'runbook':
      argv = [
        'bash',
        path.join(BASELINES_DIR, 'runbook.sh'),
        privateKey,
        knownHosts,
        lab.state.user,
        url,
        filesRoot,
        ...vmPairs(lab),
      ];
      break;
    case 'lean':
      argv = [
        'bash',
        path.join(BASELINES_DIR, 'lean.sh'),
        privateKey,
        knownHosts,
        lab.state.user,
        url,
        sha,
        filesRoot,
        ...vmPairs(lab),
      ];
      break;
    case 'ansible': {
      const setup = ansibleSetup(lab, filesRoot, url, sha);
      argv = ['ansible-playbook', '-i', setup.inventory, path.join(BASELINES_DIR, 'playbook.yml')];
      env = setup.env;
      cleanup = setup.cleanup;
      break;
    }
  }
  try {
    const r = await runTimed(argv, { env, timeoutMs });
    const problems: string[] = [];
    if (r.timedOut) problems.push(`timed out after ${timeoutMs / 1000} s`);
    if (r.code !== 0)
      problems.push(
        `exit ${r.code ?? r.signal}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join(' | ')}`,
      );
    if (problems.length === 0) {
      const notRunning = await sidecarsNotRunning(lab);
      if (notRunning.length > 0) problems.push(`sidecar not running on ${notRunning.join(', ')}`);
    }
    return { name, vms: n, ok: problems.length === 0, problems, wallMs: r.wallMs, cpuS: r.cpuUserS + r.cpuSysS };
  } finally {
    await cleanup?.();
  }
}

interface AnsibleSetup {
  inventory: string;
  env: NodeJS.ProcessEnv;
  cleanup: () => Promise<void>;
}

/**
 * ansible.cfg + inventory in a scratch dir: forks = N, pipelining, ControlMaster/ControlPersist with a
 * control path of its own (closed with `ssh -O exit` afterwards, so no later run reuses a master),
 * facts not gathered (no step needs them), the interpreter given (no discovery round trips).
 */
function ansibleSetup(lab: BenchLab, filesRoot: string, url: string, sha: string): AnsibleSetup {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ivo-bench-ansible-'));
  const controlDir = path.join(scratch, 'cp');
  const n = lab.state.vms.length;
  const sshArgs = `-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=${lab.state.files.knownHosts} -o StrictHostKeyChecking=yes -o LogLevel=ERROR`;
  writeFileSync(
    path.join(scratch, 'ansible.cfg'),
    [
      '[defaults]',
      `forks = ${n}`,
      'host_key_checking = True',
      'interpreter_python = /usr/bin/python3',
      'retry_files_enabled = False',
      `local_tmp = ${path.join(scratch, 'tmp')}`,
      'stdout_callback = default',
      '',
      '[ssh_connection]',
      'pipelining = True',
      `ssh_args = ${sshArgs}`,
      `control_path_dir = ${controlDir}`,
      '',
    ].join('\n'),
  );
  const inventory = path.join(scratch, 'inventory.ini');
  writeFileSync(
    inventory,
    [
      '[vms]',
      ...lab.state.vms.map(
        (vm) =>
          `${vm.name} ansible_host=${vm.ip} ansible_port=${vm.sshPort} files_dir=${path.join(filesRoot, vm.name)}`,
      ),
      '',
      '[vms:vars]',
      `ansible_user=${lab.state.user}`,
      `ansible_ssh_private_key_file=${lab.state.files.privateKey}`,
      `package_url=${url}`,
      `package_sha256=${sha}`,
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ANSIBLE_CONFIG: path.join(scratch, 'ansible.cfg'),
    ANSIBLE_HOME: path.join(scratch, 'home'),
    ANSIBLE_NOCOLOR: '1',
    PATH: `/usr/bin:/bin:/usr/sbin:/sbin:${process.env.PATH ?? ''}`,
  };
  return {
    inventory,
    env,
    cleanup: async () => {
      // close this run's ControlPersist masters by their sockets (never by process name)
      const { readdirSync } = await import('node:fs');
      let sockets: string[] = [];
      try {
        sockets = readdirSync(controlDir);
      } catch {
        sockets = [];
      }
      for (const socket of sockets) {
        await run(['ssh', '-o', `ControlPath=${path.join(controlDir, socket)}`, '-O', 'exit', 'ignored'], {
          allowFailure: true,
          timeoutMs: 10_000,
        });
      }
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** ansible-playbook present, or installed from Debian (`apt-get install ansible-core`, as root). */
export async function ensureAnsible(): Promise<string> {
  const have = await run(['sh', '-c', 'command -v ansible-playbook'], { allowFailure: true });
  if (have.code !== 0) {
    process.stderr.write('bench: installing ansible-core with apt-get (Debian package)…\n');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = await run(['apt-get', 'install', '-y', '--no-install-recommends', 'ansible-core'], {
      env,
      allowFailure: true,
      timeoutMs: 600_000,
    });
    if (r.code !== 0) {
      await run(['apt-get', 'update'], { env, allowFailure: true, timeoutMs: 300_000 });
      r = await run(['apt-get', 'install', '-y', '--no-install-recommends', 'ansible-core'], {
        env,
        allowFailure: true,
        timeoutMs: 600_000,
      });
    }
    if (r.code !== 0)
      throw new Error(`apt-get install ansible-core failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  const version = await run(['ansible-playbook', '--version'], {
    allowFailure: true,
    env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` },
  });
  return version.stdout.split('\n')[0]?.trim() ?? 'ansible-playbook (version unknown)';
}
