// The real VmSession: one SSH connection per VM (node-ssh / ssh2), the host key pinned against the
// known_hosts text we were given, an optional bastion reached through a forwarded channel, a bounded
// retry for connection errors only, and counters for the benchmark.
import net from 'node:net';
import { NodeSSH, type Config } from 'node-ssh';
import type { SshEndpoint, VmSpec } from '../inventory/types.js';
import {
  fingerprintSha256,
  hostKeyAlgorithmsFor,
  hostKeysFor,
  keyTypeOfBlob,
  knownHostsLine,
  knownHostsName,
} from './known-hosts.js';
import { describePrivateKey } from './private-key.js';
import { shQuote } from './scripts/protocol.js';
import {
  VmConnectionError,
  type ExecOptions,
  type ExecResult,
  type SessionCounters,
  type VmSession,
} from './session.js';

export interface ConnectVmOptions {
  vm: VmSpec;
  privateKey: string;
  passphrase?: string;
  /** OpenSSH known_hosts text pinning the VM's (and its bastion's) host keys. */
  knownHosts: string;
  /** Accept a host that known_hosts does not list (never a changed key) and report its line. */
  trustOnFirstUse?: boolean;
  /** SSH handshake timeout per connection; default 15 s. */
  readyTimeoutMs?: number;
  /** Connection attempts (refused / timeout / reset / unreachable only); default 3. */
  connectAttempts?: number;
  /** First back-off between attempts, doubled each time; default 1 s. */
  retryBackoffMs?: number;
  /** Default timeout of one exec round trip; default 10 min. */
  execTimeoutMs?: number;
  onLearnedHostKey?(line: string): void;
  /**
   * Host keys accepted on first use, by `host:port`: once learned, a key is pinned for the rest of the
   * run (a reconnect, or another VM behind the same bastion, must present the same key). Pass one map
   * to every VM of a run; by default each session keeps its own.
   */
  learnedHostKeys?: Map<string, Buffer>;
}

/** Longest command we send: Linux limits one argv string to 128 KiB (MAX_ARG_STRLEN). */
const MAX_COMMAND_BYTES = 120_000;

interface HostKeyVerdict {
  kind: 'host-key-mismatch' | 'host-key-unknown';
  message: string;
  hint: string;
}

interface Hop {
  label: string;
  endpoint: SshEndpoint;
}

/** A connection cut while a script ran (after one reconnect and rerun): the scripts change nothing half-way. */
const LOST_HINT =
  'the network or sshd dropped the session (a firewall or NAT idle timeout, sshd restarted, the VM ' +
  'rebooting); the VM keeps its previous files when an apply is cut — rerun once the path is stable';

const RETRIABLE = new Set<VmConnectionError['kind']>(['refused', 'timeout', 'unreachable', 'connection-lost']);

export async function connectVm(options: ConnectVmOptions): Promise<VmSession> {
  const { vm } = options;
  const attempts = Math.max(1, Math.min(options.connectAttempts ?? 3, 10));
  const backoff = Math.max(0, Math.min(options.retryBackoffMs ?? 1000, 30_000));
  const counters: SessionCounters = { connections: 0, execRoundTrips: 0, bytesUploaded: 0 };
  const target = `${vm.name} (${vm.ssh.user}@${vm.ssh.host}:${vm.ssh.port})`;
  let lastError: VmConnectionError | undefined;
  if (options.trustOnFirstUse && !options.learnedHostKeys) options = { ...options, learnedHostKeys: new Map() };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const connections = await openChain(options, counters);
      return new SshVmSession(target, connections, counters, options.execTimeoutMs ?? 600_000, () =>
        openChain(options, counters),
      );
    } catch (error) {
      lastError =
        error instanceof VmConnectionError
          ? error
          : new VmConnectionError(`SSH to ${target} failed: ${String(error)}`, 'other');
      if (!RETRIABLE.has(lastError.kind) || attempt === attempts) break;
      await new Promise((resolve) => setTimeout(resolve, backoff * 2 ** (attempt - 1)));
    }
  }
  if (lastError && RETRIABLE.has(lastError.kind) && attempts > 1) {
    lastError.message += ` (after ${attempts} attempts)`;
  }
  throw lastError ?? new VmConnectionError(`SSH to ${target} failed`, 'other');
}

