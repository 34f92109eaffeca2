// The action's entry (src/main.ts) prints its first line before @actions/core or any library is loaded
// (issue 20: start-up to first log line). What it reads must match what @actions/core would read, the
// line must name no secret input, and the entry must stay free of libraries.
import { afterEach, describe, expect, it } from '@jest/globals';
import * as core from '@actions/core';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { firstLine, inputFromEnvironment } from '../../src/action-first-line.js';
import { TOOL_VERSION } from '../../src/version.js';

const saved = { ...process.env };
afterEach(() => {
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});

describe('the first line', () => {
  it('reads an input exactly as @actions/core getInput does', () => {
    for (const value of [undefined, '', 'plan', '  verify \n', 'inventory/vms.yaml', 'groups:\n  - name: a\n', ' \t']) {
      for (const name of ['mode', 'inventory'] as const) {
        const key = `INPUT_${name.toUpperCase()}`;
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
        expect(inputFromEnvironment(name, process.env)).toBe(core.getInput(name));
      }
    }
  });

  it('says the version, the mode (default onboard) and where the inventory comes from', () => {
    expect(firstLine({ INPUT_MODE: 'plan', INPUT_INVENTORY: ' infra/vms.yaml ' })).toBe(
      `istio-vm-onboard ${TOOL_VERSION}: mode plan, inventory infra/vms.yaml`,
    );
    expect(firstLine({ INPUT_INVENTORY: 'version: 1\ngroups: []\n' })).toBe(
      `istio-vm-onboard ${TOOL_VERSION}: mode onboard, inventory inline`,
    );
    expect(firstLine({})).toBe(`istio-vm-onboard ${TOOL_VERSION}: mode onboard, inventory (none given)`);
  });

  it('names no secret input (it is printed before their ::add-mask:: commands)', () => {
    const secrets = {
      INPUT_KUBECONFIG: 'kubeconfig-secret-value',
      'INPUT_SSH-PRIVATE-KEY': 'ssh-key-secret-value',
      'INPUT_SSH-PRIVATE-KEY-PASSPHRASE': 'passphrase-secret-value',
    };
    const line = firstLine({ ...secrets, INPUT_MODE: 'onboard', INPUT_INVENTORY: 'vms.yaml' });
    for (const value of Object.values(secrets)) expect(line).not.toContain(value);
  });
});

/** The modules src/main.ts loads before its first line: its static imports, followed through our own files. */
function staticImports(file: string, seen = new Set<string>()): Set<string> {
  const source = readFileSync(file, 'utf8');
  const specifiers = [...source.matchAll(/^import\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?'([^']+)';/gms)].map((m) => m[1]!);
  for (const specifier of specifiers) {
    if (!specifier.startsWith('.')) {
      seen.add(specifier);
      continue;
    }
    const target = path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts'));
    if (seen.has(target)) continue;
    seen.add(target);
    staticImports(target, seen);
  }
  return seen;
}

describe('the action entry', () => {
  it('loads only Node modules and our own before the first line (no @actions/*, no library)', () => {
    const loaded = [...staticImports(path.resolve('src/main.ts'))];
    expect(loaded).toContain(path.resolve('src/action-first-line.ts'));
    expect(loaded.filter((specifier) => !specifier.startsWith('/') && !specifier.startsWith('node:'))).toEqual([]);
  });
});
