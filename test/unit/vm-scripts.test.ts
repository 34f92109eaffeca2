// Script generation and output parsing of the VM layer, with a fake session; the generated shell is
// checked by the real `sh` (syntax, quoting of hostile values, the tar upload, local URL reads).
import { describe, expect, it, afterAll } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { FakeVmSession, protocolLines } from './fake-session.js';
import {
  applyPayload,
  applyScript,
  applyVmChanges,
  readClusterEnv,
  sshCaptureProblem,
  type VmChange,
} from '../../src/vm/scripts/apply.js';
import { fetchLocalScript, fetchLocalUrl } from '../../src/vm/scripts/fetch-local.js';
import {
  archFromMachine,
  assertPreflight,
  inspectScript,
  inspectVm,
  parseOsRelease,
  parseRouteSource,
  probeAsProxyPart,
  VmPreflightError,
} from '../../src/vm/scripts/inspect.js';
import { offboardScript } from '../../src/vm/scripts/offboard.js';
import {
  asUser,
  composeScript,
  PROTOCOL_PRELUDE,
  runScript,
  ScriptOutput,
  scriptHeader,
  shQuote,
  VmScriptError,
} from '../../src/vm/scripts/protocol.js';
import { rollbackScript } from '../../src/vm/scripts/rollback.js';
import { localShell } from './local-shell.js';

const work = mkdtempSync(path.join(tmpdir(), 'vm-scripts-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const HOSTILE = `x'; touch ${work}/pwned; echo '$(touch ${work}/pwned2)\`touch ${work}/pwned3\`"\\ \n$HOME`;

function change(overrides: Partial<VmChange['package']> = {}): VmChange {
  return {
    files: {
      clusterEnv: "ISTIO_SERVICE='x'\n",
      meshYaml: 'defaultConfig: {}\n',
      rootCert: 'ROOT-CERT-CONTENT\n',
      token: 'secret-token-value',
    },
    hostsEntries: '10.233.0.1 istiod.istio-system.svc\n',
    package: {
      url: 'http://10.233.0.1:8081/istio-sidecar.deb',
      sha256: 'a'.repeat(64),
      version: '1.24.0',
      format: 'deb',
      ...overrides,
    },
  };
}

const { sh, shAsync } = localShell(work);

/** The header of a composed script: its quoted assignments. */
function headerOf(script: string): string {
  return script.slice(0, script.indexOf(PROTOCOL_PRELUDE));
}

/** The root part of an asRoot() script (the value IVO_ROOT_SCRIPT), as the real shell reads it. */
function innerOf(script: string): string {
  const result = sh(`${headerOf(script)}\nprintf %s "$IVO_ROOT_SCRIPT"`);
  expect(result.code).toBe(0);
  return result.stdout;
}

describe('shell quoting', () => {
  it('round-trips any text through sh (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\0')),
        (value) => {
          const result = sh(`printf '%s' ${shQuote(value)}`);
          return result.code === 0 && result.stdout === value;
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses NUL bytes', () => {
    expect(() => shQuote('a\0b')).toThrow(/NUL/);
  });
});

