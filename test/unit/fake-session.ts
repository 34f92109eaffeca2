// A VmSession for tests of code above the VM layer: records every script and answers through a
// handler. Counts round trips like the real session does.
import type { ExecOptions, ExecResult, SessionCounters, VmSession } from '../../src/vm/session.js';

export interface RecordedExec {
  script: string;
  stdin?: string | Buffer;
}

export class FakeVmSession implements VmSession {
  readonly counters: SessionCounters = { connections: 1, execRoundTrips: 0, bytesUploaded: 0 };
  readonly calls: RecordedExec[] = [];
  closed = false;

  constructor(
    private readonly handler: (call: RecordedExec) => ExecResult | Promise<ExecResult>,
    readonly target = 'vm1 (lab@10.233.0.11:22)',
  ) {}

  async exec(script: string, options: ExecOptions = {}): Promise<ExecResult> {
    if (this.closed) throw new Error('session closed');
    this.counters.execRoundTrips += 1;
    this.counters.bytesUploaded += Buffer.byteLength(script) + (options.stdin ? Buffer.byteLength(options.stdin) : 0);
    const call: RecordedExec = { script, ...(options.stdin !== undefined ? { stdin: options.stdin } : {}) };
    this.calls.push(call);
    return this.handler(call);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Builds protocol output lines (see scripts/shell.ts) for fake answers. */
export function protocolLines(values: Record<string, string | string[]>, encoded: string[] = []): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      lines.push(
        encoded.includes(key) ? `@@ivo64 ${key} ${Buffer.from(item).toString('base64')}` : `@@ivo ${key} ${item}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
