// Property tests for the inventory parser: generated valid inventories parse to the expected model;
// random mutations either still parse or fail with an InventoryError that has a path — never a crash.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { InventoryError, parseInventory, type Inventory } from '../../src/inventory/index.js';

const dnsLabel = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
const labelValue = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9_.-]{0,8}[A-Za-z0-9])?$/);
const labels = fc.dictionary(fc.stringMatching(/^[a-z]([a-z0-9.-]{0,6}[a-z0-9])?$/), labelValue, { maxKeys: 3 });
const port = fc.integer({ min: 1, max: 65535 });
const user = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/);

interface RawVm {
  name: string;
  address: string;
  port?: number;
  user?: string;
  internalIP?: string;
  labels?: Record<string, string>;
}
interface RawGroup {
  name: string;
  namespace: string;
  serviceAccount?: string;
  ports?: Record<string, number>;
  registration?: 'auto' | 'static';
  labels?: Record<string, string>;
  defaults?: { user?: string; port?: number };
  vms: RawVm[];
}
interface RawInv {
  defaults?: { user?: string; port?: number };
  groups: RawGroup[];
}

/** Valid inventories: unique VM names, addresses and internal IPs by construction (indices). */
const validInventory: fc.Arbitrary<RawInv> = fc
  .record({
    fileUser: fc.option(user, { nil: undefined }),
    filePort: fc.option(port, { nil: undefined }),
    groups: fc.array(
      fc.record({
        name: dnsLabel,
        namespace: dnsLabel,
        serviceAccount: fc.option(dnsLabel, { nil: undefined }),
        ports: fc.option(fc.dictionary(dnsLabel, port, { maxKeys: 3 }), { nil: undefined }),
        registration: fc.option(fc.constantFrom('auto' as const, 'static' as const), { nil: undefined }),
        labels: fc.option(labels, { nil: undefined }),
        groupUser: fc.option(user, { nil: undefined }),
        groupPort: fc.option(port, { nil: undefined }),
        vms: fc.array(
          fc.record({
            port: fc.option(port, { nil: undefined }),
            user: fc.option(user, { nil: undefined }),
            withIP: fc.boolean(),
            labels: fc.option(labels, { nil: undefined }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .map(({ fileUser, filePort, groups }) => {
    let n = 0;
    const out: RawInv = { groups: [] };
    if (fileUser !== undefined || filePort !== undefined)
      out.defaults = { ...(fileUser ? { user: fileUser } : {}), ...(filePort ? { port: filePort } : {}) };
    groups.forEach((g, gi) => {
      const group: RawGroup = { name: `${g.name}-${gi}`, namespace: g.namespace, vms: [] };
      if (g.serviceAccount) group.serviceAccount = g.serviceAccount;
      if (g.ports) group.ports = g.ports;
      if (g.registration) group.registration = g.registration;
      if (g.labels) group.labels = g.labels;
      if (g.groupUser || g.groupPort)
        group.defaults = {
          ...(g.groupUser ? { user: g.groupUser } : {}),
          ...(g.groupPort ? { port: g.groupPort } : {}),
        };
      for (const v of g.vms) {
        n++;
        const vm: RawVm = { name: `vm-${n}`, address: `10.0.${Math.floor(n / 250)}.${(n % 250) + 1}` };
        if (v.port) vm.port = v.port;
        // every VM needs a user somewhere
        if (v.user || (!fileUser && !g.groupUser)) vm.user = v.user ?? 'ops';
        if (v.withIP) vm.internalIP = `10.1.${Math.floor(n / 250)}.${(n % 250) + 1}`;
        if (v.labels) vm.labels = v.labels;
        group.vms.push(vm);
      }
      out.groups.push(group);
    });
    return out;
  });

function expectedModel(raw: RawInv): Inventory['groups'] {
  return raw.groups.map((g) => ({
    name: g.name,
    namespace: g.namespace,
    serviceAccount: g.serviceAccount ?? g.name,
    labels: g.labels ?? {},
    annotations: {},
    ports: g.ports ?? {},
    network: '',
    registration: g.registration ?? 'auto',
    vms: g.vms.map((v) => ({
      name: v.name,
      group: g.name,
      ssh: {
        host: v.address,
        port: v.port ?? g.defaults?.port ?? raw.defaults?.port ?? 22,
        user: (v.user ?? g.defaults?.user ?? raw.defaults?.user)!,
      },
      labels: v.labels ?? {},
      ...(v.internalIP ? { internalIP: v.internalIP } : {}),
    })),
  }));
}

function stripLines(inv: Inventory): unknown {
  return inv.groups.map(({ line: _l, vms, ...g }) => ({ ...g, vms: vms.map(({ line: _v, ...vm }) => vm) }));
}

describe('inventory parser properties', () => {
  it('parses every generated valid inventory (YAML and JSON) to the expected model', () => {
    fc.assert(
      fc.property(validInventory, fc.boolean(), (raw, asJson) => {
        const text = asJson ? JSON.stringify(raw, null, 2) : stringify(raw);
        const inv = parseInventory(text, 'gen.yaml');
        expect(stripLines(inv)).toEqual(expectedModel(raw));
        for (const g of inv.groups) for (const vm of g.vms) expect(vm.line).toBeGreaterThan(0);
      }),
      { numRuns: 150 },
    );
  });

  const junk = fc.oneof(
    fc.constant(null),
    fc.integer({ min: -5, max: 100000 }),
    fc.string({ maxLength: 6 }),
    fc.boolean(),
    fc.constant([]),
    fc.constant({}),
    fc.constant({ x: 1 }),
    fc.constant('Bad_Name'),
    fc.constant('10.0.0.1'),
  );

  /** Every path (list of keys/indices) inside a JSON value. */
  function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    const out: (string | number)[][] = [prefix];
    if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
    else if (value && typeof value === 'object')
      for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
    return out;
  }

  function mutate(raw: RawInv, pick: number, kind: number, value: unknown): unknown {
    const copy = structuredClone(raw) as unknown;
    const all = paths(copy).filter((p) => p.length > 0);
    const target = all[pick % all.length]!;
    let parent = copy as Record<string | number, unknown>;
    for (const seg of target.slice(0, -1)) parent = parent[seg] as Record<string | number, unknown>;
    const last = target[target.length - 1]!;
    if (kind === 0)
      parent[last] = value; // replace with junk
    else if (kind === 1) {
      // delete
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (kind === 2 && parent && typeof parent === 'object' && !Array.isArray(parent))
      parent['unknownField'] = value; // add unknown key
    else if (kind === 3 && Array.isArray(parent)) parent.push(structuredClone(parent[0])); // duplicate an entry
    return copy;
  }

  it('mutated inventories parse or fail with InventoryError carrying paths and lines — never anything else', () => {
    fc.assert(
      fc.property(
        validInventory,
        fc.nat(),
        fc.integer({ min: 0, max: 3 }),
        junk,
        fc.boolean(),
        (raw, pick, kind, value, asJson) => {
          const mutated = mutate(raw, pick, kind, value);
          const text = asJson ? JSON.stringify(mutated, null, 2) : stringify(mutated);
          try {
            parseInventory(text, 'mut.yaml');
          } catch (error) {
            if (!(error instanceof InventoryError)) throw error;
            expect(error.issues.length).toBeGreaterThan(0);
            for (const issue of error.issues) {
              expect(typeof issue.path).toBe('string');
              expect(issue.message.length).toBeGreaterThan(0);
              expect(issue.line).toBeGreaterThanOrEqual(1);
            }
            expect(error.message).toContain('mut.yaml:');
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('arbitrary text never crashes the parser', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parseInventory(text, 'x.yaml');
        } catch (error) {
          if (!(error instanceof InventoryError)) throw error;
        }
      }),
      { numRuns: 300 },
    );
  });
});