describe('the script protocol', () => {
  it('passes values in one header of upper-case names; two parts cannot pass different values under one name', () => {
    expect(scriptHeader({ IVO_A: "it's", IVO_N: 3 })).toBe(`IVO_A='it'\\''s'\nIVO_N='3'\n`);
    expect(() => scriptHeader({ 'ivo_a; rm -rf /': 'x' })).toThrow(/upper case/);
    expect(() => composeScript({ values: { IVO_A: '1' }, text: '' }, { values: { IVO_A: '2' }, text: '' })).toThrow(
      /different values as IVO_A/,
    );
    const script = composeScript(
      { values: { IVO_A: 'x' }, text: 'ivo_emit a "$IVO_A"' },
      { values: { IVO_A: 'x' }, text: '' },
    );
    expect(new ScriptOutput(sh(script).stdout).get('a')).toBe('x');
  });

  it('walks a list value line by line, and frames sections that count only when complete', () => {
    const result = sh(
      composeScript({
        values: { IVO_LIST: `a b\n\n${HOSTILE}` },
        text: `seen() { ivo_emit64 item "$1"; }
ivo_each_line "$IVO_LIST" seen
printf 'body \\000 bytes' > "$1/b"; printf 'oops' > "$1/e"
printf 'a tool left this unended'
ivo_section one 7 503 "$1/b" "$1/e"
ivo_section empty 0 000 /dev/null /dev/null
printf '@@ivo64 cut.err \\n@@ivo64 cut.body aGk='`,
      }),
      [work],
    );
    const output = new ScriptOutput(result.stdout);
    expect(output.all('item')).toEqual(['a b', ...HOSTILE.split('\n')]);
    expect(output.sections.get('one')).toEqual({
      name: 'one',
      rc: 7,
      http: '503',
      body: 'body \0 bytes',
      stderr: 'oops',
    });
    expect(output.sections.get('empty')).toEqual({ name: 'empty', rc: 0, http: '000', body: '', stderr: '' });
    expect(output.sections.has('cut')).toBe(false);
    for (const file of ['pwned', 'pwned2', 'pwned3']) expect(existsSync(path.join(work, file))).toBe(false);
  });
});

describe('generated scripts', () => {
  const scripts: Record<string, string> = {
    inspect: inspectScript({ eastWestAddress: HOSTILE, withContents: true }),
    apply: applyScript(change({ url: `http://h/${HOSTILE}`, version: HOSTILE }), 'snap-1'),
    applyUpload: applyScript({ ...change(), package: { version: '1', format: 'rpm', upload: Buffer.from('x') } }, 's'),
    rollback: rollbackScript({ reason: HOSTILE, expectSnapshotId: HOSTILE }),
    offboard: offboardScript(),
    fetch: fetchLocalScript(['http://localhost:15021/healthz/ready', "http://127.0.0.1:15000/stats?filter=a'b"]),
  };

  it('are valid POSIX sh (dash) and bash, outer and root parts', () => {
    for (const [name, script] of Object.entries(scripts)) {
      for (const shell of ['sh', 'bash']) {
        const outer = spawnSync(shell, ['-n'], { input: script });
        expect([name, shell, outer.status, outer.stderr.toString()]).toEqual([name, shell, 0, '']);
        if (name !== 'fetch') {
          const inner = spawnSync(shell, ['-n'], { input: innerOf(script) });
          expect([name, shell, 'inner', inner.status, inner.stderr.toString()]).toEqual([name, shell, 'inner', 0, '']);
        }
      }
    }
  });

  it('carry hostile values as data: assignments evaluate to the exact value and run nothing', () => {
    const result = sh(
      `${headerOf(innerOf(scripts.apply!))}\nprintf '%s\\n---\\n' "$IVO_PACKAGE_URL" "$IVO_WANT_VERSION"`,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`http://h/${HOSTILE}\n---\n${HOSTILE}\n---\n`);
    const rb = sh(`${headerOf(innerOf(scripts.rollback!))}\nprintf '%s' "$IVO_EXPECT_SNAPSHOT"`);
    expect(rb.stdout).toBe(HOSTILE);
    for (const file of ['pwned', 'pwned2', 'pwned3']) expect(existsSync(path.join(work, file))).toBe(false);
  });

  it('never put the token or file contents into the command line (they travel on stdin)', () => {
    for (const script of Object.values(scripts)) {
      expect(script).not.toContain('secret-token-value');
      expect(script).not.toContain('ROOT-CERT-CONTENT');
    }
  });

  it('fence every daemon-starting command off the lock descriptor', () => {
    const inner = innerOf(scripts.apply!);
    expect(inner).toContain('"$@" 9>&-');
    expect(inner).toMatch(/dpkg -i "\$PKG_FILE" 9>&-/);
  });
});

