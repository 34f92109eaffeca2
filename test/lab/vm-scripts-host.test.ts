// The VM scripts run for real on this host as if it were a VM: `ivo_probe_as` through setpriv, runuser
// and sudo, a real port probe, real iptables in a private network namespace. They need what the lab
// needs (root, sudo, iptables), so they live in the lab project, whose set-up installs those packages.
import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeVmSession } from '../unit/fake-session.js';
import { inspectVm, probeAsProxyPart } from '../../src/vm/scripts/inspect.js';
import { asRoot, composeScript, ScriptOutput, shQuote } from '../../src/vm/scripts/protocol.js';
import { changeFunctions } from '../../src/vm/scripts/common.js';
import { localShell } from '../unit/local-shell.js';

const work = mkdtempSync(path.join(tmpdir(), 'vm-scripts-host-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const HOSTILE = `x'; touch ${work}/pwned; echo '$(touch ${work}/pwned2)\`touch ${work}/pwned3\`"\\ \n$HOME`;

const { sh, shAsync } = localShell(work);

describe('VM scripts on this host (root, sudo, iptables)', () => {
  it('ivo_probe_as runs the command as the proxy user (setpriv, else runuser, else sudo -n -u), from /, and as root when the user does not exist', async () => {
    // As root (through asRoot, like inspect), with `nobody` standing in for istio-proxy. Shell functions
    // named like a tool shadow it for the check, so each fallback is taken in turn.
    const probe = async (user: string, shadow: string[] = []) => {
      const body = `${shadow.map((tool) => `${tool}() { return 1; }`).join('\n')}
ivo_probe_as_choose
ivo_emit64 who "$(ivo_probe_as id -un)"
ivo_emit64 groups "$(ivo_probe_as id -G)"
ivo_emit64 cwd "$(ivo_probe_as pwd)"
ivo_emit64 shell.cwd "$(pwd)"
ivo_probe_as sh -c 'exit 124'
ivo_emit rc "$?"
`;
      const result = await shAsync(asRoot(composeScript(probeAsProxyPart(user), { text: body })));
      expect([user, shadow, result.code, result.stderr]).toEqual([user, shadow, 0, '']);
      const out = new ScriptOutput(result.stdout);
      return {
        as: out.get('ew.as'),
        who: out.get('who'),
        groups: out.get('groups'),
        cwd: out.get('cwd'),
        shellCwd: out.get('shell.cwd'),
        rc: out.get('rc'),
      };
    };
    const nobodyGid = sh('id -g nobody').stdout.trim();
    const seen = await probe('nobody');
    expect(seen).toEqual({
      as: 'nobody (setpriv)',
      who: 'nobody',
      groups: nobodyGid,
      cwd: '/',
      shellCwd: work,
      rc: '124',
    });
    expect((await probe('nobody', ['setpriv'])).as).toBe('nobody (runuser)');
    expect((await probe('nobody', ['setpriv'])).who).toBe('nobody');
    expect(await probe('nobody', ['setpriv', 'runuser'])).toMatchObject({
      as: 'nobody (sudo)',
      who: 'nobody',
      cwd: '/',
      rc: '124',
    });
    expect(await probe('nobody', ['setpriv', 'runuser', 'sudo'])).toMatchObject({
      as: 'root: cannot switch to nobody',
      who: 'root',
      rc: '124',
    });
    // A VM without the user (never onboarded: no sidecar, no capture) probes as root.
    expect(await probe('ivo-no-such-user')).toEqual({
      as: 'root',
      who: 'root',
      groups: sh('id -G root').stdout.trim(),
      cwd: '/',
      shellCwd: work,
      rc: '124',
    });
  }, 30_000);

  it('probes a local port for real as the proxy user: connected, refused, and the user it ran as', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const open = (server.address() as { port: number }).port;
      const local = new FakeVmSession(({ script }) => shAsync(script));
      const up = await inspectVm(local, {
        eastWestAddress: '127.0.0.1',
        discoveryPort: open,
        proxyUser: 'nobody',
        timeoutMs: 20_000,
      });
      expect(up.eastWest).toEqual({
        address: '127.0.0.1',
        port: open,
        reachable: true,
        detail: 'connected',
        probedAs: 'nobody (setpriv)',
      });
      const down = await inspectVm(local, {
        eastWestAddress: '127.0.0.1',
        discoveryPort: 1,
        proxyUser: 'nobody',
        timeoutMs: 20_000,
      });
      expect(down.eastWest).toMatchObject({ reachable: false, probedAs: 'nobody (setpriv)' });
      expect(down.eastWest.detail).toMatch(/connection refused/);
      const fresh = await inspectVm(local, {
        eastWestAddress: '127.0.0.1',
        discoveryPort: open,
        proxyUser: 'ivo-no-such-user',
        timeoutMs: 20_000,
      });
      expect(fresh.eastWest).toMatchObject({ reachable: true, detail: 'connected', probedAs: 'root' });
    } finally {
      server.close();
    }
  }, 30_000);

  it('sees a firewall block of 15012 behind a running sidecar capture (real iptables, private netns)', async () => {
    const setup = `ip link set lo up && ip addr add 10.99.0.2/24 dev lo || exit 90
${shQuote(process.execPath)} -e 'require("net").createServer((s) => s.on("error", () => {}).destroy()).listen(15001, "127.0.0.1")' & ivo_srv=$!
trap 'kill $ivo_srv 2>/dev/null' EXIT
i=0
until bash -c 'exec 3<>/dev/tcp/127.0.0.1/15001' 2>/dev/null; do i=$((i + 1)); [ $i -lt 150 ] || exit 93; sleep 0.1; done
u=$(id -u nobody) && g=$(id -g nobody) || exit 91
ipt() { iptables -w 5 "$@" || exit 92; }
ipt -t nat -N ISTIO_OUTPUT
ipt -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT
ipt -t nat -A ISTIO_OUTPUT -m owner --uid-owner "$u" -j RETURN
ipt -t nat -A ISTIO_OUTPUT -m owner --gid-owner "$g" -j RETURN
ipt -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
ipt -t nat -A ISTIO_OUTPUT -p tcp -j REDIRECT --to-ports 15001
ipt -A OUTPUT -p tcp -d 10.99.0.1 --dport 15012 -j DROP
sh -c "$1"
`;
    const captured = new FakeVmSession(({ script }) =>
      shAsync(`exec unshare -n sh -c ${shQuote(setup)} sh ${shQuote(script)}`),
    );
    const asProxy = await inspectVm(captured, { eastWestAddress: '10.99.0.1', proxyUser: 'nobody', timeoutMs: 30_000 });
    expect(asProxy.eastWest).toMatchObject({
      reachable: false,
      probedAs: 'nobody (setpriv)',
      detail: 'no answer within 3s (dropped by a firewall?)',
    });
    expect(asProxy.problems.map((p) => p.code)).toContain('east-west-unreachable');
    // The old behaviour, for contrast: as root (no such proxy user) the stand-in Envoy answers.
    const asRootProbe = await inspectVm(captured, {
      eastWestAddress: '10.99.0.1',
      proxyUser: 'ivo-no-such-user',
      timeoutMs: 30_000,
    });
    expect(asRootProbe.eastWest).toMatchObject({ reachable: true, probedAs: 'root', detail: 'connected' });
  }, 60_000);

  it('runs for real on this machine (read-only) and quotes a hostile gateway address', async () => {
    const local = new FakeVmSession(({ script }) => sh(script));
    const facts = await inspectVm(local, { eastWestAddress: HOSTILE, timeoutMs: 20_000 });
    expect(facts.sudo.ok).toBe(true);
    expect(facts.machine).not.toBe('');
    expect(facts.eastWest.reachable).toBe(false);
    for (const file of ['pwned', 'pwned2', 'pwned3']) expect(existsSync(path.join(work, file))).toBe(false);
  });
});

