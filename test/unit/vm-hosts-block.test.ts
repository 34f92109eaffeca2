// The /etc/hosts managed block logic, run through the real `sh` and `awk` on temp files.
import { describe, expect, it, beforeAll, afterAll } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HOSTS_FUNCTIONS, hostsBlockContent } from '../../src/vm/scripts/hosts-block.js';
import { composeScript } from '../../src/vm/scripts/protocol.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vm-hosts-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sh(body: string): { code: number; stdout: string; stderr: string } {
  const result = spawnSync('sh', ['-c', composeScript(HOSTS_FUNCTIONS, { text: body })], {
    encoding: 'utf8',
    cwd: dir,
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Applies a block (content of istioctl's hosts file) to a hosts file the way apply does. */
function applyBlock(hosts: string, entries: string): { code: number; text: string } {
  writeFileSync(path.join(dir, 'hosts'), hosts);
  writeFileSync(path.join(dir, 'block'), hostsBlockContent(entries));
  const result = sh('ivo_hosts_render hosts block hosts.new || exit $?; ivo_hosts_write hosts.new hosts');
  return { code: result.code, text: readFileSync(path.join(dir, 'hosts'), 'utf8') };
}

const BASE = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n10.0.0.5\tvm1\n';
const BLOCK = '# BEGIN istio-vm-onboard\n10.233.0.1 istiod.istio-system.svc\n# END istio-vm-onboard\n';

describe('hosts managed block', () => {
  it('appends the block once and a rerun changes nothing', () => {
    const first = applyBlock(BASE, '10.233.0.1 istiod.istio-system.svc\n');
    expect(first.code).toBe(0);
    expect(first.text).toBe(BASE + BLOCK);
    const second = applyBlock(first.text, '10.233.0.1 istiod.istio-system.svc\n');
    expect(second.text).toBe(first.text);
  });

  it('replaces the block in place, keeping the lines around it', () => {
    const before = `${BASE}${BLOCK}192.168.1.9 db\n`;
    const after = applyBlock(before, '10.233.0.2 istiod.istio-system.svc\n10.233.0.2 istiod-canary.istio-system.svc\n');
    expect(after.text).toBe(
      `${BASE}# BEGIN istio-vm-onboard\n10.233.0.2 istiod.istio-system.svc\n10.233.0.2 istiod-canary.istio-system.svc\n# END istio-vm-onboard\n192.168.1.9 db\n`,
    );
  });

  it('removes block and markers when the entries are empty (hostname load balancer, offboard)', () => {
    expect(applyBlock(`${BASE}${BLOCK}`, '').text).toBe(BASE);
    expect(applyBlock(BASE, '\n\n').text).toBe(BASE);
  });

  it('collapses duplicated blocks into one and tolerates CRLF / trailing spaces on markers', () => {
    const messy = `${BASE}# BEGIN istio-vm-onboard \r\nold1\n# END istio-vm-onboard\r\nkeep me\n${BLOCK}`;
    const after = applyBlock(messy, '10.233.0.3 istiod.istio-system.svc');
    expect(after.text).toBe(
      `${BASE}# BEGIN istio-vm-onboard\n10.233.0.3 istiod.istio-system.svc\n# END istio-vm-onboard\nkeep me\n`,
    );
  });

  it('refuses an unclosed block instead of dropping the rest of the file', () => {
    const broken = `${BASE}# BEGIN istio-vm-onboard\n10.233.0.1 istiod\n192.168.1.9 important-host\n`;
    const result = applyBlock(broken, '10.233.0.4 istiod.istio-system.svc');
    expect(result.code).toBe(3);
    expect(result.text).toBe(broken);
  });

  it('adds a final newline to a file without one before appending', () => {
    expect(applyBlock('127.0.0.1 localhost', '10.0.0.1 a').text).toBe(
      '127.0.0.1 localhost\n# BEGIN istio-vm-onboard\n10.0.0.1 a\n# END istio-vm-onboard\n',
    );
  });

  it('extracts the current block lines (only the first block)', () => {
    writeFileSync(path.join(dir, 'hosts'), `${BASE}${BLOCK}`);
    expect(sh('ivo_hosts_extract hosts').stdout).toBe('10.233.0.1 istiod.istio-system.svc\n');
    writeFileSync(path.join(dir, 'hosts'), BASE);
    expect(sh('ivo_hosts_extract hosts').stdout).toBe('');
    expect(sh('ivo_hosts_extract missing-file').code).toBe(0);
  });

  it('writes by rename (the old inode keeps the old text) keeping mode, and follows a symlinked hosts file', () => {
    const file = path.join(dir, 'hosts');
    rmSync(`${file}.old`, { force: true });
    writeFileSync(file, BASE);
    chmodSync(file, 0o640);
    linkSync(file, `${file}.old`); // a second name for the old inode
    writeFileSync(path.join(dir, 'block'), 'x y\n');
    expect(sh('ivo_hosts_render hosts block hosts.new && ivo_hosts_write hosts.new hosts').code).toBe(0);
    expect(readFileSync(`${file}.old`, 'utf8')).toBe(BASE);
    expect(readFileSync(file, 'utf8')).toBe(`${BASE}# BEGIN istio-vm-onboard\nx y\n# END istio-vm-onboard\n`);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    const real = path.join(dir, 'real-hosts');
    writeFileSync(real, BASE);
    rmSync(path.join(dir, 'link-hosts'), { force: true });
    symlinkSync(real, path.join(dir, 'link-hosts'));
    sh('ivo_hosts_render link-hosts block hosts.new && ivo_hosts_write hosts.new link-hosts');
    expect(lstatSync(path.join(dir, 'link-hosts')).isSymbolicLink()).toBe(true);
    expect(readFileSync(real, 'utf8')).toContain('# BEGIN istio-vm-onboard\nx y\n');
  });

  it('rejects entries that contain a marker line', () => {
    expect(() => hostsBlockContent('# END istio-vm-onboard\n1.2.3.4 x')).toThrow(/marker/);
  });
});
