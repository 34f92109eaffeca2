// scripts/istio/build.sh refuses to run without a new enough Go — with a clear message, never a silent skip.
// (The build itself runs in the lab tests, through test/lab/istio/binaries.ts.)
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const SCRIPT = path.resolve(process.cwd(), 'scripts', 'istio', 'build.sh');

/** A PATH holding only a fake `go` (when given) and the system's basic tools — no real Go. */
function pathWith(fakeGoVersion?: string): { dir: string; path: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'istio build no-go '));
  if (fakeGoVersion) {
    const fake = path.join(dir, 'go');
    writeFileSync(fake, `#!/bin/sh\n[ "$1 $2" = "env GOVERSION" ] && echo ${fakeGoVersion} && exit 0\nexit 3\n`);
    chmodSync(fake, 0o755);
  }
  return { dir, path: `${dir}:/usr/bin:/bin` };
}

function build(pathValue: string): { status: number | null; stderr: string } {
  const r = spawnSync('bash', [SCRIPT], {
    env: { PATH: pathValue, HOME: tmpdir() },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stderr: r.stderr };
}

describe('scripts/istio/build.sh without a usable Go', () => {
  it('no go on PATH: exit 1 and says what to install', () => {
    const { dir, path: p } = pathWith();
    try {
      const r = build(p);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/Go 1\.26 or newer is needed .* no 'go' is on PATH/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an older Go (1.25): exit 1 naming the version found', () => {
    const { dir, path: p } = pathWith('go1.25.9');
    try {
      const r = build(p);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/Go 1\.26 or newer is needed to build istio\.io\/istio@v0\.0\.0-\S+; found go1\.25\.9/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
