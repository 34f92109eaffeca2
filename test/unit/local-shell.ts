// Runs generated VM scripts with this machine's real `sh`, in a working directory of the test's: the
// VM-script tests (unit, and the lab's host-level ones) share these. Not a test file itself.
import { spawn, spawnSync } from 'node:child_process';
import type { ExecResult } from '../../src/vm/session.js';

export interface LocalShell {
  /** `sh -c script sh args…`, blocking. */
  sh(script: string, args?: string[], input?: string | Buffer): ExecResult;
  /** Like sh() but without blocking the event loop (a server in this process must answer). */
  shAsync(script: string): Promise<ExecResult>;
}

export function localShell(cwd: string): LocalShell {
  return {
    sh(script, args = [], input) {
      const result = spawnSync('sh', ['-c', script, 'sh', ...args], { input, cwd, maxBuffer: 64 * 1024 * 1024 });
      return { code: result.status ?? -1, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
    },
    shAsync(script) {
      return new Promise((resolve, reject) => {
        const child = spawn('sh', ['-c', script], { cwd });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
        child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
        child.on('error', reject);
        child.on('close', (code) =>
          resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
        );
        child.stdin.end();
      });
    },
  };
}
