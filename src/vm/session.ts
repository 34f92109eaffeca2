// The one side-effect interface of the VM layer: a connected VM that runs shell scripts. Everything in
// src/vm/scripts builds on `exec`, so the rollout and the verification can use the real SSH session
// (ssh-session.ts), the lab, or a fake.

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Bytes fed to the script's standard input (the staged files travel here, as one tar stream). */
  stdin?: string | Buffer;
  /** Upper bound for the whole round trip; the remote command is killed and the call rejects after it. */
  timeoutMs?: number;
}

export interface SessionCounters {
  /** SSH connections opened for this VM (a bastion adds its own). */
  connections: number;
  /** `exec` calls, i.e. remote round trips. */
  execRoundTrips: number;
  /** Script text plus stdin bytes sent to the VM. */
  bytesUploaded: number;
}

export interface VmSession {
  /** For messages: `vm1 (lab@10.233.0.11:22)`. */
  readonly target: string;
  /**
   * ONE round trip: runs `script` with `/bin/sh` as the login user (the script travels as the command,
   * never on disk); `stdin` is the script's standard input. Resolves with the exit code whatever it is;
   * rejects only when the transport fails (connection lost, timeout).
   */
  exec(script: string, options?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
  readonly counters: SessionCounters;
}

/** A transport-level failure talking to a VM (connect, host key, auth, lost connection, timeout). */
export class VmConnectionError extends Error {
  constructor(
    message: string,
    readonly kind:
      | 'host-key-mismatch'
      | 'host-key-unknown'
      | 'auth'
      | 'refused'
      | 'timeout'
      | 'unreachable'
      | 'dns'
      | 'bad-key'
      | 'connection-lost'
      | 'exec-timeout'
      | 'other',
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'VmConnectionError';
  }
}