describe('root never follows a path the proxy user can swap (issue 17)', () => {
  // `nobody` stands in for istio-proxy: it owns the directory (like /etc/certs or /var/lib/istio/envoy),
  // so it can put a symlink under any name there. A root-only file is what the symlink points at.
  const functions = changeFunctions({ proxyUser: 'nobody' });
  const asRootWith = (body: string) => asRoot(composeScript(functions, { text: body }));
  const setUp = (name: string) => {
    const base = path.join(work, name);
    const proxyDir = path.join(base, 'proxy dir');
    const secret = path.join(base, 'secret');
    sh(
      `mkdir -p ${shQuote(proxyDir)} && chmod 0711 ${shQuote(work)} && chmod 0755 ${shQuote(base)} && chown nobody ${shQuote(proxyDir)} && ` +
        `printf s3cret > ${shQuote(secret)} && chmod 0600 ${shQuote(secret)} && ` +
        `setpriv --reuid=nobody --regid=nogroup --clear-groups ln -s ${shQuote(secret)} ${shQuote(path.join(proxyDir, 'root-cert.pem'))}`,
    );
    return { base, proxyDir, secret, target: path.join(proxyDir, 'root-cert.pem') };
  };
  const statOf = (file: string) => sh(`stat -c '%U %a' ${shQuote(file)}`).stdout.trim();

  it('fixing owner and mode of a placed file that became a symlink leaves the file it points at alone', () => {
    const { proxyDir, secret, target } = setUp('fix');
    const regular = path.join(proxyDir, 'mesh');
    sh(`printf x > ${shQuote(regular)} && chmod 0600 ${shQuote(regular)}`);
    const result = sh(
      asRootWith(
        `ivo_fix_file ${shQuote(target)} nobody 0644\nivo_fix_file ${shQuote(regular)} nobody 0644\nivo_emit done yes\n`,
      ),
    );
    expect([result.stderr, new ScriptOutput(result.stdout).get('done')]).toEqual(['', 'yes']);
    expect(statOf(regular)).toBe('nobody 644');
    expect(statOf(secret)).toBe('root 600');
  });

  it("the snapshot of a proxy file reads it with the proxy user's rights: a symlink to a root-only file copies nothing", () => {
    const { base, secret, target } = setUp('snapshot');
    const copy = path.join(base, 'snapshot-copy');
    const regular = path.join(base, 'proxy dir', 'mesh');
    const regularCopy = path.join(base, 'mesh-copy');
    sh(`printf 'mesh: 1' > ${shQuote(regular)} && chown nobody ${shQuote(regular)} && chmod 0600 ${shQuote(regular)}`);
    const ok = sh(asRootWith(`ivo_snapshot_file ${shQuote(regular)} nobody ${shQuote(regularCopy)}\n`));
    expect([ok.stderr, sh(`cat ${shQuote(regularCopy)}`).stdout]).toEqual(['', 'mesh: 1']);
    const refused = sh(asRootWith(`ivo_snapshot_file ${shQuote(target)} nobody ${shQuote(copy)}\n`));
    expect(refused.stdout).toContain('error:snapshot');
    expect(existsSync(copy) ? sh(`cat ${shQuote(copy)}`).stdout : '').not.toContain('s3cret');
    expect(statOf(secret)).toBe('root 600');
  });

  it('a staged proxy file is written by the proxy user: a planted .ivo-new symlink cannot make root write elsewhere', () => {
    const { base, proxyDir, secret } = setUp('stage');
    const dest = path.join(proxyDir, 'cluster.env');
    const source = path.join(base, 'staged');
    sh(
      `printf 'A=1\\n' > ${shQuote(source)} && ` +
        `setpriv --reuid=nobody --regid=nogroup --clear-groups ln -s ${shQuote(secret)} ${shQuote(`${dest}.ivo-new`)}`,
    );
    const result = sh(
      asRootWith(
        `ivo_stage_file ${shQuote(source)} ${shQuote(dest)} nobody 0644\nivo_commit_file ${shQuote(dest)} nobody\nivo_emit done yes\n`,
      ),
    );
    expect([result.stdout, result.stderr, new ScriptOutput(result.stdout).get('done')]).toEqual([
      expect.anything(),
      '',
      'yes',
    ]);
    expect(sh(`cat ${shQuote(dest)}`).stdout).toBe('A=1\n');
    expect(statOf(dest)).toBe('nobody 644');
    expect(sh(`cat ${shQuote(secret)}`).stdout).toBe('s3cret');
    expect(statOf(secret)).toBe('root 600');
  });
});