describe('apply upload stream', () => {
  it('is a tar that real tar extracts and whose manifest sha256sum -c accepts; a cut stream is refused', () => {
    const payload = applyPayload({
      ...change(),
      package: { version: '1', format: 'deb', upload: Buffer.alloc(70_000, 7) },
    });
    const dir = path.join(work, 'stage');
    rmSync(dir, { recursive: true, force: true });
    const ok = sh(
      `mkdir -p "$1" && tar -xf - -C "$1" && cd "$1" && sha256sum -c MANIFEST && cat istio-token && echo && cat hosts-block && head -c 3 dropin.conf`,
      [dir],
      payload,
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('package.deb: OK');
    expect(ok.stdout).toContain('secret-token-value\n10.233.0.1 istiod.istio-system.svc\n# M');
    const cutDir = path.join(work, 'cut');
    rmSync(cutDir, { recursive: true, force: true });
    const cut = sh(
      `mkdir -p "$1" && tar -xf - -C "$1" 2>/dev/null; cd "$1" && [ -f MANIFEST ] && sha256sum -c MANIFEST`,
      [cutDir],
      payload.subarray(0, 40_000),
    );
    expect(cut.code).not.toBe(0);
  });

  it('rejects a URL without sha256, a bad sha256, and a bad format before any round trip', async () => {
    const session = new FakeVmSession(() => ({ code: 0, stdout: '', stderr: '' }));
    await expect(applyVmChanges(session, change({ sha256: undefined }))).rejects.toThrow(/needs its sha256/);
    await expect(applyVmChanges(session, change({ sha256: 'xyz' }))).rejects.toThrow(/64 hex/);
    await expect(applyVmChanges(session, change({ format: 'zip' as 'deb' }))).rejects.toThrow(/deb or rpm/);
    expect(session.counters.execRoundTrips).toBe(0);
  });
});

describe('SSH port guard (istio#36870)', () => {
  it('refuses a cluster.env whose capture would take the SSH port, before any round trip', async () => {
    const session = new FakeVmSession(() => ({ code: 0, stdout: '', stderr: '' }));
    const env = (text: string): VmChange => ({
      ...change(),
      files: { ...change().files, clusterEnv: text },
      sshPort: 2222,
    });
    await expect(
      applyVmChanges(session, env("ISTIO_INBOUND_PORTS='*'\nISTIO_LOCAL_EXCLUDE_PORTS='22,15090,15021'\n")),
    ).rejects.toThrow(/does not exclude the SSH port 2222: the sidecar would cut SSH/);
    await expect(applyVmChanges(session, env("ISTIO_INBOUND_PORTS='8080,2222'\n"))).rejects.toThrow(
      /captures the SSH port 2222/,
    );
    expect(session.counters.execRoundTrips).toBe(0);
  });

  it('reads cluster.env as the shell does: a multi-line value cannot fake the SSH port exclusion', () => {
    const faked =
      "ISTIO_INBOUND_PORTS='*'\nISTIO_LOCAL_EXCLUDE_PORTS='15090'\nISTIO_META_Z='x\nISTIO_LOCAL_EXCLUDE_PORTS=22'\n";
    expect(readClusterEnv(faked).ISTIO_LOCAL_EXCLUDE_PORTS).toBe('15090');
    expect(sshCaptureProblem(faked, 22)).toMatch(/does not exclude the SSH port 22/);
    const joined = "ISTIO_META_A=ww\\\nISTIO_LOCAL_EXCLUDE_PORTS='22'\nISTIO_INBOUND_PORTS='*'\n";
    expect(sshCaptureProblem(joined, 22)).toMatch(/does not exclude the SSH port 22/);
    // Compared with bash itself on quoting forms istioctl and we write.
    const text = "A='it'\"'\"'s'\nB=plain\nC='multi\nline'\nD=\"dq \\\" \\$x\"\nE=a\\ b # comment\n# F=hidden\n";
    const shell = spawnSync(
      'bash',
      ['-c', 'set -a; eval "$1"; printf "%s\\0" "$A" "$B" "$C" "$D" "$E" "${F-unset}"', 'bash', text],
      {
        encoding: 'utf8',
      },
    ).stdout.split('\0');
    const ours = readClusterEnv(text);
    expect([ours.A, ours.B, ours.C, ours.D, ours.E, ours.F ?? 'unset']).toEqual(shell.slice(0, 6));
  });

  it('accepts the port excluded, or a port list without it', () => {
    expect(
      sshCaptureProblem("ISTIO_INBOUND_PORTS='*'\nISTIO_LOCAL_EXCLUDE_PORTS='22,15090,15021,2222'\n", 2222),
    ).toBeUndefined();
    expect(sshCaptureProblem("ISTIO_INBOUND_PORTS='8080'\n", 2222)).toBeUndefined();
    expect(sshCaptureProblem("ISTIO_LOCAL_EXCLUDE_PORTS='22'\n", 22)).toBeUndefined();
    expect(sshCaptureProblem('', 22)).toMatch(/ISTIO_INBOUND_PORTS='\*'/);
  });
});

describe('apply result parsing', () => {
  it('maps the script lines to per-file outcomes, package and service, in one round trip', async () => {
    const session = new FakeVmSession(() => ({
      code: 0,
      stderr: '',
      stdout:
        'Welcome banner\n' +
        protocolLines(
          {
            'file.rootCert': 'unchanged',
            'file.clusterEnv': 'changed',
            'file.meshConfig': 'unchanged',
            'file.token': 'changed',
            'file.dropIn': 'unchanged',
            'file.hosts': 'unchanged',
            'package.action': 'upgraded',
            'package.source': 'download',
            'package.version': '1.24.1',
            'package.previous': '1.24.0',
            snapshot: 'snap-9',
            'lock.acquired': '1700000000.5',
            'lock.released': '1700000001.25',
            service: 'restarted',
            done: 'yes',
          },
          ['package.version', 'package.previous'],
        ),
    }));
    const result = await applyVmChanges(session, change());
    expect(result).toEqual({
      files: {
        rootCert: 'unchanged',
        clusterEnv: 'changed',
        meshConfig: 'unchanged',
        token: 'changed',
        dropIn: 'unchanged',
        hosts: 'unchanged',
      },
      package: { action: 'upgraded', version: '1.24.1', previousVersion: '1.24.0', source: 'download' },
      service: 'restarted',
      restarted: true,
      reBootstrapped: false,
      changed: true,
      snapshotId: 'snap-9',
      lock: { acquiredAt: 1700000000.5, releasedAt: 1700000001.25 },
    });
    expect(session.counters.execRoundTrips).toBe(1);
    expect(Buffer.isBuffer(session.calls[0]!.stdin)).toBe(true);
  });

  it('a re-bootstrap: asked for in the script, reported back as a change even when no file changed', async () => {
    const session = new FakeVmSession(() => ({
      code: 0,
      stderr: '',
      stdout: protocolLines({
        'file.rootCert': 'unchanged',
        'file.clusterEnv': 'unchanged',
        'file.meshConfig': 'unchanged',
        'file.token': 'changed',
        'file.dropIn': 'unchanged',
        'file.hosts': 'unchanged',
        'package.action': 'unchanged',
        rebootstrap: 'removed',
        service: 'restarted',
        done: 'yes',
      }),
    }));
    const result = await applyVmChanges(session, { ...change(), reBootstrap: true });
    expect(innerOf(session.calls[0]!.script)).toContain("IVO_REBOOTSTRAP='1'");
    expect(innerOf(applyScript(change(), 'id'))).toContain("IVO_REBOOTSTRAP='0'");
    expect(result.reBootstrapped).toBe(true);
    expect(result.changed).toBe(true);
    expect(result.restarted).toBe(true);
  });

  it('turns a named failure into VmScriptError with a hint, and a silent non-zero exit too', async () => {
    const checksum = new FakeVmSession(() => ({
      code: 1,
      stderr: '',
      stdout: protocolLines(
        { user: 'lab', 'error:checksum': 'sidecar package checksum mismatch: expected aaa, got bbb' },
        ['error:checksum'],
      ),
    }));
    const error = await applyVmChanges(checksum, change()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmScriptError);
    expect((error as VmScriptError).code).toBe('checksum');
    expect((error as VmScriptError).message).toMatch(/^checksum failed on vm1 .*expected aaa, got bbb/);
    expect((error as VmScriptError).hint).toMatch(/sidecar-package-sha256/);
    const silent = new FakeVmSession(() => ({ code: 2, stdout: '', stderr: 'sh: 1: syntax error\n' }));
    await expect(runScript(silent, asUser('true'), { what: 'probe' })).rejects.toThrow(
      /probe on vm1 .* exited 2: sh: 1: syntax error/,
    );
  });
});

describe('inspect parsing', () => {
  const osRelease =
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';
  const base = {
    user: 'lab',
    uname: 'x86_64',
    'os-release': osRelease,
    tool: [
      'dpkg-query',
      'systemctl',
      'tar',
      'flock',
      'sha256sum',
      'base64',
      'curl',
      'timeout',
      'bash',
      'ip',
      'awk',
      'install',
    ],
    root: 'yes',
    'df.root': '8000000',
    'df.varlib': '4000000',
    'pkg.version': '1.24.0',
    'unit.state': 'active',
    'file.rootCert': 'ab'.repeat(32),
    'file.clusterEnv': '-',
    'file.meshConfig': '-',
    'file.token': 'cd'.repeat(32),
    'file.dropIn': '-',
    'file.runtimeToken': '-',
    'hosts.block': '10.233.0.1 istiod.istio-system.svc',
    lock: 'free',
    'ew.as': 'istio-proxy (setpriv)',
    'ew.rc': '0',
    'ew.detail': '',
    route: '10.233.0.1 dev eth0 src 10.233.0.11 uid 0 \\    cache',
    done: 'yes',
  };
  const encoded = [
    'user',
    'uname',
    'os-release',
    'pkg.version',
    'hosts.block',
    'ew.as',
    'ew.detail',
    'route',
    'prov.cert',
  ];
  const answer =
    (values: Record<string, string | string[]>, code = 0) =>
    () => ({
      code,
      stderr: '',
      stdout: protocolLines(values, encoded.concat(Object.keys(values).filter((k) => k.startsWith('error:')))),
    });

  it('reads the facts the rollout needs', async () => {
    const facts = await inspectVm(new FakeVmSession(answer(base)), {
      eastWestAddress: '10.233.0.1',
      needsRouteSource: true,
      downloads: true,
    });
    expect(facts).toMatchObject({
      user: 'lab',
      arch: 'amd64',
      packageFormat: 'deb',
      init: 'systemd',
      os: { id: 'debian', versionId: '12', family: 'debian' },
      diskFreeKiB: { root: 8000000, varLib: 4000000 },
      sidecar: { installedVersion: '1.24.0', unitState: 'active' },
      hostsBlock: '10.233.0.1 istiod.istio-system.svc\n',
      eastWest: { reachable: true, detail: 'connected', probedAs: 'istio-proxy (setpriv)' },
      routeSourceIP: '10.233.0.11',
      lockHeld: false,
      problems: [],
    });
    expect(facts.fileHashes.rootCert).toBe('ab'.repeat(32));
    expect(facts.fileHashes.clusterEnv).toBeNull();
    expect(() => assertPreflight(facts)).not.toThrow();
    expect(facts.provisionedCertificate).toBeNull();
    expect(facts.clockMs).toBeNull();
  });

  it('reads the certificate pilot-agent renews with (as the proxy user) and the VM clock to judge it by', async () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    const session = new FakeVmSession(answer({ ...base, 'prov.cert': pem, clock: '1764158400' }));
    const facts = await inspectVm(session, { eastWestAddress: '10.233.0.1' });
    expect(facts.provisionedCertificate).toBe(pem);
    expect(facts.clockMs).toBe(1764158400_000);
    const inner = innerOf(session.calls[0]!.script);
    expect(inner).toContain("IVO_PROV_CHAIN='/etc/certs/cert-chain.pem'");
    expect(inner).toContain('ivo_probe_as head -c 65536 "$IVO_PROV_CHAIN"');
  });

  it('names every blocking problem: arch, disk, 15012, route source, missing downloader', async () => {
    const facts = await inspectVm(
      new FakeVmSession(
        answer({
          ...base,
          uname: 'ppc64le',
          'df.varlib': '1000',
          'ew.rc': '124',
          route: '10.233.0.1 dev eth0 src 169.254.3.4',
          tool: base.tool.filter((t) => t !== 'curl'),
        }),
      ),
      { eastWestAddress: '10.233.0.1', needsRouteSource: true, downloads: true },
    );
    expect(facts.problems.map((p) => p.code).sort()).toEqual([
      'disk-low',
      'east-west-unreachable',
      'missing-tool',
      'no-route-source',
      'unsupported-arch',
    ]);
    expect(facts.problems.find((p) => p.code === 'east-west-unreachable')!.message).toMatch(
      /10\.233\.0\.1:15012 .*no answer within 3s/,
    );
    expect(facts.problems.find((p) => p.code === 'no-route-source')!.message).toMatch(/link-local/);
    expect(() => assertPreflight(facts)).toThrow(VmPreflightError);
  });

  it('reports a sudo that wants a password as a problem naming the user, keeping OS and arch', async () => {
    const facts = await inspectVm(
      new FakeVmSession(
        answer(
          { user: 'deploy', uname: 'aarch64', 'os-release': osRelease, 'error:sudo': 'sudo: a password is required' },
          3,
        ),
      ),
      { eastWestAddress: '10.233.0.1' },
    );
    expect(facts.sudo.ok).toBe(false);
    expect(facts.arch).toBe('arm64');
    expect(facts.problems).toHaveLength(1);
    expect(facts.problems[0]!.message).toMatch(
      /sudo -n does not work on vm1 .* for user deploy: sudo: a password is required/,
    );
    expect(facts.problems[0]!.hint).toMatch(/deploy ALL=\(ALL\) NOPASSWD: ALL/);
  });

  it('fails loudly on a truncated answer (no end marker)', async () => {
    const { done: _done, ...partial } = base;
    await expect(inspectVm(new FakeVmSession(answer(partial)), { eastWestAddress: 'x' })).rejects.toThrow(
      /did not complete/,
    );
  });

  it('maps machines, os-release and route lines', () => {
    expect(archFromMachine('x86_64')).toBe('amd64');
    expect(archFromMachine('aarch64')).toBe('arm64');
    expect(archFromMachine('s390x')).toBeNull();
    expect(parseOsRelease('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"').family).toBe('rhel');
    expect(parseRouteSource('10.0.0.1 via 10.0.0.254 dev ens5 src 10.0.0.7 uid 0').ip).toBe('10.0.0.7');
    expect(parseRouteSource('fd00::1 from :: dev eth0 proto kernel src fd00::7 metric 256').ip).toBe('fd00::7');
    expect(parseRouteSource('fd00::1 dev eth0 src fe80::1').ip).toBeNull();
    expect(parseRouteSource('RTNETLINK answers: Network is unreachable').ip).toBeNull();
  });

  it('runs the 15012 probe (bash /dev/tcp or nc) through ivo_probe_as, for the istio-proxy user', () => {
    // A running sidecar's capture (nat OUTPUT → 15001) spares only istio-proxy's uid/gid: a probe as
    // root would be answered by Envoy, and a blocked 15012 would read as reachable.
    const inner = innerOf(inspectScript({ eastWestAddress: '10.233.0.1' }));
    expect(inner).toContain(probeAsProxyPart('istio-proxy').text);
    expect(headerOf(inner)).toContain("IVO_PROXY_USER='istio-proxy'\n");
    const probes = inner.split('\n').filter((line) => line.includes('/dev/tcp/') || line.includes('nc -z'));
    expect(probes).toEqual([
      `  ivo_ew_out=$(ivo_probe_as timeout "$IVO_REACH_TIMEOUT" bash -c 'exec 3<>"/dev/tcp/$1/$2"' ivo "$IVO_EW_HOST" "$IVO_EW_PORT" 2>&1 </dev/null)`,
      '  ivo_ew_out=$(ivo_probe_as nc -z -w "$IVO_REACH_TIMEOUT" "$IVO_EW_HOST" "$IVO_EW_PORT" 2>&1 </dev/null)',
    ]);
    expect(headerOf(inner)).toContain("IVO_REACH_TIMEOUT='3'\n");
    // The user is a quoted value like any other.
    expect(headerOf(innerOf(inspectScript({ eastWestAddress: 'x', proxyUser: HOSTILE })))).toContain(
      `IVO_PROXY_USER=${shQuote(HOSTILE)}\n`,
    );
  });

  // The bug this pins, with real iptables in a private network namespace (root only): an
  // istio-iptables-like capture (nat OUTPUT → a stand-in Envoy on 127.0.0.1:15001, sparing the proxy's
  // uid and gid) plus a firewall DROP of gateway:15012. Probed as root, the capture answers and the
  // block reads as reachable; probed as the proxy user (`nobody` here), the DROP is seen.

  it('says so when it had to probe as root although the proxy user exists (a sidecar may have answered)', async () => {
    const facts = await inspectVm(
      new FakeVmSession(answer({ ...base, 'ew.as': 'root: cannot switch to istio-proxy' })),
      { eastWestAddress: '10.233.0.1' },
    );
    expect(facts.eastWest).toMatchObject({
      reachable: true,
      probedAs: 'root: cannot switch to istio-proxy',
      detail:
        "connected as root (cannot switch to istio-proxy): a running sidecar's capture may have answered for the gateway",
    });
    const blocked = await inspectVm(new FakeVmSession(answer({ ...base, 'ew.rc': '124' })), {
      eastWestAddress: '10.233.0.1',
    });
    expect(blocked.eastWest).toMatchObject({ reachable: false, probedAs: 'istio-proxy (setpriv)' });
    expect(blocked.problems.map((p) => p.code)).toEqual(['east-west-unreachable']);
  });
});

