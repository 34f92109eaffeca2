// The VM layer (src/vm) against real lab VMs: real OpenSSH sshd, sudo, dpkg, the lab's istio-sidecar
// package, the systemctl stand-in and the lab's fault switches.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { VmSpec } from '../../src/inventory/types.js';
import { applyPayload, applyScript, applyVmChanges, type VmChange } from '../../src/vm/scripts/apply.js';
import { fetchLocalUrl } from '../../src/vm/scripts/fetch-local.js';
import { inspectVm } from '../../src/vm/scripts/inspect.js';
import { offboardVm } from '../../src/vm/scripts/offboard.js';
import { VmScriptError } from '../../src/vm/scripts/protocol.js';
import { shQuote } from '../../src/vm/scripts/protocol.js';
import { rollbackVm } from '../../src/vm/scripts/rollback.js';
import { VmConnectionError, type VmSession } from '../../src/vm/session.js';
import { connectVm, type ConnectVmOptions } from '../../src/vm/ssh-session.js';
import type { LabState } from './state.js';
import { downLab, faultCli, newLabDir, ssh, sshArgs, upLab } from './testing.js';

const dir = newLabDir('vm-side');
let state: LabState;
let probe: Server;
let probePort = 0;
const sessions: VmSession[] = [];

beforeAll(async () => {
  state = await upLab(dir, 2);
  // A listener on the lab's gateway address stands in for 15012, so reachability is tested both ways
  // without depending on istiod.
  probe = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => probe.listen(0, state.gatewayIP, resolve));
  probePort = (probe.address() as { port: number }).port;
}, 180_000);

afterAll(async () => {
  for (const session of sessions) await session.close().catch(() => undefined);
  probe?.close();
  const result = await downLab(dir);
  expect(result.code).toBe(0);
}, 120_000);

function vmSpec(name: string): VmSpec {
  const vm = state.vms.find((candidate) => candidate.name === name)!;
  return { name, group: 'app', ssh: { host: vm.ip, port: vm.sshPort, user: state.user }, labels: {} };
}

async function connect(name: string, overrides: Partial<ConnectVmOptions> = {}): Promise<VmSession> {
  const session = await connectVm({
    vm: vmSpec(name),
    privateKey: readFileSync(state.files.privateKey, 'utf8'),
    knownHosts: readFileSync(state.files.knownHosts, 'utf8'),
    readyTimeoutMs: 8000,
    retryBackoffMs: 300,
    ...overrides,
  });
  sessions.push(session);
  return session;
}

const CLUSTER_ENV =
  "CANONICAL_REVISION='latest'\nISTIO_INBOUND_PORTS='*'\nISTIO_LOCAL_EXCLUDE_PORTS='22,15090,15021'\nISTIO_NAMESPACE='vm-app'\n";
const clusterEnvWith = (revision: string): string => CLUSTER_ENV.replace("'latest'", `'${revision}'`);

function change(
  overrides: { clusterEnv?: string; token?: string; sha256?: string; upload?: boolean; reBootstrap?: boolean } = {},
): VmChange {
  return {
    ...(overrides.reBootstrap ? { reBootstrap: true } : {}),
    files: {
      clusterEnv: overrides.clusterEnv ?? CLUSTER_ENV,
      meshYaml: 'defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n',
      rootCert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      token: overrides.token ?? 'lab-bootstrap-token-1',
    },
    hostsEntries: `${state.gatewayIP} istiod.istio-system.svc\n`,
    sshPort: 22,
    package: overrides.upload
      ? { version: state.package.version, format: 'deb', upload: readFileSync(state.package.path) }
      : {
          url: state.package.url,
          sha256: overrides.sha256 ?? state.package.sha256,
          version: state.package.version,
          format: 'deb',
        },
  };
}

async function onVm(name: string, command: string): Promise<string> {
  const result = await ssh(state, name, `sudo -n sh -c ${shQuote(command)}`);
  return result.stdout;
}

/** A listing of the trees onboarding may touch (names, types, modes, owners; not contents). */
async function tree(name: string): Promise<string> {
  return onVm(
    name,
    "find /etc /var/lib /usr/local /lib/systemd -printf '%p %y %m %u:%g\\n' 2>/dev/null | grep -v -E '^/var/lib/dpkg/(status-old|available-old|lock|triggers/Lock)' | sort",
  );
}