async function openChain(options: ConnectVmOptions, counters: SessionCounters): Promise<NodeSSH[]> {
  const { vm } = options;
  const vmHop: Hop = { label: vm.name, endpoint: vm.ssh };
  if (!vm.bastion) {
    return [await openHop(vmHop, options, counters)];
  }
  const bastionHop: Hop = { label: `bastion of ${vm.name}`, endpoint: vm.bastion };
  const bastion = await openHop(bastionHop, options, counters);
  try {
    let channel;
    try {
      channel = await bastion.forwardOut('127.0.0.1', 0, vm.ssh.host, vm.ssh.port);
    } catch (error) {
      throw new VmConnectionError(
        `bastion ${vm.bastion.user}@${vm.bastion.host}:${vm.bastion.port} could not open a channel ` +
          `to ${vm.ssh.host}:${vm.ssh.port} for ${vm.name}: ${(error as Error).message}`,
        'unreachable',
        'check that the bastion reaches the VM and allows TCP forwarding (AllowTcpForwarding yes)',
      );
    }
    const inner = await openHop(vmHop, options, counters, channel);
    return [inner, bastion];
  } catch (error) {
    bastion.dispose();
    throw error;
  }
}

async function openHop(
  hop: Hop,
  options: ConnectVmOptions,
  counters: SessionCounters,
  sock?: unknown,
): Promise<NodeSSH> {
  const { endpoint } = hop;
  const where = `${endpoint.host}:${endpoint.port}`;
  const pinned = hostKeysFor(options.knownHosts, endpoint.host, endpoint.port);
  const readyTimeout = options.readyTimeoutMs ?? 15_000;
  let verdict: HostKeyVerdict | undefined;
  let learned: string | undefined;

  const hostVerifier = (key: Buffer): boolean => {
    const presented = fingerprintSha256(key);
    const type = keyTypeOfBlob(key);
    if (pinned.revoked.some((known) => known.blob.equals(key))) {
      verdict = {
        kind: 'host-key-mismatch',
        message: `host key for ${hop.label} (${where}) is marked @revoked in known_hosts: ${type} ${presented}`,
        hint: 'the VM presents a revoked key: rebuild its host keys and update ssh-known-hosts',
      };
      return false;
    }
    if (pinned.keys.some((known) => known.blob.equals(key))) return true;
    if (pinned.keys.length > 0) {
      const expected = pinned.keys.map((known) => fingerprintSha256(known.blob)).join(' or ');
      verdict = {
        kind: 'host-key-mismatch',
        message:
          `host key for ${hop.label} (${where}) does not match known_hosts: expected ` +
          `${expected}, got ${presented} — the VM was rebuilt or this is a MITM; update ssh-known-hosts`,
        hint:
          `if the VM was really rebuilt, replace its line(s) in ssh-known-hosts with the output ` +
          `of "ssh-keyscan -p ${endpoint.port} ${endpoint.host}" after checking the fingerprint ` +
          `${presented} on the VM's console`,
      };
      return false;
    }
    if (options.trustOnFirstUse) {
      const earlier = options.learnedHostKeys?.get(where);
      if (earlier && !earlier.equals(key)) {
        verdict = {
          kind: 'host-key-mismatch',
          message:
            `host key for ${hop.label} (${where}) changed during this run: first ` +
            `${fingerprintSha256(earlier)}, now ${presented} — refusing (trust on first use pins ` +
            `the first key for the whole run)`,
          hint:
            'a host key that changes between two connections of one run is a MITM or a rebuilt ' +
            'VM: check the fingerprint on the VM console and pin it in ssh-known-hosts',
        };
        return false;
      }
      options.learnedHostKeys?.set(where, Buffer.from(key));
      learned = knownHostsLine(endpoint.host, endpoint.port, key);
      return true;
    }
    verdict = {
      kind: 'host-key-unknown',
      message:
        `host key for ${hop.label} (${where}) is not in known_hosts (no entry for ` +
        `"${knownHostsName(endpoint.host, endpoint.port)}"; the host presented ${type} ${presented})`,
      hint:
        `add the VM's key to ssh-known-hosts (ssh-keyscan -p ${endpoint.port} ${endpoint.host}, ` +
        `checked against ${presented} on the VM), or allow trust on first use`,
    };
    return false;
  };

  // Our own TCP socket for a direct hop, with Nagle's algorithm off: SSH is a chain of small
  // request/answer packets, and Nagle plus the peer's delayed ACK held each of them ~40 ms (a login
  // took ~200 ms instead of ~35, every exec round trip ~50 ms more). ssh2 handles its errors and
  // timeout as it does for a socket of its own; the listener here only keeps an early error from
  // being unhandled before ssh2 attaches its own.
  const tcp = sock ? undefined : net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
  tcp?.on('error', () => undefined);
  const config: Config = {
    username: endpoint.user,
    port: endpoint.port,
    privateKey: options.privateKey,
    readyTimeout,
    hostVerifier,
    // Public key only: no "none" probe first (one round trip less), never a password or keyboard prompt.
    authHandler: ['publickey'],
    tryKeyboard: false,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
    ...(options.passphrase ? { passphrase: options.passphrase } : {}),
    host: endpoint.host,
    sock: sock ?? tcp,
    ...(pinned.keys.length > 0
      ? { algorithms: { serverHostKey: hostKeyAlgorithmsFor(pinned.keys.map((key) => key.type)) } }
      : {}),
  };
  const ssh = new NodeSSH();
  try {
    await ssh.connect(config);
  } catch (error) {
    ssh.dispose();
    tcp?.destroy();
    if (verdict) throw new VmConnectionError(verdict.message, verdict.kind, verdict.hint);
    throw mapConnectError(error, hop, options, readyTimeout);
  }
  // ssh2 emits 'error' on the client later (keepalive timeout, reset); without a listener it would crash the process.
  ssh.connection?.on('error', () => undefined);
  counters.connections += 1;
  if (learned) options.onLearnedHostKey?.(learned);
  return ssh;
}

