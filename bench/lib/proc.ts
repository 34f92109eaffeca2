// Running a measured process: wall time from just before spawn to exit, the process tree's CPU time
// and peak RSS from GNU time (`/usr/bin/time -f`, which reports the rusage of the child and every
// descendant it waited for), and the arrival time of every stdout line (for "start to first log line"
// and for cross-checking phase boundaries). Bounded by a timeout that kills the process group.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TimedLine {
  /** Milliseconds since spawn. */
  atMs: number;
  text: string;
}

export interface TimedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Epoch milliseconds just before spawn. */
  startedEpochMs: number;
  wallMs: number;
  /** user + system seconds of the process and its waited-for descendants (GNU time %U + %S). */
  cpuUserS: number;
  cpuSysS: number;
  /** Peak resident set size of the largest process in the tree, KiB (GNU time %M). */
  maxRssKiB: number;
  /** Milliseconds from spawn to the first stdout byte, undefined when nothing was printed. */
  firstOutputMs: number | undefined;
  lines: TimedLine[];
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface TimedOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs: number;
  input?: string;
}

const GNU_TIME = '/usr/bin/time';

export function runTimed(argv: string[], options: TimedOptions): Promise<TimedRun> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ivo-bench-time-'));
  const timeFile = path.join(scratch, 'rusage');
  return new Promise((resolve, reject) => {
    const startedEpochMs = Date.now();
    const t0 = performance.now();
    const child = spawn(GNU_TIME, ['-f', '%e %U %S %M', '-o', timeFile, ...argv], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout can end the whole tree by its pgid
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const lines: TimedLine[] = [];
    let partial = '';
    let firstOutputMs: number | undefined;
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => {
      const at = performance.now() - t0;
      firstOutputMs ??= at;
      out.push(chunk);
      const text = partial + chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) lines.push({ atMs: at, text: line });
    });
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      rmSync(scratch, { recursive: true, force: true });
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      if (partial) lines.push({ atMs: wallMs, text: partial });
      let fields: number[] = [];
      try {
        // GNU time prefixes "Command exited with non-zero status N" when the child failed.
        const last = readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
        fields = last.split(/\s+/).map(Number);
      } catch {
        fields = [];
      }
      rmSync(scratch, { recursive: true, force: true });
      resolve({
        code,
        signal,
        startedEpochMs,
        wallMs,
        cpuUserS: fields[1] ?? Number.NaN,
        cpuSysS: fields[2] ?? Number.NaN,
        maxRssKiB: fields[3] ?? Number.NaN,
        firstOutputMs,
        lines,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}
