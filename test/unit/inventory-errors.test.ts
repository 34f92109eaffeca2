// Malformed inventories: each must fail with an InventoryError naming the field path and the line.
// In each case the line marked `# <-` is where the error must point.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InventoryError, parseInventory } from '../../src/inventory/index.js';
import { BAD_INVENTORIES as CASES, expectedLine } from '../fixtures/bad-inventories.js';

const FIXTURES = path.resolve(process.cwd(), 'test/fixtures/inventory');

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
    expect(error.message).toContain(
      `inventory.yaml:${issue.line}:${issue.column} ${c.path === '' ? '(root)' : c.path}: `,
    );
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
