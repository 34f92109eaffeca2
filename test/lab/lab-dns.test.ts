// The lab DNS server held against Node's own resolver (c-ares), pointed at it explicitly.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { Resolver } from 'node:dns/promises';
import { startLabDns, type LabDns } from './dns/index.js';

let dns: LabDns;
let resolver: Resolver;

beforeAll(async () => {
  dns = await startLabDns({
    host: '127.0.0.1',
    port: 0,
    records: { 'eastwest.lab.example': ['10.233.0.1', 'fd00:abc::1'] },
  });
  resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([dns.address]);
});

afterAll(async () => {
  await dns?.stop();
});

describe('lab DNS', () => {
  it('answers A and AAAA for the east-west gateway hostname', async () => {
    expect(dns.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await resolver.resolve4('eastwest.lab.example')).toEqual(['10.233.0.1']);
    expect(await resolver.resolve6('eastwest.lab.example')).toEqual(['fd00:abc::1']);
    expect(await resolver.resolve4('EastWest.Lab.Example.')).toEqual(['10.233.0.1']);
  });

  it('returns NXDOMAIN (ENOTFOUND) for unknown names', async () => {
    await expect(resolver.resolve4('nothing.lab.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('returns NODATA for a known name without records of the asked type', async () => {
    dns.setRecords({ 'eastwest.lab.example': ['10.233.0.1'] });
    await expect(resolver.resolve6('eastwest.lab.example')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('setRecords changes answers (several A records, all returned)', async () => {
    dns.setRecords({ 'eastwest.lab.example': ['10.233.0.1', '10.233.0.2'] });
    expect((await resolver.resolve4('eastwest.lab.example')).sort()).toEqual(['10.233.0.1', '10.233.0.2']);
    dns.setRecords({});
    await expect(resolver.resolve4('eastwest.lab.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(dns.queries).toBeGreaterThanOrEqual(6);
  });

  it('rejects records that are not IP addresses', () => {
    expect(() => dns.setRecords({ 'x.lab.example': ['not-an-ip'] })).toThrow(/not an IP address/);
  });
});
