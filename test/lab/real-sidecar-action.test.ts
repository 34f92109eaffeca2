// The bundled action (dist/) onboards a lab VM whose istio-sidecar.deb carries the real sidecar
//: Istio's pilot-agent built from the pinned module, Istio's own
// istio-start.sh, istio.service, sidecar.env and postinst.sh, and the Go Envoy stand-in as envoy. The
// systemctl stand-in runs Istio's unit (istio-start.sh as root: `pilot-agent istio-iptables`, then the
// agent as istio-proxy through sudo), the agent reads the files the action wrote, gets its certificate
// from the real istiod with the token the action placed, starts the stand-in, and istiod auto-registers
// the VM.
//
// `vm-to-mesh` calls istiod's own Service (the default `verify-url`) through the sidecar; `mesh-to-vm-mtls` runs
// the verification Job on the lab's Pod runner (pods/runner.ts): injected by the real istiod, its sidecar the
// real pilot-agent with the stand-in. All seven checks pass.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runAction, snapshotDist, vmOf, type ActionRun, actionLogTail, checksOf } from './action-harness.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { downLab, faultCli, newLabDir, upLab } from './testing.js';
import { execInVm, vmPath } from './vm/exec.js';
import type { CheckResult } from '../../src/verify/types.js';

const execFileP = promisify(execFile);
const VM = 'vm1';

let dir: string;
let state: LabState;
let entry: string;

/** One line per check: name, status and (unless it passed) what it saw. */
function checkLines(checks: CheckResult[]): string[] {
  return checks.map((c) => `${c.name}: ${c.status}${c.status === 'pass' ? '' : ` — ${c.summary}`}`);
}

/** The unit's state and the agent's logs on the VM, for a failing assertion's context. */
async function sidecarDiagnostics(): Promise<string> {
  const r = await execInVm(
    state,
    VM,
    [
      '/bin/sh',
      '-c',
      'systemctl status istio; tail -n 30 /var/log/journal-standin/istio.service.log /var/log/istio/istio.log /var/log/istio/istio.err.log',
    ],
    { allowFailure: true, timeoutMs: 30_000 },
  );
  return `${r.stdout}${r.stderr}`;
}