function mapConnectError(
  error: unknown,
  hop: Hop,
  options: ConnectVmOptions,
  readyTimeoutMs: number,
): VmConnectionError {
  const { endpoint } = hop;
  const where = `${endpoint.host}:${endpoint.port}`;
  const err = error as { message?: string; code?: string; level?: string };
  const message = err.message ?? String(error);
  const code = err.code ?? '';
  if (
    /encrypted private|passphrase|cannot parse privatekey|unsupported key format|bad decrypt|integrity check failed/i.test(
      message,
    )
  ) {
    const encrypted = /encrypted/i.test(message) && !options.passphrase;
    return new VmConnectionError(
      encrypted
        ? `the SSH private key is passphrase-protected but no passphrase was given (connecting to ${hop.label})`
        : `the SSH private key cannot be used: ${message}`,
      'bad-key',
      'pass an unencrypted OpenSSH/PEM private key in ssh-private-key (or its passphrase)',
    );
  }
  if (err.level === 'client-authentication' || /authentication methods failed/i.test(message)) {
    const key = describePrivateKey(options.privateKey, options.passphrase);
    const keyName = key ? `${key.type} ${key.fingerprint}` : 'from ssh-private-key';
    return new VmConnectionError(
      `SSH authentication failed for ${endpoint.user}@${where} (${hop.label}) with key ${keyName}`,
      'auth',
      `the key is not in ~${endpoint.user}/.ssh/authorized_keys on the host, or the user "${endpoint.user}" is wrong`,
    );
  }
  if (code === 'ECONNREFUSED') {
    return new VmConnectionError(
      `connection refused by ${where} (${hop.label}): is sshd running and listening on port ${endpoint.port}?`,
      'refused',
      `start sshd on the host (systemctl start ssh) or fix the port in the inventory`,
    );
  }
  if (code === 'ETIMEDOUT' && /no response/i.test(message)) {
    return new VmConnectionError(
      `SSH connection to ${where} (${hop.label}) closed before it was ready: ${message}`,
      'connection-lost',
    );
  }
  if (code === 'ETIMEDOUT' || /timed out/i.test(message)) {
    return new VmConnectionError(
      `timed out after ${Math.round(readyTimeoutMs / 1000)}s connecting to ${where} (${hop.label})`,
      'timeout',
      'check the address and port, the route from the runner, and any firewall / security group in between',
    );
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new VmConnectionError(
      `no route to ${where} (${hop.label}): ${code}`,
      'unreachable',
      "check the address and the runner's network",
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new VmConnectionError(
      `cannot resolve ${endpoint.host} (${hop.label}): ${code}`,
      code === 'EAI_AGAIN' ? 'unreachable' : 'dns',
    );
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || /closed|reset|disconnect/i.test(message)) {
    return new VmConnectionError(`SSH connection to ${where} (${hop.label}) was cut: ${message}`, 'connection-lost');
  }
  return new VmConnectionError(`SSH to ${where} (${hop.label}) failed: ${message}`, 'other');
}

interface Ssh2Channel {
  on(event: 'data', listener: (chunk: Buffer) => void): void;
  on(event: 'exit', listener: (code: number | null, signal?: string) => void): void;
  on(event: 'close', listener: () => void): void;
  stderr: { on(event: 'data', listener: (chunk: Buffer) => void): void };
  end(data?: string | Buffer): void;
  signal(name: string): void;
  close(): void;
}

interface Ssh2Client {
  exec(command: string, callback: (error: Error | undefined, channel: Ssh2Channel) => void): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  removeListener(event: string, listener: (...args: unknown[]) => void): void;
}

/** Reconnections one session may make after its connection was cut under a script. */
const MAX_RECONNECTS = 2;

class SshVmSession implements VmSession {
  private closed = false;
  private reconnects = 0;

  constructor(
    readonly target: string,
    /** The VM's connection first, then the bastion's (if any). */
    private connections: NodeSSH[],
    readonly counters: SessionCounters,
    private readonly defaultTimeoutMs: number,
    private readonly reopen: () => Promise<NodeSSH[]>,
  ) {}

  /**
   * Runs a script in one round trip. Every script we send is safe to run again (reads, or an apply
   * that stages, locks and compares before it changes anything), so when the connection is cut under
   * it — a NAT or firewall resetting the flow, sshd restarted — the session reconnects once and runs
   * it again, instead of failing the VM on a network blip. Timeouts are not retried.
   */
  async exec(script: string, options: ExecOptions = {}): Promise<ExecResult> {
    try {
      return await this.execOnce(script, options);
    } catch (error) {
      if (
        !(error instanceof VmConnectionError) ||
        error.kind !== 'connection-lost' ||
        this.closed ||
        this.reconnects >= MAX_RECONNECTS
      ) {
        throw error;
      }
      this.reconnects += 1;
      for (const ssh of this.connections) ssh.dispose();
      try {
        this.connections = await this.reopen();
      } catch {
        throw error;
      }
      return this.execOnce(script, options);
    }
  }

  private execOnce(script: string, options: ExecOptions): Promise<ExecResult> {
    const command = `exec /bin/sh -c ${shQuote(script)}`;
    if (Buffer.byteLength(command) > MAX_COMMAND_BYTES) {
      return Promise.reject(
        new Error(`script for ${this.target} is too long (${Buffer.byteLength(command)} bytes); send data on stdin`),
      );
    }
    const connection = this.connections[0]?.connection as unknown as Ssh2Client | null | undefined;
    if (this.closed || !connection) {
      return Promise.reject(new VmConnectionError(`the SSH connection to ${this.target} is closed`, 'connection-lost'));
    }
    this.counters.execRoundTrips += 1;
    const stdin = options.stdin;
    this.counters.bytesUploaded += Buffer.byteLength(command) + (stdin === undefined ? 0 : Buffer.byteLength(stdin));
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<ExecResult>((resolve, reject) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let channel: Ssh2Channel | undefined;
      let exitCode: number | undefined;
      let settled = false;
      const finish = (error: Error | undefined, result?: ExecResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        connection.removeListener('error', onConnectionError);
        connection.removeListener('close', onConnectionClose);
        if (error) reject(error);
        else resolve(result!);
      };
      const onConnectionError = (...args: unknown[]): void =>
        finish(
          new VmConnectionError(
            `the SSH connection to ${this.target} failed during a remote script: ` +
              `${(args[0] as Error)?.message ?? 'error'}`,
            'connection-lost',
            LOST_HINT,
          ),
        );
      const onConnectionClose = (): void =>
        finish(
          new VmConnectionError(
            `the SSH connection to ${this.target} was lost during a remote script`,
            'connection-lost',
            LOST_HINT,
          ),
        );
      const timer = setTimeout(() => {
        try {
          channel?.signal('KILL');
          channel?.close();
        } catch {
          // the channel may already be gone
        }
        finish(
          new VmConnectionError(
            `a remote script on ${this.target} did not finish within ${Math.round(timeoutMs / 1000)}s`,
            'exec-timeout',
            'the VM is overloaded or a command hangs (package download, dpkg/rpm lock held by ' +
              'another process): look at the VM, then rerun',
          ),
        );
      }, timeoutMs);
      connection.on('error', onConnectionError);
      connection.on('close', onConnectionClose);
      try {
        connection.exec(command, (error, opened) => {
          if (error) {
            finish(
              new VmConnectionError(
                `cannot start a remote script on ${this.target}: ${error.message}`,
                'connection-lost',
              ),
            );
            return;
          }
          channel = opened;
          opened.on('data', (chunk) => stdout.push(chunk));
          opened.stderr.on('data', (chunk) => stderr.push(chunk));
          opened.on('exit', (code, signal) => {
            exitCode = code ?? (signal ? 128 : -1);
          });
          opened.on('close', () => {
            if (exitCode === undefined) {
              finish(
                new VmConnectionError(
                  `the remote script on ${this.target} ended without an exit status (connection cut?)`,
                  'connection-lost',
                  LOST_HINT,
                ),
              );
              return;
            }
            finish(undefined, {
              code: exitCode,
              stdout: Buffer.concat(stdout).toString('utf8'),
              stderr: Buffer.concat(stderr).toString('utf8'),
            });
          });
          opened.end(stdin);
        });
      } catch (error) {
        finish(
          new VmConnectionError(
            `cannot start a remote script on ${this.target}: ${(error as Error).message}`,
            'connection-lost',
          ),
        );
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ssh of this.connections) ssh.dispose();
  }
}
