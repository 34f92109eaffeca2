// The inventory model: defaults, inline vs file input, and the published schema.
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import {
  INVENTORY_SCHEMA,
  InventoryError,
  isInlineInventory,
  listVms,
  loadInventory,
  parseInventory,
} from '../../src/inventory/index.js';
import { INVENTORY_TYPES_FILE, inventoryTypesSource } from '../../scripts/inventory-types.js';

const FIXTURES = path.resolve(process.cwd(), 'test/fixtures/inventory');

describe('parseInventory: model and defaults', () => {
  const inventory = parseInventory(readFileSync(path.join(FIXTURES, 'valid-full.yaml'), 'utf8'), 'valid-full.yaml');

  it('reads the mesh section with defaults', () => {
    expect(inventory.source).toBe('valid-full.yaml');
    expect(inventory.mesh).toEqual({
      revision: 'rev-1',
      istioNamespace: 'istio-system',
      clusterID: 'cluster-east',
      eastWestGateway: { service: 'istio-eastwestgateway', namespace: 'istio-system', address: '192.0.2.10' },
    });
  });

  it('applies group defaults over file defaults and VM fields over both', () => {
    const [rabbit1, rabbit2, pay1] = listVms(inventory).map((e) => e.vm);
    expect(rabbit1).toEqual({
      name: 'rabbitmq-1',
      group: 'rabbitmq',
      ssh: { host: '10.0.1.11', port: 22, user: 'rabbit' },
      bastion: { host: 'bastion.example.com', port: 22, user: 'jump' },
      internalIP: '10.0.1.11',
      labels: { env: 'prod' },
      line: 42,
    });
    expect(rabbit2!.ssh).toEqual({ host: 'rabbitmq-2.vms.example.com', port: 2222, user: 'rabbit' });
    expect(rabbit2!.labels).toEqual({ env: 'prod', zone: 'b' });
    expect(pay1).toMatchObject({ ssh: { host: 'fd00:10::5', port: 22, user: 'ops' }, externalIP: '203.0.113.5' });
    expect(pay1!.bastion).toBeUndefined();
  });

  it('fills group defaults: serviceAccount, network, registration, service', () => {
    const [rabbit, pay] = inventory.groups;
    expect(rabbit).toMatchObject({
      serviceAccount: 'rabbitmq-vm',
      network: 'vm-network',
      registration: 'static',
      ports: { amqp: 5672, 'http-mgmt': 15672 },
      service: { name: 'rabbitmq', ports: { amqp: 5672, 'http-mgmt': 15672 } },
      probe: { tcpSocket: { port: 5672 }, periodSeconds: 5 },
      line: 16,
    });
    expect(rabbit!.annotations['proxy.istio.io/config']).toContain('ISTIO_META_DNS_AUTO_ALLOCATE');
    expect(pay).toMatchObject({
      serviceAccount: 'pegasus-pay',
      network: '',
      registration: 'auto',
      labels: { app: 'pegasus-pay' },
      annotations: {},
      service: { name: 'pay', ports: { http: 8080 } },
    });
  });

  it('reads JSON as well as YAML', () => {
    const json = JSON.stringify({
      defaults: { user: 'ops' },
      groups: [{ name: 'a', namespace: 'b', vms: [{ name: 'v', address: 'h.example' }] }],
    });
    const inv = parseInventory(json, 'inv.json');
    expect(inv.groups[0]!.vms[0]!.ssh).toEqual({ host: 'h.example', port: 22, user: 'ops' });
    expect(inv.mesh.eastWestGateway.namespace).toBe('istio-system');
  });

  it('eastWestGateway.namespace defaults to the istio namespace', () => {
    const inv = parseInventory(
      'mesh: {istioNamespace: mesh}\ngroups: [{name: a, namespace: b, vms: [{name: v, address: h, user: u}]}]\n',
      'x',
    );
    expect(inv.mesh.eastWestGateway).toEqual({ service: 'istio-eastwestgateway', namespace: 'mesh' });
  });

  it('lists all problems at once, sorted by line', () => {
    const text =
      'groups:\n  - name: A\n    namespace: b\n    vms:\n      - name: v\n        address: h\n        port: 0\n';
    try {
      parseInventory(text, 'inv.yaml');
      throw new Error('expected failure');
    } catch (error) {
      expect(error).toBeInstanceOf(InventoryError);
      const issues = (error as InventoryError).issues;
      expect(issues.map((i) => [i.path, i.line])).toEqual([
        ['groups[0].name', 2],
        ['groups[0].vms[0].port', 7],
      ]);
    }
  });
});