beforeAll(async () => {
  // Built here, not inside `up`'s time budget: the Istio build and the stand-in (no-ops when up to date).
  istioBuild();
  realSidecarSources();
  dir = newLabDir('real-sidecar');
  state = await upLab(dir, 1);
  entry = await snapshotDist(dir);
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

describe('the action onboards a VM running the real pilot-agent against the real istiod', () => {
  let onboard: ActionRun;

  it('the package carries the real programs: pilot-agent from the pinned istio.io/istio module, the Go stand-in as envoy', async () => {
    const build = istioBuild();
    const { stdout } = await execFileP('dpkg-deb', ['--contents', state.package.path], { maxBuffer: 1 << 24 });
    for (const f of [
      './usr/local/bin/pilot-agent',
      './usr/local/bin/envoy',
      './usr/local/bin/istio-start.sh',
      './lib/systemd/system/istio.service',
      './var/lib/istio/envoy/sidecar.env',
      './var/lib/istio/envoy/envoy_bootstrap_tmpl.json',
    ])
      expect(stdout).toContain(f);
    const info = await execFileP('dpkg-deb', ['--info', state.package.path]);
    expect(info.stdout).toContain('postinst');
    expect(build.moduleVersion).toMatch(/^v0\.0\.0-/);
  });

  it('mode onboard: sidecar-running, sidecar-ready, xds-connected, workload-certificate and workload-entry pass', async () => {
    onboard = await runAction(state, { mode: 'onboard' }, { entry, timeoutMs: 280_000 });
    const lines = checkLines(vmOf(onboard.report, VM).checks);
    if (lines.slice(0, 5).some((l) => !l.endsWith(': pass')))
      console.log(actionLogTail(onboard), await sidecarDiagnostics());
    expect(lines.slice(0, 5)).toEqual([
      'sidecar-running: pass',
      'sidecar-ready: pass',
      'xds-connected: pass',
      'workload-certificate: pass',
      'workload-entry: pass',
    ]);
    const checks = checksOf(onboard, VM);
    // Evidence from the real agent (15021 is pilot-agent's own readiness, which reads the stand-in's stats)
    // and from istiod (the WorkloadEntry it created on the proxy's connection).
    expect(checks.get('sidecar-ready')?.evidence.join('\n')).toMatch(/localhost:15021\/healthz\/ready → 200/);
    expect(checks.get('workload-certificate')?.summary).toContain('SAN spiffe://cluster.local/ns/vm-app/sa/vm-app');
    expect(checks.get('workload-entry')?.evidence.join('\n')).toMatch(
      new RegExp(`auto-registered \\(group app\\), address ${state.vms[0]!.ip.replace(/\./g, '\\.')}, Healthy=True`),
    );
  }, 300_000);

  it('vm-to-mesh passes through the sidecar: istiod resolved by its DNS proxy to the Service VIP, routed to the EndpointSlice endpoint', () => {
    const checks = checksOf(onboard, VM);
    if (checks.get('vm-to-mesh')?.status !== 'pass') console.log(actionLogTail(onboard));
    // The double allocated istiod's Service a cluster IP (10.96.0.0/16) and its EndpointSlice controller listed
    // the istiod Pod (at the east-west address): istiod's DNS name table (pkg/dns/server/name_table.go) answers
    // the agent's DNS proxy with the VIP, the stand-in routes the captured call by Host through istiod's RDS
    // (ignore_port_in_host_matching) to the outbound|15014 cluster and its EDS endpoint.
    expect(checks.get('vm-to-mesh')?.status).toBe('pass');
    const evidence = checks.get('vm-to-mesh')?.evidence.join('\n') ?? '';
    expect(evidence).toMatch(/istiod\.istio-system\.svc\.cluster\.local → 10\.96\.\d+\.\d+/);
    expect(evidence).toMatch(/GET http:\/\/istiod\.istio-system\.svc\.cluster\.local:15014\/version → HTTP 200/);
  });

  it('mesh-to-vm-mtls passes: the Job pod injected by the real istiod, its sidecar calls the ServiceEntry host over auto mTLS', () => {
    const checks = checksOf(onboard, VM);
    const mtls = checks.get('mesh-to-vm-mtls');
    if (mtls?.status !== 'pass') console.log(actionLogTail(onboard));
    // The Pod runner (pods/runner.ts) ran the Job's pod as admitted by istiod's injection webhook: the real
    // pilot-agent as istio-proxy, the stand-in routing the call by Host to the ServiceEntry's cluster, whose
    // endpoint (the VM, tlsMode istio) picks the ISTIO_MUTUAL transport socket; the VM counted the calls.
    expect(mtls?.status).toBe('pass');
    expect(mtls?.summary).toMatch(/^3 mesh calls arrived over mutual TLS \(\+3 istio_requests_total\)/);
    expect(mtls?.evidence.join('\n')).toMatch(
      /client sidecar, attempt \d+: VM endpoint seen in localhost:15000\/clusters/,
    );
    // All seven checks pass: the run succeeds.
    expect(checkLines(vmOf(onboard.report, VM).checks).every((l) => l.endsWith(': pass'))).toBe(true);
    expect(onboard.code).toBe(0);
  });

  it('vm-to-mesh fails when the mesh service has no ready endpoint: the sidecar answers 503 (no healthy upstream)', async () => {
    // A Service whose selector matches no Pod: istiod knows the host and its VIP, the EndpointSlice is empty.
    const kubectl = (args: string[], input?: string) =>
      new Promise<string>((resolve, reject) => {
        const child = execFile(
          'kubectl',
          ['--kubeconfig', state.files.kubeconfig ?? `${dir}/kubeconfig`, ...args],
          {
            timeout: 30_000,
          },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
        );
        if (input !== undefined) child.stdin?.end(input);
      });
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'no-endpoints', namespace: 'istio-system' },
        spec: { selector: { app: 'nobody' }, ports: [{ name: 'http', port: 8080, targetPort: 8080 }] },
      }),
    );
    // The sidecar runs (onboard passed); restarted as an operator would, which also works after a rollback.
    expect((await execInVm(state, VM, ['systemctl', 'restart', 'istio'], { timeoutMs: 90_000 })).code).toBe(0);
    const r = await runAction(
      state,
      { mode: 'verify', 'verify-url': 'http://no-endpoints.istio-system.svc.cluster.local:8080/' },
      { entry, timeoutMs: 200_000 },
    );
    const vmToMesh = checksOf(r, VM).get('vm-to-mesh');
    if (vmToMesh?.status !== 'fail') console.log(actionLogTail(r));
    expect(vmToMesh?.status).toBe('fail');
    expect(vmToMesh?.evidence.join('\n')).toMatch(/no-endpoints\.istio-system\.svc\.cluster\.local → 10\.96\./);
    expect(vmToMesh?.evidence.join('\n')).toMatch(/→ HTTP 503/);
    expect(r.code).toBe(1);
  }, 300_000);

  it('on the VM: the installed pilot-agent is the pinned istio.io/istio module, setgid as postinst.sh makes it', async () => {
    const build = istioBuild();
    const r = await execInVm(state, VM, [
      '/bin/sh',
      '-c',
      'id -un istio-proxy && stat -c %A /usr/local/bin/pilot-agent && grep -c "Envoy proxy is ready" /var/log/istio/istio.log',
    ]);
    expect(r.code).toBe(0);
    const [user, mode, readyLines] = r.stdout.trim().split('\n');
    expect(user).toBe('istio-proxy'); // created by Istio's postinst.sh
    expect(mode).toBe('-rwxr-sr-x'); // postinst.sh: chmod 2755
    expect(Number(readyLines)).toBeGreaterThanOrEqual(1); // the agent's own log line (pkg/istio-agent)
    const { stdout } = await execFileP('go', ['version', '-m', vmPath(state, VM, '/usr/local/bin/pilot-agent')], {
      timeout: 30_000,
    });
    expect(stdout).toMatch(new RegExp(`\\smod\\s+istio\\.io/istio\\s+${build.moduleVersion}\\s`));
  });

  it('istiod cut off while the sidecar runs (no restart): xds-connected fails naming vm1, the sidecar stays up', async () => {
    // The onboard run above rolled the VM back (its mesh-side checks fail in this mode): start the sidecar
    // again while istiod is up, and see xds-connected pass on the open xDS stream first.
    expect((await execInVm(state, VM, ['systemctl', 'start', 'istio'], { timeoutMs: 90_000 })).code).toBe(0);
    const before = await runAction(state, { mode: 'verify' }, { entry, timeoutMs: 200_000 });
    const connected = checksOf(before, VM).get('xds-connected');
    if (connected?.status !== 'pass') console.log(actionLogTail(before), await sidecarDiagnostics());
    expect(connected?.status).toBe('pass');
    expect(connected?.evidence).toContain('cluster.xds-grpc.upstream_rq_active: 1');
    const mainPid = async () =>
      (await execInVm(state, VM, ['systemctl', 'show', '-p', 'MainPID', '--value', 'istio'])).stdout.trim();
    const pidBefore = await mainPid();
    expect(Number(pidBefore)).toBeGreaterThan(0);

    await faultCli(dir, 'fault', 'istiod-down');
    try {
      // pilot-agent closes Envoy's stream when istiod's ends (pkg/istio-agent/xds_proxy_delta.go); wait (bounded)
      // until the stand-in has seen that, as any later verification would.
      for (let i = 0; i < 60; i++) {
        const stats = await execInVm(state, VM, ['curl', '-s', 'localhost:15000/stats?filter=xds-grpc'], {
          allowFailure: true,
        });
        if (/upstream_rq_active: 0$/m.test(stats.stdout)) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      const r = await runAction(state, { mode: 'verify', 'verify-ready-timeout': '10' }, { entry, timeoutMs: 200_000 });
      const checks = checksOf(r, VM);
      const xds = checks.get('xds-connected');
      if (xds?.status !== 'fail') console.log(actionLogTail(r), await sidecarDiagnostics());
      expect(r.code).toBe(1);
      expect(xds?.status).toBe('fail');
      expect(xds?.hintId).toBe('xds-upstream-down');
      expect(xds?.summary).toBe(
        "pilot-agent is not connected to istiod: Envoy's xDS stream through it is closed (cluster.xds-grpc.upstream_rq_active = 0, connection to the agent up)",
      );
      // The evidence that did not change: the connection to the agent, and the agent's last logged upstream event.
      expect(xds?.evidence).toContain('cluster.xds-grpc.upstream_cx_active: 1');
      expect(xds?.evidence.join('\n')).toMatch(/envoy log: .*xds-grpc closed: 14, /);
      expect(r.log).toMatch(new RegExp(`\\[${VM}\\] xds-connected: pilot-agent is not connected to istiod`));
      expect(r.summary).toContain(VM);
      // The sidecar kept running: same main process, not restarted, and Envoy's readiness unchanged.
      expect(checks.get('sidecar-running')?.status).toBe('pass');
      expect(await mainPid()).toBe(pidBefore);
    } finally {
      await faultCli(dir, 'heal', 'istiod-down');
    }
  }, 600_000);

  it('istiod stopped: a restarted sidecar is not ready — sidecar-ready and xds-connected fail naming vm1', async () => {
    await faultCli(dir, 'fault', 'istiod-down');
    try {
      // As an operator would: the sidecar (re)starts while istiod is down.
      const restart = await execInVm(state, VM, ['systemctl', 'restart', 'istio'], { timeoutMs: 90_000 });
      expect(restart.code).toBe(0);
      const r = await runAction(state, { mode: 'verify', 'verify-ready-timeout': '10' }, { entry, timeoutMs: 200_000 });
      const checks = checksOf(r, VM);
      expect(r.code).toBe(1);
      // Meanwhile Istio's unit ran istio-start.sh: the real `pilot-agent istio-iptables` capture (legacy or nft
      // backend, whichever it detected) and the agent and the stand-in as istio-proxy.
      const seen = await execInVm(
        state,
        VM,
        [
          '/bin/sh',
          '-c',
          '{ iptables-legacy-save -t nat; iptables-save -t nat; } 2>/dev/null; ps -o user:20=,comm= -C pilot-agent,envoy',
        ],
        { allowFailure: true },
      );
      if (!/ISTIO_INBOUND/.test(seen.stdout)) console.log(actionLogTail(r), await sidecarDiagnostics());
      expect(seen.stdout).toMatch(/-A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -j ISTIO_IN_REDIRECT/);
      expect(seen.stdout).toMatch(/-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
      expect(seen.stdout).toMatch(/^istio-proxy\s+pilot-agent$/m);
      expect(seen.stdout).toMatch(/^istio-proxy\s+envoy$/m);
      expect(checks.get('sidecar-running')?.status).toBe('pass');
      expect(checks.get('sidecar-ready')?.status).toBe('fail');
      expect(checks.get('xds-connected')?.status).toBe('fail');
      // No config ever came: CDS/LDS never accepted. (The stand-in dials a new connection per ADS stream, so
      // between its retries upstream_cx_active is 0 — "no live connection"; Envoy keeps its HTTP/2
      // connection to the agent's XDS socket, which would show 1 — then the agent's own log or the
      // config counters say it.)
      expect(checks.get('xds-connected')?.summary).toMatch(
        /^(no live connection to istiod|pilot-agent is not connected to istiod|connected but no accepted config \(cds 0, lds 0\))/,
      );
      expect(checks.get('xds-connected')?.evidence).toContain('cluster_manager.cds.update_success: (absent)');
      expect(checks.get('sidecar-ready')?.hint).toMatch(/istiod refused the connection on 15012/);
      expect(r.log).toMatch(new RegExp(`\\[${VM}\\] sidecar-ready: `));
      expect(r.log).toMatch(new RegExp(`\\[${VM}\\] xds-connected: `));
      expect(r.summary).toContain(VM);
    } finally {
      await faultCli(dir, 'heal', 'istiod-down');
    }
  }, 300_000);
});
