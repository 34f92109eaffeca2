// Trust on first use pins what it learned for the rest of the run: a second connection to the same
// host:port presenting another host key is refused. Real ssh2 servers on loopback, one after the other
// on the same port, each with its own host key.
import { afterEach, describe, expect, it } from '@jest/globals';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { connectVm } from '../../src/vm/ssh-session.js';

const require = createRequire(import.meta.url);

const ssh2 = require('ssh2') as {
  Server: new (
    config: { hostKeys: string[] },
    listener: (client: SshClient) => void,
  ) => {
    listen(port: number, host: string, cb: () => void): void;
    address(): AddressInfo;
    close(cb?: () => void): void;
  };
  utils: { generateKeyPairSync(type: 'ed25519'): { private: string; public: string } };
};
interface SshClient {
  on(event: 'authentication', cb: (ctx: { accept(): void }) => void): SshClient;
  on(event: 'ready' | 'error' | 'close', cb: () => void): SshClient;
}

const servers: { close(cb?: () => void): void }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((done) => server.close(() => done()))));
});

async function serve(port: number): Promise<number> {
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519').private;
  const server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
    client.on('authentication', (ctx) => ctx.accept()).on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(port, '127.0.0.1', done));
  return server.address().port;
}

const clientKey = ssh2.utils.generateKeyPairSync('ed25519').private;
const vmAt = (port: number) => ({
  name: 'vm1',
  group: 'g',
  ssh: { host: '127.0.0.1', port, user: 'ops' },
  labels: {},
});

describe('trust on first use within one run', () => {
  it('the key learned first is pinned: the same host:port with another key is refused', async () => {
    const port = await serve(0);
    const learnedHostKeys = new Map<string, Buffer>();
    const learned: string[] = [];
    const options = {
      vm: vmAt(port),
      privateKey: clientKey,
      knownHosts: '',
      trustOnFirstUse: true,
      connectAttempts: 1,
      learnedHostKeys,
      onLearnedHostKey: (line: string) => learned.push(line),
    };
    const first = await connectVm(options);
    await first.close();
    const again = await connectVm(options);
    await again.close();
    expect(learned).toHaveLength(2);
    expect(learned[1]).toBe(learned[0]);

    // The VM is "replaced" (or a MITM answers) on the same address during the run.
    await new Promise<void>((done) => servers.pop()!.close(() => done()));
    await serve(port);
    const error = (await connectVm(options).then(
      async (session) => {
        await session.close();
        return new Error('connected to a host whose key changed during the run');
      },
      (e: unknown) => e,
    )) as Error & { kind?: string };
    expect(error.kind).toBe('host-key-mismatch');
    expect(error.message).toMatch(/changed during this run: first SHA256:\S+, now SHA256:\S+/);
  });
});
