// The lab network: bridge ivo<k>br (10.233.k.1/24) in the host namespace, one netns + veth per VM.
import { existsSync } from 'node:fs';
import { run } from '../exec.js';
import { bridgeName, gatewayIP, subnet, vmHostVeth, vmIP, vmNetns } from './addresses.js';

export interface VmNetwork {
  index: number;
  netns: string;
  hostVeth: string;
  ip: string;
}

export function planVmNetworks(k: number, count: number): VmNetwork[] {
  return Array.from({ length: count }, (_, n) => ({
    index: n + 1,
    netns: vmNetns(k, n + 1),
    hostVeth: vmHostVeth(k, n + 1),
    ip: vmIP(k, n + 1),
  }));
}

async function ipBatch(lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await run(['ip', '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 60_000 });
}

/** Rule (without -A/-D) that keeps VM traffic inside the lab even when the host forwards packets. */
export function forwardGuardRule(k: number): string[] {
  const br = bridgeName(k);
  return ['FORWARD', '-i', br, '!', '-o', br, '-m', 'comment', '--comment', `ivo-lab-${k}`, '-j', 'DROP'];
}

export async function createNetwork(k: number, vms: VmNetwork[]): Promise<void> {
  const br = bridgeName(k);
  await ipBatch([`link add ${br} type bridge`, `addr add ${gatewayIP(k)}/24 dev ${br}`, `link set ${br} up`]);
  await ipBatch(vms.map((vm) => `netns add ${vm.netns}`));
  await ipBatch(
    vms.flatMap((vm) => [
      `link add ${vm.hostVeth} type veth peer name eth0 netns ${vm.netns}`,
      `link set ${vm.hostVeth} master ${br}`,
      `link set ${vm.hostVeth} up`,
    ]),
  );
  await Promise.all(
    vms.map((vm) =>
      run(['ip', '-n', vm.netns, '-batch', '-'], {
        input:
          [
            'link set lo up',
            `addr add ${vm.ip}/24 dev eth0`,
            'link set eth0 up',
            `route add default via ${gatewayIP(k)}`,
          ].join('\n') + '\n',
      }),
    ),
  );
  await run(['iptables', '-I', ...forwardGuardRule(k)]);
}

/** Removes the namespaces, veths, bridge and host rule. Every step tolerates "already gone". */
export async function destroyNetwork(k: number, netnsNames: string[], hostRules: string[][]): Promise<string[]> {
  const problems: string[] = [];
  for (const rule of hostRules) {
    // Delete every copy (bounded).
    for (let i = 0; i < 10; i++) {
      const r = await run(['iptables', '-D', ...rule], { allowFailure: true });
      if (r.code !== 0) break;
    }
  }
  for (const ns of netnsNames) {
    if (!existsSync(`/run/netns/${ns}`)) continue;
    const r = await run(['ip', 'netns', 'del', ns], { allowFailure: true });
    if (r.code !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  const br = bridgeName(k);
  if (existsSync(`/sys/class/net/${br}`)) {
    const r = await run(['ip', 'link', 'del', br], { allowFailure: true });
    if (r.code !== 0) problems.push(`ip link del ${br}: ${r.stderr.trim()}`);
  }
  return problems;
}

export { subnet, gatewayIP, bridgeName };
