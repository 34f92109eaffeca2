// `npm run lab -- <command>`: up, down, fault, heal, status. See test/lab/README.md.
import path from 'node:path';
import { controlRequest, type ControlRequest } from './control.js';
import { labDown, labUp } from './lab.js';
import { tryReadState } from './state.js';

const USAGE = `usage: npm run lab -- <command> [options]
  up --vms N --dir DIR [--ssh-port P] [--package-size-mb N] [--istio-version V] [--arch amd64|arm64] [--app-port P] [--node-path PATH] [--istio-namespace NS] [--extra-revision REV] [--extra-versions V1,V2] [--extra-depends V=PKG[+PKG]]
  down --dir DIR
  fault NAME [--vm VM] --dir DIR [--after-bytes N] [--rate R]
  heal NAME [--vm VM] --dir DIR
  status --dir DIR [--json]`;

interface Parsed {
  command: string;
  positional: string[];
  flags: Map<string, string>;
}

const BOOLEAN_FLAGS = new Set(['json', 'help']);

/** `--extra-versions 1.31.1,1.31.2 --extra-depends 1.31.1=faketime+curl` → versions with their dependencies. */
function extraVersions(list: string | undefined, depends: string | undefined) {
  if (!list) {
    if (depends) throw new Error('--extra-depends needs --extra-versions');
    return undefined;
  }
  const byVersion = new Map<string, string[]>();
  for (const item of (depends ?? '').split(',').filter(Boolean)) {
    const [version, packages] = item.split('=');
    if (!version || !packages) throw new Error(`--extra-depends: '${item}' is not VERSION=PKG[+PKG]`);
    byVersion.set(version, packages.split('+'));
  }
  const versions = list.split(',').filter(Boolean);
  for (const version of byVersion.keys())
    if (!versions.includes(version)) throw new Error(`--extra-depends: ${version} is not in --extra-versions`);
  return versions.map((version) => ({
    version,
    ...(byVersion.has(version) ? { depends: byVersion.get(version)! } : {}),
  }));
}

export function parseArgs(argv: string[]): Parsed {
  const [command = '', ...rest] = argv;
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
      else if (BOOLEAN_FLAGS.has(a.slice(2))) flags.set(a.slice(2), 'true');
      else {
        const v = rest[++i];
        if (v === undefined) throw new Error(`${a} needs a value`);
        flags.set(a.slice(2), v);
      }
    } else positional.push(a);
  }
  return { command, positional, flags };
}

function need(p: Parsed, name: string): string {
  const v = p.flags.get(name);
  if (!v) throw new Error(`--${name} is required\n${USAGE}`);
  return v;
}

function intFlag(p: Parsed, name: string): number | undefined {
  const v = p.flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
}

async function control(dir: string, request: ControlRequest): Promise<unknown> {
  const state = tryReadState(dir);
  if (!state) throw new Error(`no lab in ${dir} (no state.json); run \`npm run lab -- up --dir ${dir}\``);
  const reply = await controlRequest(state.files.controlSocket, request);
  if (!reply.ok) throw new Error(reply.error);
  return reply.result;
}

interface StatusResult {
  phase: string;
  labIndex: number;
  gatewayIP: string;
  daemonPid: number;
  package: { url: string; sha256: string };
  istiod: { mode: 'real'; pid?: number; binary?: string; logPath?: string };
  vms: {
    name: string;
    ip: string;
    sshPort: number;
    netns: string;
    anchorPid: number;
    sshdPid: number | null;
    processes: { pid: number; cmd: string }[];
  }[];
  faults: { name: string; vm?: string; since: string }[];
  availableFaults: { name: string; scope: string; description: string }[];
}