async function istioPathsPresent(name: string): Promise<string> {
  return onVm(
    name,
    'for p in /etc/certs /etc/istio /var/lib/istio /etc/systemd/system/istio.service.d /var/run/secrets/tokens/istio-token; do [ -e $p ] && echo $p; done; dpkg-query -W istio-sidecar 2>/dev/null; true',
  );
}

const treeBefore: Record<string, string> = {};

describe('VM side against lab VMs', () => {
  it('records the untouched file trees (for the offboard comparison)', async () => {
    treeBefore.vm1 = await tree('vm1');
    treeBefore.vm2 = await tree('vm2');
    expect(treeBefore.vm1).toContain('/etc/hosts f');
    // nothing of Istio's or ours yet (a path merely containing "istio", like Go's testdata in /usr/local/go, is fine)
    const istioPaths =
      /^\/(etc\/certs|etc\/istio|var\/lib\/istio|usr\/local\/bin\/(pilot-agent|envoy)|etc\/systemd\/system\/istio)/;
    expect(treeBefore.vm1.split('\n').filter((line) => istioPaths.test(line))).toEqual([]);
  });

  it('pins the host key: the known key connects; a changed key fails clearly, without retries', async () => {
    const session = await connect('vm1');
    expect(session.counters.connections).toBe(1);
    await session.close();
    await faultCli(dir, 'fault', 'host-key-changed', 'vm1');
    try {
      const started = Date.now();
      const error = (await connect('vm1', { connectAttempts: 3, retryBackoffMs: 2000 }).catch(
        (e: unknown) => e,
      )) as VmConnectionError;
      expect(error).toBeInstanceOf(VmConnectionError);
      expect(error.kind).toBe('host-key-mismatch');
      expect(error.message).toMatch(
        /^host key for vm1 \(10\.233\.\d+\.11:22\) does not match known_hosts: expected SHA256:\S+, got SHA256:\S+ — the VM was rebuilt or this is a MITM; update ssh-known-hosts$/,
      );
      expect(error.message).toContain(`expected ${state.vms[0]!.hostKeyFingerprint}`);
      expect(Date.now() - started).toBeLessThan(1900); // no back-off: a host key failure is not retried
      // Trust on first use never accepts a CHANGED key.
      const tofu = await connect('vm1', { trustOnFirstUse: true }).catch((e: unknown) => e);
      expect((tofu as VmConnectionError).kind).toBe('host-key-mismatch');
    } finally {
      await faultCli(dir, 'heal', 'host-key-changed', 'vm1');
    }
  });

  it('refuses an unknown host unless trust on first use is on, then reports the learned line', async () => {
    const unknown = (await connect('vm2', { knownHosts: '' }).catch((e: unknown) => e)) as VmConnectionError;
    expect(unknown.kind).toBe('host-key-unknown');
    expect(unknown.message).toMatch(/host key for vm2 \(10\.233\.\d+\.12:22\) is not in known_hosts/);
    const learned: string[] = [];
    const session = await connect('vm2', {
      knownHosts: '',
      trustOnFirstUse: true,
      onLearnedHostKey: (line) => learned.push(line),
    });
    await session.close();
    expect(learned).toHaveLength(1);
    const pinned = readFileSync(state.files.knownHosts, 'utf8')
      .split('\n')
      .find((line) => line.startsWith(`${state.vms[1]!.ip} `));
    expect(learned[0]).toBe(pinned!.split(' ').slice(0, 3).join(' '));
  });

  it('names the user and key on an auth failure, and says sshd may be down on a refusal (after bounded retries)', async () => {
    const keyDir = mkdtempSync(path.join(tmpdir(), 'vm-side-key-'));
    try {
      execFileSync('ssh-keygen', ['-t', 'ed25519', '-q', '-N', '', '-f', path.join(keyDir, 'k')]);
      const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(keyDir, 'k.pub')], {
        encoding: 'utf8',
      }).split(' ')[1];
      const auth = (await connect('vm1', { privateKey: readFileSync(path.join(keyDir, 'k'), 'utf8') }).catch(
        (e: unknown) => e,
      )) as VmConnectionError;
      expect(auth.kind).toBe('auth');
      expect(auth.message).toBe(
        `SSH authentication failed for lab@${state.vms[0]!.ip}:22 (vm1) with key ssh-ed25519 ${fingerprint}`,
      );
      expect(auth.hint).toContain('~lab/.ssh/authorized_keys');
    } finally {
      rmSync(keyDir, { recursive: true, force: true });
    }
    await faultCli(dir, 'fault', 'sshd-down', 'vm2');
    try {
      const refused = (await connect('vm2', { connectAttempts: 2, retryBackoffMs: 200 }).catch(
        (e: unknown) => e,
      )) as VmConnectionError;
      expect(refused.kind).toBe('refused');
      expect(refused.message).toMatch(
        /^connection refused by 10\.233\.\d+\.12:22 \(vm2\): is sshd running and listening on port 22\? \(after 2 attempts\)$/,
      );
    } finally {
      await faultCli(dir, 'heal', 'sshd-down', 'vm2');
    }
  });

  it('sudo with a password: inspect reports it naming the user with the NOPASSWD hint; apply fails with it', async () => {
    await faultCli(dir, 'fault', 'sudo-password', 'vm2');
    try {
      const session = await connect('vm2');
      const facts = await inspectVm(session, { eastWestAddress: state.gatewayIP, discoveryPort: probePort });
      expect(facts.sudo.ok).toBe(false);
      expect(facts.arch).toBe('amd64');
      expect(facts.problems[0]!.message).toMatch(
        /sudo -n does not work on vm2 .* for user lab: .*password is required/,
      );
      expect(facts.problems[0]!.hint).toContain('lab ALL=(ALL) NOPASSWD: ALL');
      const error = (await applyVmChanges(session, change()).catch((e: unknown) => e)) as VmScriptError;
      expect(error.code).toBe('sudo');
      expect(await istioPathsPresent('vm2')).toBe('');
    } finally {
      await faultCli(dir, 'heal', 'sudo-password', 'vm2');
    }
  });

  it('a package checksum mismatch fails before anything is installed or placed', async () => {
    const session = await connect('vm1');
    const error = (await applyVmChanges(session, change({ sha256: '0'.repeat(64) })).catch(
      (e: unknown) => e,
    )) as VmScriptError;
    expect(error).toBeInstanceOf(VmScriptError);
    expect(error.code).toBe('checksum');
    expect(error.message).toContain(
      `sidecar package checksum mismatch: expected ${'0'.repeat(64)}, got ${state.package.sha256}`,
    );
    expect(error.message).toContain('nothing was installed');
    expect(await istioPathsPresent('vm1')).toBe('');
    expect(await onVm('vm1', 'grep -c istio-vm-onboard /etc/hosts; ls /var/lib/istio-vm-onboard')).toBe(
      '0\nbaseline\npackage\n',
    );
  });

  it('onboards in ≤ 4 round trips on one connection; a rerun changes and restarts nothing', async () => {
    const session = await connect('vm1');
    const facts = await inspectVm(session, {
      eastWestAddress: state.gatewayIP,
      discoveryPort: probePort,
      needsRouteSource: true,
      downloads: true,
      packageFormat: 'deb',
    });
    expect(facts.problems).toEqual([]);
    expect(facts.routeSourceIP).toBe(state.vms[0]!.ip);
    expect(facts.eastWest.reachable).toBe(true);
    const first = await applyVmChanges(session, change());
    expect(first.package).toMatchObject({ action: 'installed', version: state.package.version, source: 'download' });
    expect(Object.values(first.files).every((outcome) => outcome === 'changed')).toBe(true);
    expect(first.service).toBe('restarted');
    const reads = await fetchLocalUrl(session, [
      'http://localhost:15021/healthz/ready',
      'http://localhost:15000/stats?filter=xds-grpc',
      'http://localhost:15090/stats/prometheus',
    ]);
    expect(reads).toHaveLength(3);
    expect(session.counters).toMatchObject({ connections: 1, execRoundTrips: 3 });
    // the runner did not upload the package: the VM downloaded it
    expect(session.counters.bytesUploaded).toBeLessThan(100_000);
    expect(state.package.sizeBytes).toBeGreaterThan(100_000);

    const placed = await onVm(
      'vm1',
      "stat -c '%n %U %a' /etc/certs/root-cert.pem /var/lib/istio/envoy/cluster.env /etc/istio/config/mesh /var/run/secrets/tokens/istio-token /var/lib/istio/tokens/istio-token /etc/istio/proxy; grep -A1 'BEGIN istio-vm-onboard' /etc/hosts",
    );
    expect(placed).toBe(
      `/etc/certs/root-cert.pem istio-proxy 644\n/var/lib/istio/envoy/cluster.env istio-proxy 644\n/etc/istio/config/mesh istio-proxy 644\n/var/run/secrets/tokens/istio-token istio-proxy 400\n/var/lib/istio/tokens/istio-token istio-proxy 600\n/etc/istio/proxy istio-proxy 755\n# BEGIN istio-vm-onboard\n${state.gatewayIP} istiod.istio-system.svc\n`,
    );

    const active = (await onVm('vm1', 'systemctl is-active istio')).trim();
    const second = await applyVmChanges(session, change());
    expect(Object.values(second.files).every((outcome) => outcome === 'unchanged')).toBe(true);
    expect(second.package.action).toBe('unchanged');
    expect(second.changed).toBe(false);
    expect(second.snapshotId).toBeNull();
    expect(second.service).not.toBe('restarted');
    if (['active', 'activating'].includes(active)) expect(second.service).toBe('unchanged');
    expect(await onVm('vm1', 'grep -c "BEGIN istio-vm-onboard" /etc/hosts')).toBe('1\n');
  });

  it('a new token alone is written without a restart; a changed file restarts; rollback restores it', async () => {
    const session = await connect('vm1');
    const tokenOnly = await applyVmChanges(session, change({ token: 'lab-bootstrap-token-2' }));
    expect(tokenOnly.files.token).toBe('changed');
    expect(tokenOnly.service).not.toBe('restarted');
    expect(await onVm('vm1', 'cat /var/run/secrets/tokens/istio-token')).toBe('lab-bootstrap-token-2');
    const changed = await applyVmChanges(
      session,
      change({ token: 'lab-bootstrap-token-2', clusterEnv: clusterEnvWith('v2') }),
    );
    expect(changed.files).toMatchObject({
      clusterEnv: 'changed',
      meshConfig: 'unchanged',
      rootCert: 'unchanged',
      token: 'unchanged',
      hosts: 'unchanged',
    });
    expect(changed.service).toBe('restarted');
    expect(changed.snapshotId).not.toBeNull();
    const stale = (await rollbackVm(session, { reason: 'test', expectSnapshotId: 'someone-else' }).catch(
      (e: unknown) => e,
    )) as VmScriptError;
    expect(stale.code).toBe('snapshot-mismatch');
    const rolled = await rollbackVm(session, { reason: 'checks failed', expectSnapshotId: changed.snapshotId! });
    expect(rolled.action).toBe('rolled-back');
    expect(rolled.restoredFiles).toEqual(['clusterEnv']);
    expect(await onVm('vm1', 'cat /var/lib/istio/envoy/cluster.env')).toBe(CLUSTER_ENV);
    expect(session.counters.connections).toBe(1);
  });

  it('a rollback keeps the fresh token of a re-bootstrap it undoes, and restores the token of any other change', async () => {
    const session = await connect('vm1');
    const token = () => onVm('vm1', 'cat /var/lib/istio/tokens/istio-token /var/run/secrets/tokens/istio-token');
    // A plain change of cluster.env and token: the rollback puts the old token back with the old file.
    const before = await token();
    const plain = await applyVmChanges(
      session,
      change({ token: 'lab-bootstrap-token-3', clusterEnv: clusterEnvWith('v3') }),
    );
    const undonePlain = await rollbackVm(session, { reason: 'checks failed', expectSnapshotId: plain.snapshotId! });
    expect(undonePlain.freshTokenKept).toBe(false);
    expect(undonePlain.restoredFiles.sort()).toEqual(['clusterEnv', 'token']);
    expect(await token()).toBe(before);
    // A re-bootstrap (the agent's certificate removed): the old token is of no use, the fresh one stays.
    const fresh = await applyVmChanges(
      session,
      change({ token: 'lab-bootstrap-token-4', clusterEnv: clusterEnvWith('v4'), reBootstrap: true }),
    );
    expect(fresh.reBootstrapped).toBe(true);
    const undone = await rollbackVm(session, { reason: 'checks failed', expectSnapshotId: fresh.snapshotId! });
    expect(undone.freshTokenKept).toBe(true);
    expect(undone.restoredFiles).toEqual(['clusterEnv']);
    expect(await token()).toBe('lab-bootstrap-token-4'.repeat(2));
    expect(await onVm('vm1', 'cat /var/lib/istio/envoy/cluster.env')).toBe(CLUSTER_ENV);
  });

  it('two concurrent applies on one VM do not interleave; a held lock makes a run wait, then fail clearly', async () => {
    const [a, b] = await Promise.all([connect('vm1'), connect('vm1')]);
    const [ra, rb] = await Promise.all([
      applyVmChanges(a!, change({ clusterEnv: clusterEnvWith('c1') })),
      applyVmChanges(b!, change({ clusterEnv: clusterEnvWith('c2') })),
    ]);
    const [early, late] = ra.lock.acquiredAt < rb.lock.acquiredAt ? [ra, rb] : [rb, ra];
    expect(late.lock.acquiredAt).toBeGreaterThanOrEqual(early.lock.releasedAt);
    expect(['c1', 'c2'].map(clusterEnvWith)).toContain(await onVm('vm1', 'cat /var/lib/istio/envoy/cluster.env'));

    const holder = await connect('vm1');
    // The lock lives where only root can create or open it: the login user (no sudo) cannot hold it.
    const unprivileged = await holder.exec('flock -n /run/istio-vm-onboard.lock true 2>&1; echo "rc=$?"');
    expect(unprivileged.stdout).toMatch(/Permission denied[\s\S]*rc=[1-9]/);
    const held = holder.exec('sudo -n flock /run/istio-vm-onboard.lock sleep 6');
    await new Promise((resolve) => setTimeout(resolve, 700));
    const started = Date.now();
    const error = (await applyVmChanges(a!, { ...change(), lockWaitSeconds: 2 }).catch(
      (e: unknown) => e,
    )) as VmScriptError;
    expect(error.code).toBe('lock-busy');
    expect(error.message).toMatch(
      /another istio-vm-onboard run holds \/run\/istio-vm-onboard.lock on this VM \(waited 2s\); nothing was changed/,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await held;
  });

  it('after a reboot (tmpfs /run cleared) the unit restores the token from the persistent copy', async () => {
    const session = await connect('vm1');
    await applyVmChanges(session, change());
    await session.close();
    await faultCli(dir, 'fault', 'reboot', 'vm1');
    const after = await connect('vm1');
    const facts = await inspectVm(after, { eastWestAddress: state.gatewayIP, discoveryPort: probePort });
    expect(facts.fileHashes.token).not.toBeNull();
    expect(facts.fileHashes.runtimeToken).toBe(facts.fileHashes.token);
    expect(await onVm('vm1', "stat -c '%U %a' /var/run/secrets/tokens/istio-token")).toBe('istio-proxy 400\n');
  });

  it('a cut upload changes nothing in Istio paths; a full disk fails clearly; the runner can upload the package', async () => {
    // cut once about half of the package has gone up
    await faultCli(dir, 'fault', 'ssh-drop', 'vm2', [
      '--after-bytes',
      String(Math.floor(state.package.sizeBytes / 2) + 20_000),
    ]);
    try {
      const session = await connect('vm2');
      const error = await applyVmChanges(session, { ...change({ upload: true }), uploadTimeoutSeconds: 5 }).catch(
        (e: unknown) => e,
      );
      expect([error instanceof VmConnectionError, String(error)]).toEqual([true, String(error)]);
      expect((error as VmConnectionError).kind).toBe('connection-lost');
    } finally {
      await faultCli(dir, 'heal', 'ssh-drop', 'vm2');
    }
    // The reset reaches sshd only if it sends something after the cut; receiving an upload it may send nothing,
    // and its session waits on as on a real VM until TCP keepalive gives up. The apply's read of the upload is
    // bounded (here 5 s): it gives up and frees the VM's lock, so the next run is not refused lock-busy.
    expect(await onVm('vm2', 'flock -w 30 /run/istio-vm-onboard.lock echo free')).toBe('free\n');
    expect(await istioPathsPresent('vm2')).toBe('');

    await faultCli(dir, 'fault', 'disk-full', 'vm2');
    try {
      const session = await connect('vm2');
      const facts = await inspectVm(session, { eastWestAddress: state.gatewayIP, discoveryPort: probePort });
      expect(facts.problems.map((problem) => problem.code)).toContain('disk-low');
      const error = (await applyVmChanges(session, change()).catch((e: unknown) => e)) as VmScriptError;
      expect(error).toBeInstanceOf(VmScriptError);
      expect({ code: error.code, message: error.message }).toMatchObject({
        code: 'disk-full',
        message: expect.stringMatching(/no space left/),
      });
      expect(error.hint).toMatch(/free disk space/);
    } finally {
      await faultCli(dir, 'heal', 'disk-full', 'vm2');
    }
    expect(await istioPathsPresent('vm2')).toBe('');

    const session = await connect('vm2');
    const uploaded = await applyVmChanges(session, change({ upload: true }));
    expect(uploaded.package).toMatchObject({ action: 'installed', source: 'upload' });
    expect(session.counters.bytesUploaded).toBeGreaterThan(state.package.sizeBytes);
    expect(session.counters.execRoundTrips).toBe(1);
  });

  it('an apply whose runner stalls mid-upload (connection open, nothing more sent) gives up after its bound and frees the lock', async () => {
    // The runner process hangs with its SSH connection open: sshd sees a live session, so only the apply's own
    // bound on reading the upload ends the wait (without it the VM's lock stays held while the session lives).
    const stalled = { ...change({ upload: true }), uploadTimeoutSeconds: 3 };
    const before = await istioPathsPresent('vm2');
    const payload = applyPayload(stalled);
    const command = `exec /bin/sh -c ${shQuote(applyScript(stalled, 'stalled-upload-test'))}`;
    const child = spawn(sshArgs(state, 'vm2')[0]!, [...sshArgs(state, 'vm2').slice(1), command], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      child.stdin.write(payload.subarray(0, Math.floor(payload.length / 2)));
      // The apply took the lock and reads the upload; within its bound plus a margin the lock is free again.
      expect(await onVm('vm2', 'flock -w 30 /run/istio-vm-onboard.lock echo free')).toBe('free\n');
      // The apply ended on its own (the session is still open: stdin was never closed), naming the cause.
      const code = await Promise.race([exited, new Promise<'open'>((r) => setTimeout(() => r('open'), 20_000))]);
      expect(code).toEqual(expect.any(Number));
      expect(code).not.toBe(0);
      expect(output).toMatch(/upload/);
    } finally {
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGTERM');
      await exited;
    }
    expect(await istioPathsPresent('vm2')).toBe(before);
  });

  it('rolling back a failed first install stops the sidecar and marks the VM; a rerun clears the mark', async () => {
    const session = await connect('vm2');
    const result = await rollbackVm(session, { reason: 'sidecar-ready failed: 503' });
    expect(result.action).toBe('stopped-and-marked');
    const facts = await inspectVm(session, { eastWestAddress: state.gatewayIP, discoveryPort: probePort });
    expect(facts.failedMarker).toMatch(/sidecar-ready failed: 503$/);
    expect(facts.sidecar.unitState).toBe('inactive');
    const rerun = await applyVmChanges(session, change({ upload: true }));
    expect(rerun.service).toBe('started');
    const again = await inspectVm(session, { eastWestAddress: state.gatewayIP, discoveryPort: 1 });
    expect(again.failedMarker).toBeNull();
    expect(again.eastWest.reachable).toBe(false);
    expect(again.problems.map((problem) => problem.code)).toContain('east-west-unreachable');
  });

  it('offboard leaves each VM as it was before onboarding (file tree compared)', async () => {
    for (const name of ['vm1', 'vm2']) {
      const session = await connect(name);
      const result = await offboardVm(session);
      expect(result.packageRemoved).toBe(state.package.version);
      expect(result.hostsBlockRemoved).toBe(true);
      if (result.endedProcesses.length > 0)
        console.warn(`${name}: istio-proxy processes outlived systemctl stop: ${result.endedProcesses.join(' ')}`);
      expect(await tree(name)).toBe(treeBefore[name]);
      expect(await onVm(name, 'grep -c istio /etc/hosts; getent passwd istio-proxy; true')).toBe('0\n');
    }
  });
});
