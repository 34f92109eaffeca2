// The lab's Envoy stand-in (test/lab/envoy, Go): build.sh builds it into the ignored test/lab/envoy/.bin, and its
// own Go tests run against go-control-plane's xDS/SDS server and ../shared/envoy-reference. Without a Go >= 1.26
// toolchain build.sh stops with a message saying so, and this file fails (never skips).
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const moduleDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'envoy');

interface Result {
  code: number | null;
  output: string;
}

function runIn(cwd: string, command: string, args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, GOFLAGS: '-count=1' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('Envoy stand-in (Go)', () => {
  it('builds into the ignored .bin folder, and a second build is a no-op', async () => {
    const first = await runIn(moduleDir, 'bash', [path.join(moduleDir, 'build.sh')]);
    expect(first.output).toMatch(/envoy stand-in: (built|up to date)/);
    expect(first.code).toBe(0);
    expect(existsSync(path.join(moduleDir, '.bin', 'envoy'))).toBe(true);
    const second = await runIn(moduleDir, 'bash', [path.join(moduleDir, 'build.sh')]);
    expect(second.code).toBe(0);
    expect(second.output).toContain('envoy stand-in: up to date');
    const version = await runIn(moduleDir, path.join(moduleDir, '.bin', 'envoy'), ['--version']);
    expect(version.code).toBe(0);
    expect(version.output).toMatch(/version: envoy-standin\//);
  }, 900_000);

  it('passes its go tests (xDS/SDS client, admin formats, filter chains, routing, auto mTLS, stats)', async () => {
    const result = await runIn(moduleDir, 'go', ['test', './...']);
    if (result.code !== 0) throw new Error(`go test failed:\n${result.output}`);
    expect(result.output).toMatch(/^ok\s/m);
  }, 900_000);
});