function printStatus(s: StatusResult): void {
  const out: string[] = [];
  out.push(`lab ${s.labIndex} (${s.phase}), gateway ${s.gatewayIP}, daemon pid ${s.daemonPid}`);
  out.push(`package ${s.package.url} sha256 ${s.package.sha256}`);
  out.push(`istiod: real, pid ${s.istiod.pid ?? 'DOWN'}, ${s.istiod.binary ?? '?'}, log ${s.istiod.logPath ?? '?'}`);
  for (const vm of s.vms) {
    out.push(
      `${vm.name}  ${vm.ip}:${vm.sshPort}  netns ${vm.netns}  sshd ${vm.sshdPid ?? 'DOWN'}  ${vm.processes.length} processes`,
    );
    for (const p of vm.processes) out.push(`    ${p.pid}  ${p.cmd}`);
  }
  out.push(
    `active faults: ${s.faults.length ? s.faults.map((f) => `${f.name}${f.vm ? `@${f.vm}` : ''}`).join(', ') : 'none'}`,
  );
  out.push(`faults: ${s.availableFaults.map((f) => f.name).join(', ')}`);
  process.stdout.write(out.join('\n') + '\n');
}

async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv);
  if (!p.command || p.flags.has('help') || p.command === 'help') {
    process.stdout.write(USAGE + '\n');
    return p.command ? 0 : 2;
  }
  const dir = path.resolve(need(p, 'dir'));
  switch (p.command) {
    case 'up': {
      const arch = p.flags.get('arch') ?? 'amd64';
      if (arch !== 'amd64' && arch !== 'arm64') throw new Error(`--arch must be amd64 or arm64`);
      const istioNamespace = p.flags.get('istio-namespace');
      if (istioNamespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(istioNamespace))
        throw new Error('--istio-namespace needs a DNS-1123 label');
      const extraRevision = p.flags.get('extra-revision');
      if (extraRevision !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(extraRevision))
        throw new Error('--extra-revision needs a DNS-1123 label');
      const state = await labUp({
        dir,
        vms: intFlag(p, 'vms') ?? 1,
        sshPort: intFlag(p, 'ssh-port'),
        packageSizeMb: intFlag(p, 'package-size-mb'),
        istioVersion: p.flags.get('istio-version'),
        arch,
        appPort: intFlag(p, 'app-port'),
        nodePath: p.flags.get('node-path'),
        istioNamespace: p.flags.get('istio-namespace'),
        extraRevision,
        extraVersions: extraVersions(p.flags.get('extra-versions'), p.flags.get('extra-depends')),
      });
      process.stdout.write(
        [
          `lab ${state.labIndex} is up in ${dir} (${state.vms.length} VMs, ${state.timings.totalMs} ms)`,
          `  inventory   ${state.files.inventory}`,
          `  ssh key     ${state.files.privateKey}`,
          `  known_hosts ${state.files.knownHosts}`,
          `  action.env  ${state.files.actionEnv}`,
          `  try: ssh -i ${state.files.privateKey} -o UserKnownHostsFile=${state.files.knownHosts} -o StrictHostKeyChecking=yes ${state.user}@${state.vms[0]?.ip} 'sudo -n true'`,
          '',
        ].join('\n'),
      );
      return 0;
    }
    case 'down': {
      const report = await labDown(dir);
      return report.problems.length ? 1 : 0;
    }
    case 'fault':
    case 'heal': {
      const name = p.positional[0];
      if (!name) throw new Error(`${p.command} needs a fault name\n${USAGE}`);
      const options: Record<string, string> = {};
      for (const [k, v] of p.flags) if (k !== 'dir' && k !== 'vm') options[k] = v;
      const result = (await control(dir, {
        op: p.command,
        name,
        vm: p.flags.get('vm'),
        ...(Object.keys(options).length ? { options } : {}),
      })) as { faults: { name: string; vm?: string }[] };
      process.stdout.write(
        `${p.command === 'fault' ? 'applied' : 'healed'} ${name}${p.flags.get('vm') ? ` on ${p.flags.get('vm')}` : ''}; active faults: ${
          result.faults.map((f) => `${f.name}${f.vm ? `@${f.vm}` : ''}`).join(', ') || 'none'
        }\n`,
      );
      return 0;
    }
    case 'status': {
      const result = (await control(dir, { op: 'status' })) as StatusResult;
      if (p.flags.get('json') === 'true') process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      else printStatus(result);
      return 0;
    }
    default:
      throw new Error(`unknown command ${p.command}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`lab: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
