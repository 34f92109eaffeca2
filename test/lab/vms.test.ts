// Lab part 1: the VMs are real SSH machines with their own files, sudo, dpkg, systemctl stand-in and app.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import { run } from './exec.js';
import { parseActionEnv } from './files.js';
import type { LabState } from './state.js';
import { buildSidecarPackage } from './package/build.js';
import { downLab, newLabDir, ssh, sshArgs, upLab } from './testing.js';
import { execInVm, vmPath } from './vm/exec.js';
import { loginDefsWithSystemIds, systemIdRange } from './vm/root.js';

const dir = newLabDir('vms');
let state: LabState;

beforeAll(async () => {
  state = await upLab(dir, 3);
}, 180_000);

afterAll(async () => {
  const r = await downLab(dir);
  expect(r.code).toBe(0);
}, 120_000);

describe('lab VMs', () => {
  it('writes inventory, key, known_hosts and action.env that describe the lab', () => {
    const inv = parse(readFileSync(state.files.inventory, 'utf8')) as {
      mesh: { istioNamespace: string };
      groups: {
        name: string;
        ports: Record<string, number>;
        registration: string;
        vms: { name: string; address: string; user: string; internalIP: string }[];
      }[];
    };
    expect(inv.mesh.istioNamespace).toBe('istio-system');
    expect(inv.groups[0]?.ports).toEqual({ http: 8080 });
    expect(inv.groups[0]?.registration).toBe('auto');
    expect(inv.groups[0]?.vms.map((v) => [v.name, v.address, v.user, v.internalIP])).toEqual(
      state.vms.map((v) => [v.name, v.ip, 'lab', v.ip]),
    );
    expect(statSync(state.files.privateKey).mode & 0o777).toBe(0o600);
    expect(readFileSync(state.files.knownHosts, 'utf8').trim().split('\n')).toHaveLength(3);
    const env = parseActionEnv(readFileSync(state.files.actionEnv, 'utf8'));
    expect(env.INPUT_INVENTORY).toBe(state.files.inventory);
    expect(env['INPUT_SIDECAR-PACKAGE-URL']).toBe(
      `http://${state.gatewayIP}:8081/releases/{version}/{format}/istio-sidecar.{format}`,
    );
    expect(env['INPUT_SIDECAR-PACKAGE-SHA256']).toMatch(/^[0-9a-f]{64}$/);
    // The package is labelled with the real istiod's minor (x.y.0), which Istio's skew rule accepts.
    expect(env['INPUT_ISTIO-VERSION']).toMatch(/^1\.\d+\.0$/);
    expect(env['INPUT_ISTIO-VERSION']).toBe(state.package.version);
    expect(readFileSync(state.files.actionEnv, 'utf8')).not.toContain('PRIVATE');
  });

  it('every VM accepts the real ssh client with strict host key checking, and passwordless sudo works', async () => {
    for (const vm of state.vms) {
      const r = await ssh(state, vm.name, 'sudo -n true && hostname && id -un');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n').slice(0, 2)).toEqual([vm.name, 'lab']);
    }
  });

  it('refuses a host key that is not the one in known_hosts', async () => {
    // vm2's key pinned for vm1's address must fail: the known_hosts entries are the VMs' real, distinct keys.
    const lines = readFileSync(state.files.knownHosts, 'utf8').trim().split('\n');
    const swapped = `${state.vms[0]?.ip} ${lines[1]?.split(' ').slice(1).join(' ')}\n`;
    const file = `${dir}/known_hosts.swapped`;
    await run(['sh', '-c', `printf '%s' "$1" > "$2"`, 'sh', swapped, file]);
    const args = sshArgs(state, 'vm1').map((a) =>
      a.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile="${file}"` : a,
    );
    const r = await run([...args, 'true'], { allowFailure: true });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  it('a file written to /etc/istio on one VM is seen neither on the host nor on another VM', async () => {
    const marker = `/etc/istio/lab-isolation-${process.pid}`;
    const w = await ssh(
      state,
      'vm1',
      `sudo mkdir -p /etc/istio && echo vm1 | sudo tee ${marker} >/dev/null && cat ${marker}`,
    );
    expect(w.code).toBe(0);
    expect(w.stdout.trim()).toBe('vm1');
    expect(existsSync(marker)).toBe(false);
    const other = await ssh(state, 'vm2', `test -e ${marker} && echo present || echo absent`);
    expect(other.stdout.trim()).toBe('absent');
    // The same path seen through the VM's own mount namespace does exist.
    expect(readFileSync(vmPath(state, 'vm1', marker), 'utf8')).toBe('vm1\n');
  });

  it('each VM has its own hostname, /etc/hosts, resolver, /tmp and /run; the lab DIR is not visible inside', async () => {
    const r = await ssh(
      state,
      'vm3',
      `hostname; grep -c vm3 /etc/hosts; cat /etc/resolv.conf | head -1; test -e ${state.files.privateKey} && echo key-visible || echo key-hidden; df --output=fstype /run | tail -1`,
    );
    expect(r.stdout.trim().split('\n')).toEqual(['vm3', '1', `nameserver ${state.gatewayIP}`, 'key-hidden', 'tmpfs']);
    expect(readFileSync('/etc/hostname', 'utf8').trim()).not.toBe('vm3');
  });

  it('the workload app answers with the VM name on the group port, from the host and from another VM', async () => {
    for (const vm of state.vms) {
      const r = await run(['curl', '-sS', '--max-time', '5', `http://${vm.ip}:8080/`], { allowFailure: true });
      expect(r.stdout).toBe(`${vm.name}\n`);
    }
    const cross = await ssh(state, 'vm2', `curl -sS --max-time 5 http://${state.vms[0]?.ip}:8080/`);
    expect(cross.stdout).toBe('vm1\n');
  });

  it('serves the sidecar package at the Istio URL layout with its sha256; unknown versions are 404', async () => {
    const sha = await ssh(
      state,
      'vm1',
      `curl -sSf --max-time 10 -o /tmp/sidecar.deb ${state.package.url} && sha256sum /tmp/sidecar.deb`,
    );
    expect(sha.code).toBe(0);
    expect(sha.stdout.split(' ')[0]).toBe(state.package.sha256);
    const shaFile = await run(['curl', '-sS', '--max-time', '5', `${state.package.url}.sha256`]);
    expect(shaFile.stdout).toBe(`${state.package.sha256}  istio-sidecar.deb\n`);
    const missing = await run([
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--max-time',
      '5',
      `http://${state.gatewayIP}:8081/releases/9.9.9/deb/istio-sidecar.deb`,
    ]);
    expect(missing.stdout).toBe('404');
  });

  it('dpkg -i of the lab package works on a VM and makes istio-proxy, files and modes only there', async () => {
    const install = await ssh(
      state,
      'vm3',
      `curl -sSf --max-time 10 -o /tmp/sidecar.deb ${state.package.url} && sudo dpkg -i /tmp/sidecar.deb && dpkg-query -W -f='\${Package} \${Version} \${Status}\\n' istio-sidecar`,
      { timeoutMs: 60_000 },
    );
    expect(install.code).toBe(0);
    expect(install.stdout).toContain(`istio-sidecar ${state.package.version} install ok installed`);
    const facts = await ssh(
      state,
      'vm3',
      [
        'getent passwd istio-proxy | cut -d: -f1,6',
        'getent group istio-proxy | cut -d: -f1',
        'readlink /etc/istio',
        'stat -c "%n %U:%G %a" /var/lib/istio /var/lib/istio/envoy /var/lib/istio/config /var/lib/istio/config/mesh /var/lib/istio/proxy /var/log/istio /etc/certs /usr/local/bin/envoy /usr/local/bin/pilot-agent /usr/local/bin/istio-start.sh /lib/systemd/system/istio.service /var/lib/istio/envoy/sidecar.env /var/lib/istio/envoy/envoy_bootstrap_tmpl.json',
        'cat /var/lib/dpkg/info/istio-sidecar.conffiles',
      ].join('; '),
    );
    expect(facts.stdout.trim().split('\n')).toEqual([
      'istio-proxy:/var/lib/istio',
      'istio-proxy',
      '/var/lib/istio',
      '/var/lib/istio root:root 755',
      '/var/lib/istio/envoy istio-proxy:istio-proxy 755',
      '/var/lib/istio/config istio-proxy:istio-proxy 755',
      '/var/lib/istio/config/mesh istio-proxy:istio-proxy 644',
      '/var/lib/istio/proxy istio-proxy:istio-proxy 755',
      '/var/log/istio istio-proxy:istio-proxy 755',
      '/etc/certs istio-proxy:istio-proxy 755',
      '/usr/local/bin/envoy root:root 2755',
      '/usr/local/bin/pilot-agent root:root 2755',
      '/usr/local/bin/istio-start.sh root:root 755',
      '/lib/systemd/system/istio.service root:root 644',
      '/var/lib/istio/envoy/sidecar.env root:root 644',
      '/var/lib/istio/envoy/envoy_bootstrap_tmpl.json root:root 644',
      '/var/lib/istio/envoy/envoy_bootstrap_tmpl.json',
      '/var/lib/istio/envoy/sidecar.env',
    ]);
    // Only on vm3 (vm1 got its own /etc/istio directory in the isolation test, so it would keep it).
    expect(readFileSync('/etc/passwd', 'utf8')).not.toMatch(/^istio-proxy:/m);
    expect(existsSync('/usr/local/bin/pilot-agent')).toBe(false);
    const vm2 = await ssh(
      state,
      'vm2',
      'getent passwd istio-proxy || echo none; dpkg-query -W istio-sidecar 2>&1 | head -1',
    );
    expect(vm2.stdout).toMatch(/^none\n.*no packages found matching istio-sidecar/);
    // The unit's ExecStartPre (+, as root) runs on start; then the unit is stopped and removed again.
    const unit = await ssh(
      state,
      'vm3',
      'sudo systemctl start istio; stat -c "%U %a" /var/run/secrets; sudo systemctl stop istio; systemctl is-active istio; sudo dpkg -r istio-sidecar >/dev/null && echo removed',
    );
    expect(unit.stdout.trim().split('\n')).toEqual(['istio-proxy 755', 'inactive', 'removed']);
  }, 90_000);

  it('system accounts get uids of their own VM, so selecting processes by user (ps -u istio-proxy) never reaches another VM', async () => {
    // VMs share the host's PID namespace: with one uid 999 everywhere, an offboard on one VM (it ends
    // leftover istio-proxy processes by user) ended the sidecars of every lab. vm3 kept its istio-proxy
    // account from the dpkg test above; vm2 gets one now.
    const install = await ssh(
      state,
      'vm2',
      `curl -sSf --max-time 10 -o /tmp/sidecar.deb ${state.package.url} && sudo dpkg -i /tmp/sidecar.deb >/dev/null && id -u istio-proxy`,
      {
        timeoutMs: 60_000,
      },
    );
    expect(install.code).toBe(0);
    const uid2 = Number(install.stdout.trim());
    const uid3 = Number((await ssh(state, 'vm3', 'id -u istio-proxy')).stdout.trim());
    const range = (vm: number) => systemIdRange(state.labIndex, vm);
    expect(uid2).toBeGreaterThanOrEqual(range(2).min);
    expect(uid2).toBeLessThanOrEqual(range(2).max);
    expect(uid3).toBeGreaterThanOrEqual(range(3).min);
    expect(uid3).toBeLessThanOrEqual(range(3).max);
    // A process of vm3's istio-proxy is invisible to vm2's `ps -u istio-proxy`, and vice versa.
    const sleeper = await execInVm(
      state,
      'vm3',
      'setsid sudo -u istio-proxy sleep 60 </dev/null >/dev/null 2>&1 & sleep 0.5; ps -o pid= -u istio-proxy',
    );
    const pids3 = sleeper.stdout.trim().split(/\s+/).filter(Boolean);
    try {
      expect(pids3.length).toBeGreaterThan(0);
      const seenFromVm2 = await ssh(state, 'vm2', 'ps -o pid= -u istio-proxy; true');
      expect(seenFromVm2.stdout.trim()).toBe('');
    } finally {
      for (const pid of pids3) await execInVm(state, 'vm3', ['kill', pid], { allowFailure: true });
      await ssh(state, 'vm2', 'sudo dpkg -r istio-sidecar >/dev/null', { timeoutMs: 60_000 });
    }
    expect(loginDefsWithSystemIds('SYS_UID_MIN 100\n#SYS_UID_MAX 999\n', { min: 5, max: 9 })).toBe(
      "#SYS_UID_MAX 999\n\n# Lab VM: system accounts get uids/gids no other lab VM uses (VMs share the host's PID namespace).\nSYS_UID_MIN 5\nSYS_UID_MAX 9\nSYS_GID_MIN 5\nSYS_GID_MAX 9\n",
    );
  }, 90_000);

  it('the systemctl stand-in enables, starts, counts restarts (show -p NRestarts), stops and disables units', async () => {
    const unitFile = [
      '[Unit]',
      'Description=Crashing test unit',
      '[Service]',
      'ExecStartPre=+/bin/sh -c "echo pre >> /var/log/crash-test.log"',
      "ExecStart=/bin/sh -c 'echo started >> /var/log/crash-test.log; exit 3'",
      'ExecStopPost=/bin/sh -c "echo post >> /var/log/crash-test.log"',
      'Restart=always',
      'RestartSec=0.2',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n');
    const r = await ssh(
      state,
      'vm2',
      [
        'sudo tee /lib/systemd/system/crash-test.service >/dev/null',
        'sudo systemctl daemon-reload',
        'systemctl is-enabled crash-test || true',
        'sudo systemctl enable crash-test 2>/dev/null',
        'systemctl is-enabled crash-test',
        'sudo systemctl start crash-test',
        'sleep 1.5',
        'systemctl show -p NRestarts --value crash-test',
        'sudo systemctl stop crash-test',
        'systemctl is-active crash-test || true',
        'sudo systemctl disable crash-test 2>/dev/null',
        'systemctl is-enabled crash-test || true',
        'grep -c started /var/log/crash-test.log',
        'grep -c post /var/log/crash-test.log',
        'systemctl status nosuch; echo "rc=$?"',
      ].join('\n'),
      { input: unitFile },
    );
    const out = r.stdout.trim().split('\n');
    expect(out[0]).toBe('disabled');
    expect(out[1]).toBe('enabled');
    const restarts = Number(out[2]);
    expect(restarts).toBeGreaterThanOrEqual(2);
    expect(out[3]).toMatch(/^(inactive|failed)$/);
    expect(out[4]).toBe('disabled');
    expect(Number(out[5])).toBeGreaterThanOrEqual(restarts);
    expect(Number(out[6])).toBeGreaterThanOrEqual(restarts);
    expect(out[7]).toBe('rc=4');
    expect(r.stderr).toContain('Unit nosuch.service could not be found.');
  });

  it('the package build is reproducible, pads to --package-size-mb, and names arm64 builds like Istio', async () => {
    const base = { version: '1.24.0' } as const;
    const a = await buildSidecarPackage({ ...base, arch: 'amd64', outDir: `${dir}/pkg-a` });
    const b = await buildSidecarPackage({ ...base, arch: 'amd64', outDir: `${dir}/pkg-b` });
    expect(a.sha256).toBe(b.sha256);
    // Padded up to a size above the real programs' weight; a size below it adds nothing.
    const MiB = 1024 * 1024;
    const targetMb = Math.ceil(a.sizeBytes / MiB) + 3;
    const big = await buildSidecarPackage({ ...base, arch: 'amd64', outDir: `${dir}/pkg-big`, sizeMb: targetMb });
    expect(big.sizeBytes).toBeGreaterThan(targetMb * MiB - 200 * 1024);
    expect(big.sizeBytes).toBeLessThan((targetMb + 1) * MiB);
    const small = await buildSidecarPackage({ ...base, arch: 'amd64', outDir: `${dir}/pkg-small`, sizeMb: 1 });
    expect(small.sha256).toBe(a.sha256);
    const arm = await buildSidecarPackage({ ...base, arch: 'arm64', outDir: `${dir}/pkg-arm` });
    expect(arm.fileName).toBe('istio-sidecar-arm64.deb');
    const info = await run(['dpkg-deb', '-f', arm.path, 'Package', 'Architecture', 'Depends']);
    expect(info.stdout).toBe(
      'Package: istio-sidecar\nArchitecture: arm64\nDepends: iproute2, iptables, sudo, hostname\n',
    );
    // An amd64 VM refuses it, as dpkg does for a wrong-architecture package.
    await run(['cp', arm.path, vmPath(state, 'vm2', '/tmp/arm.deb')]);
    const refused = await ssh(state, 'vm2', 'sudo dpkg -i /tmp/arm.deb');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('package architecture (arm64) does not match system (amd64)');
    for (const d of ['pkg-a', 'pkg-b', 'pkg-big', 'pkg-arm']) rmSync(`${dir}/${d}`, { recursive: true, force: true });
  }, 60_000);

  it('helpers run commands as root inside a VM namespace (execInVm)', async () => {
    const r = await execInVm(state, 'vm3', 'hostname; id -u; ip -4 -o addr show eth0 | awk "{print \\$4}"');
    expect(r.stdout.trim().split('\n')).toEqual(['vm3', '0', `${state.vms[2]?.ip}/24`]);
  });
});
