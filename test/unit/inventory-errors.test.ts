// Malformed inventories: each must fail with an InventoryError naming the field path and the line.
// In each case the line marked `# <-` is where the error must point.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InventoryError, parseInventory } from '../../src/inventory/index.js';

const FIXTURES = path.resolve(process.cwd(), 'test/fixtures/inventory');

/** A valid group header; `vmLines` are the `vms:` entries, already indented by 6. */
const group = (vmLines: string, extra = ''): string =>
  `groups:\n  - name: pay\n    namespace: shop\n${extra}    vms:\n${vmLines}`;
const vm = (extra = ''): string => `      - name: pay-1\n        address: 10.0.0.1\n        user: ops\n${extra}`;

interface Case {
  name: string;
  text: string;
  path: string;
  /** Substring of the expected message. */
  message?: RegExp;
  /** Line, when the text has no `# <-` marker. */
  line?: number;
}

const CASES: Case[] = [
  // --- YAML / document level
  { name: 'YAML syntax error', text: 'groups:\n  - name: pay\n   namespace: [x\n', path: '', message: /not valid YAML/, line: 3 },
  { name: 'duplicate YAML key', text: 'groups: []\ngroups: [] # <-\n', path: '', message: /unique/ },
  { name: 'empty document', text: '', path: '', message: /empty/, line: 1 },
  { name: 'top level is a list', text: '- a # <-\n', path: '', message: /must be a mapping/ },
  { name: 'unknown top-level key', text: `grops: [] # <-\n${group(vm())}`, path: 'grops', message: /did you mean 'groups'/ },
  { name: 'groups missing', text: 'mesh: {} # <-\n', path: 'groups', message: /is required/ },
  { name: 'groups empty', text: 'groups: [] # <-\n', path: 'groups', message: /at least one/ },
  { name: 'groups not a list', text: 'groups: pay # <-\n', path: 'groups', message: /must be a list/ },
  { name: 'version 2', text: `version: 2 # <-\n${group(vm())}`, path: 'version', message: /only inventory format version/ },
  // --- mesh
  { name: 'mesh unknown key', text: `mesh:\n  revison: x # <-\n${group(vm())}`, path: 'mesh.revison', message: /did you mean 'revision'/ },
  { name: 'mesh revision uppercase', text: `mesh:\n  revision: Rev1 # <-\n${group(vm())}`, path: 'mesh.revision', message: /DNS-1123 label/ },
  { name: 'istioNamespace with underscore', text: `mesh:\n  istioNamespace: istio_system # <-\n${group(vm())}`, path: 'mesh.istioNamespace', message: /istio-system/ },
  { name: 'east-west address not a host', text: `mesh:\n  eastWestGateway:\n    address: "gw!.example" # <-\n${group(vm())}`, path: 'mesh.eastWestGateway.address', message: /neither an IP address nor a DNS host name/ },
  { name: 'clusterID empty', text: `mesh:\n  clusterID: "" # <-\n${group(vm())}`, path: 'mesh.clusterID', message: /must not be empty/ },
  // --- defaults
  { name: 'defaults port string', text: `defaults:\n  port: "22" # <-\n${group(vm())}`, path: 'defaults.port', message: /1\.\.65535/ },
  { name: 'defaults bastion without host', text: `defaults:\n  bastion: # <-\n    user: jump\n${group(vm())}`, path: 'defaults.bastion.host', message: /add 'host:'/ },
  { name: 'defaults label value with space', text: `defaults:\n  labels:\n    env: "pro d" # <-\n${group(vm())}`, path: 'defaults.labels.env', message: /label value/ },
  // --- group
  { name: 'group name missing', text: 'groups:\n  - namespace: shop # <-\n    vms:\n' + vm(), path: 'groups[0].name', message: /add 'name:'/ },
  { name: 'group namespace missing', text: 'groups:\n  - name: pay # <-\n    vms:\n' + vm(), path: 'groups[0].namespace', message: /is required/ },
  { name: 'group vms missing', text: 'groups:\n  - name: pay # <-\n    namespace: shop\n', path: 'groups[0].vms', message: /is required/ },
  { name: 'group vms empty', text: 'groups:\n  - name: pay\n    namespace: shop\n    vms: [] # <-\n', path: 'groups[0].vms', message: /at least one/ },
  { name: 'group name uppercase', text: 'groups:\n  - name: Pay # <-\n    namespace: shop\n    vms:\n' + vm(), path: 'groups[0].name', message: /e\.g\. pay/ },
  { name: 'group name too long', text: `groups:\n  - name: ${'a'.repeat(64)} # <-\n    namespace: shop\n    vms:\n${vm()}`, path: 'groups[0].name', message: /at most 63/ },
  { name: 'namespace with dot', text: 'groups:\n  - name: pay\n    namespace: shop.eu # <-\n    vms:\n' + vm(), path: 'groups[0].namespace', message: /DNS-1123 label/ },
  { name: 'serviceAccount with underscore', text: group(vm(), '    serviceAccount: pay_sa # <-\n'), path: 'groups[0].serviceAccount', message: /subdomain/ },
  { name: 'registration typo', text: group(vm(), '    registration: automatic # <-\n'), path: 'groups[0].registration', message: /one of auto, static/ },
  { name: 'port number too big', text: group(vm(), '    ports:\n      http: 80800 # <-\n'), path: 'groups[0].ports.http', message: /1\.\.65535/ },
  { name: 'port number zero', text: group(vm(), '    ports:\n      http: 0 # <-\n'), path: 'groups[0].ports.http', message: /1\.\.65535/ },
  { name: 'port name invalid', text: group(vm(), '    ports:\n      HTTP_API: 8080 # <-\n'), path: 'groups[0].ports.HTTP_API', message: /port name/ },
  { name: 'label key with two slashes', text: group(vm(), '    labels:\n      a/b/c: x # <-\n'), path: 'groups[0].labels["a/b/c"]', message: /at most one '\/'/ },
  { name: 'label key prefix uppercase', text: group(vm(), '    labels:\n      Example.com/app: x # <-\n'), path: 'groups[0].labels["Example.com/app"]', message: /prefix/ },
  { name: 'label value too long', text: group(vm(), `    labels:\n      app: ${'v'.repeat(64)} # <-\n`), path: 'groups[0].labels.app', message: /at most 63/ },
  { name: 'label value not a string', text: group(vm(), '    labels:\n      version: 3 # <-\n'), path: 'groups[0].labels.version', message: /must be a string/ },
  { name: 'annotation value not a string', text: group(vm(), '    annotations:\n      proxy.istio.io/config: # <-\n        holdApplicationUntilProxyStarts: true\n'), path: 'groups[0].annotations["proxy.istio.io/config"]', message: /must be a string/ },
  { name: 'annotation key invalid', text: group(vm(), '    annotations:\n      "bad key": x # <-\n'), path: 'groups[0].annotations["bad key"]', message: /annotation key/ },
  { name: 'probe unknown field', text: group(vm(), '    probe:\n      httpGet:\n        port: 8080\n        pth: /ready # <-\n'), path: 'groups[0].probe.httpGet.pth', message: /did you mean 'path'/ },
  { name: 'probe two methods', text: group(vm(), '    probe:\n      httpGet: {port: 8080}\n      tcpSocket: {port: 8080} # <-\n'), path: 'groups[0].probe.tcpSocket', message: /exactly one check/ },
  { name: 'probe httpGet without port', text: group(vm(), '    probe:\n      httpGet: # <-\n        path: /ready\n'), path: 'groups[0].probe.httpGet.port', message: /add 'port:'/ },
  { name: 'service as string', text: group(vm(), '    service: yes # <-\n'), path: 'groups[0].service', message: /true, false, or a mapping/ },
  { name: 'service unknown field', text: group(vm(), '    ports: {http: 80}\n    service:\n      nmae: pay # <-\n'), path: 'groups[0].service.nmae', message: /did you mean 'name'/ },
  { name: 'service without ports', text: group(vm(), '    service: true # <-\n'), path: 'groups[0].service', message: /needs ports/ },
  { name: 'group defaults unknown field', text: group(vm(), '    defaults:\n      usr: ops # <-\n'), path: 'groups[0].defaults.usr', message: /did you mean 'user'/ },
  { name: 'duplicate group', text: `${group(vm())}  - name: pay # <-\n    namespace: shop\n    vms:\n      - name: pay-2\n        address: 10.0.0.2\n        user: ops\n`, path: 'groups[1].name', message: /duplicate group 'pay'/ },
  // --- VM
  { name: 'vm address missing', text: group('      - name: pay-1 # <-\n        user: ops\n'), path: 'groups[0].vms[0].address', message: /add 'address:'/ },
  { name: 'vm name missing', text: group('      - address: 10.0.0.1 # <-\n        user: ops\n'), path: 'groups[0].vms[0].name', message: /is required/ },
  { name: 'vm port too big', text: group(vm('        port: 70000 # <-\n')), path: 'groups[0].vms[0].port', message: /must be an integer 1\.\.65535/ },
  { name: 'vm port negative', text: group(vm('        port: -1 # <-\n')), path: 'groups[0].vms[0].port', message: /1\.\.65535/ },
  { name: 'vm port fractional', text: group(vm('        port: 22.5 # <-\n')), path: 'groups[0].vms[0].port', message: /1\.\.65535/ },
  { name: 'vm unknown field', text: group(vm('        ip: 10.0.0.1 # <-\n')), path: 'groups[0].vms[0].ip', message: /unknown field 'ip'/ },
  { name: 'vm name with underscore', text: group('      - name: pay_1 # <-\n        address: 10.0.0.1\n        user: ops\n'), path: 'groups[0].vms[0].name', message: /DNS-1123 subdomain/ },
  { name: 'vm address invalid', text: group('      - name: pay-1\n        address: "10.0.0.256" # <-\n        user: ops\n'), path: 'groups[0].vms[0].address', message: /not a valid IPv4/ },
  { name: 'vm address with scheme', text: group('      - name: pay-1\n        address: ssh://host # <-\n        user: ops\n'), path: 'groups[0].vms[0].address', message: /neither an IP/ },
  { name: 'vm internalIP hostname', text: group(vm('        internalIP: pay.internal # <-\n')), path: 'groups[0].vms[0].internalIP', message: /not an IPv4 or IPv6 address/ },
  { name: 'vm externalIP invalid', text: group(vm('        externalIP: 300.1.1.1 # <-\n')), path: 'groups[0].vms[0].externalIP', message: /not an IPv4 or IPv6/ },
  { name: 'vm without user', text: group('      - name: pay-1 # <-\n        address: 10.0.0.1\n'), path: 'groups[0].vms[0].user', message: /no SSH user/ },
  { name: 'vm user empty', text: group('      - name: pay-1\n        address: 10.0.0.1\n        user: "" # <-\n'), path: 'groups[0].vms[0].user', message: /must not be empty/ },
  { name: 'vm bastion port string', text: group(vm('        bastion:\n          host: jump.example.com\n          port: ssh # <-\n')), path: 'groups[0].vms[0].bastion.port', message: /1\.\.65535/ },
  { name: 'vm bastion bad host', text: group(vm('        bastion:\n          host: "jump host" # <-\n')), path: 'groups[0].vms[0].bastion.host', message: /neither an IP/ },
  { name: 'vm label key invalid', text: group(vm('        labels:\n          "-zone": a # <-\n')), path: 'groups[0].vms[0].labels["-zone"]', message: /label key/ },
  { name: 'vm is a string', text: group('      - pay-1 # <-\n'), path: 'groups[0].vms[0]', message: /must be a mapping/ },
  {
    name: 'duplicate VM name across groups',
    text: `${group(vm())}  - name: other\n    namespace: shop\n    vms:\n      - name: pay-1 # <-\n        address: 10.0.0.9\n        user: ops\n`,
    path: 'groups[1].vms[0].name',
    message: /duplicate VM name 'pay-1' \(also groups\[0\]\.vms\[0\]\)/,
  },
  {
    name: 'duplicate SSH address:port',
    text: group(`${vm()}      - name: pay-2\n        address: 10.0.0.1 # <-\n        user: ops\n`),
    path: 'groups[0].vms[1].address',
    message: /duplicate SSH address 10\.0\.0\.1:22/,
  },
  {
    name: 'duplicate internalIP',
    text: group(`${vm('        internalIP: 10.1.0.1\n')}      - name: pay-2\n        address: 10.0.0.2\n        user: ops\n        internalIP: 10.1.0.1 # <-\n`),
    path: 'groups[0].vms[1].internalIP',
    message: /duplicate internalIP/,
  },
];