describe('loadInventory', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'inv-'));
  writeFileSync(
    path.join(dir, 'inv.yaml'),
    'groups: [{name: a, namespace: b, vms: [{name: v, address: h, user: u}]}]\n',
  );

  it('treats text with a newline, or starting with { or groups:, as inline', () => {
    expect(isInlineInventory('inv.yaml')).toBe(false);
    expect(isInlineInventory('./dir/inventory.yaml')).toBe(false);
    expect(isInlineInventory('groups: []')).toBe(true);
    expect(isInlineInventory('  {"groups": []}')).toBe(true);
    expect(isInlineInventory('mesh: {}\ngroups: []')).toBe(true);
  });

  it('reads a file relative to cwd and names it in the model', async () => {
    const inv = await loadInventory('inv.yaml', dir);
    expect(inv.source).toBe('inv.yaml');
    expect(inv.groups[0]!.name).toBe('a');
  });

  it('parses inline YAML with source <inline>', async () => {
    const inv = await loadInventory(
      'groups:\n  - {name: a, namespace: b, vms: [{name: v, address: h, user: u}]}\n',
      dir,
    );
    expect(inv.source).toBe('<inline>');
  });

  it('reports a missing file clearly', async () => {
    await expect(loadInventory('missing.yaml', dir)).rejects.toThrow(
      /cannot read inventory file .*missing\.yaml \(no such file\)/,
    );
  });
});

describe('inventory.schema.json', () => {
  const published = JSON.parse(readFileSync(path.resolve(process.cwd(), 'inventory.schema.json'), 'utf8')) as unknown;

  it('is the schema the parser uses, and the document types are generated from it (`npm run inventory-types`)', async () => {
    expect(published).toEqual(INVENTORY_SCHEMA);
    const generated = readFileSync(path.resolve(process.cwd(), INVENTORY_TYPES_FILE), 'utf8');
    expect(generated).toBe(await inventoryTypesSource(published as Parameters<typeof inventoryTypesSource>[0]));
  });

  it('has a type generator that refuses what it does not understand instead of widening the type', async () => {
    const schema = { type: 'object', properties: { a: { allOf: [{ type: 'string' }] } }, additionalProperties: false };
    await expect(inventoryTypesSource(schema)).rejects.toThrow(
      '#/properties/a: the type generator does not understand the keyword allOf',
    );
    const changed = structuredClone(published) as { definitions: { port: { type: string } } };
    changed.definitions.port.type = 'string';
    expect(await inventoryTypesSource(changed)).toContain('export type Port = string;');
  });

  it('compiles under ajv strict mode and forbids unknown fields everywhere', () => {
    const ajv = new Ajv({ strict: true, strictTypes: false, allowUnionTypes: true });
    expect(() => ajv.compile(published as object)).not.toThrow();
    const walk = (node: unknown, at: string): void => {
      if (node === null || typeof node !== 'object') return;
      const obj = node as Record<string, unknown>;
      if (obj.type === 'object' && obj.properties) expect([at, obj.additionalProperties]).toEqual([at, false]);
      for (const [k, v] of Object.entries(obj)) walk(v, `${at}/${k}`);
    };
    walk(published, '#');
  });

  it('describes every property so editors can show help', () => {
    const missing: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (node === null || typeof node !== 'object') return;
      const obj = node as Record<string, unknown>;
      if (obj.properties) {
        for (const [name, prop] of Object.entries(obj.properties as Record<string, Record<string, unknown>>)) {
          if (typeof prop.description !== 'string' && !prop.$ref) missing.push(`${at}/${name}`);
        }
      }
      for (const [k, v] of Object.entries(obj)) walk(v, `${at}/${k}`);
    };
    walk(published, '#');
    expect(missing).toEqual([]);
  });
});