describe('fetchLocalUrl', () => {
  let server: Server;
  afterAll(() => {
    server?.close();
  });

  it('reads several localhost URLs in one round trip, with status codes and exact bodies', async () => {
    server = createServer((request, response) => {
      if (request.url === '/healthz/ready') {
        response.writeHead(503).end();
      } else {
        response.writeHead(200, { 'content-type': 'text/plain' }).end(`path=${request.url}\nline2 ü\n`);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const local = new FakeVmSession(({ script }) => shAsync(script));
    const results = await fetchLocalUrl(local, [
      `http://127.0.0.1:${port}/healthz/ready`,
      `http://localhost:${port}/stats?filter=cluster.xds-grpc&x='y'`,
      'http://127.0.0.1:1/closed',
    ]);
    expect(local.counters.execRoundTrips).toBe(1);
    expect(results[0]).toEqual({ url: `http://127.0.0.1:${port}/healthz/ready`, status: 503, body: '' });
    expect(results[1]!.status).toBe(200);
    expect(results[1]!.body).toBe("path=/stats?filter=cluster.xds-grpc&x='y'\nline2 ü\n");
    expect(results[2]).toMatchObject({ status: 0, transportError: 7 });
  });

  it('refuses anything that is not a localhost URL', () => {
    expect(() => fetchLocalScript(['http://10.0.0.1:15000/stats'])).toThrow(/localhost/);
    expect(() => fetchLocalScript(['http://localhost:15000/x y'])).toThrow(/localhost/);
  });
});

describe('no secrets in files left behind by the tests', () => {
  it('the temp dir holds no token copy outside the staged test dirs', () => {
    const leaked = sh(`grep -rl secret-token-value . 2>/dev/null | grep -v -e '^./stage/' -e '^./cut/' || true`);
    expect(leaked.stdout.trim()).toBe('');
    expect(readFileSync(path.join(work, 'stage', 'istio-token'), 'utf8')).toBe('secret-token-value');
  });
});