function expectedLine(c: Case): number {
  if (c.line !== undefined) return c.line;
  const index = c.text.split('\n').findIndex((l) => l.includes('# <-'));
  if (index < 0) throw new Error(`case ${c.name} has no marker`);
  return index + 1;
}

describe('malformed inventories', () => {
  it('has at least 40 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    let caught: unknown;
    try {
      parseInventory(c.text, 'inventory.yaml');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InventoryError);
    const error = caught as InventoryError;
    const issue = error.issues.find((i) => i.path === c.path);
    if (!issue) throw new Error(`no issue at ${c.path}; got:\n${error.message}`);
    expect(issue.line).toBe(expectedLine(c));
    if (c.message) expect(issue.message).toMatch(c.message);
    expect(error.message).toContain(`inventory.yaml:${issue.line}:${issue.column} ${c.path === '' ? '(root)' : c.path}: `);
  });
});

describe('fixture files', () => {
  const load = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');
  it.each([
    ['bad-port.yaml', 'groups[0].vms[0].port', 8, /must be an integer 1\.\.65535/],
    ['bad-unknown-key.json', 'groups[0].vms[0].adress', 7, /did you mean 'address'/],
    ['bad-duplicates.yaml', 'groups[1].vms[0].name', 13, /duplicate VM name/],
    ['bad-duplicates.yaml', 'groups[1].vms[0].address', 14, /duplicate SSH address/],
    ['bad-duplicates.yaml', 'groups[1].vms[0].internalIP', 15, /duplicate internalIP/],
  ] as const)('%s → %s at line %d', (file, fieldPath, line, message) => {
    try {
      parseInventory(load(file), file);
      throw new Error('expected an InventoryError');
    } catch (error) {
      expect(error).toBeInstanceOf(InventoryError);
      const issue = (error as InventoryError).issues.find((i) => i.path === fieldPath);
      expect(issue).toBeDefined();
      expect(issue!.line).toBe(line);
      expect(issue!.message).toMatch(message);
    }
  });
});
