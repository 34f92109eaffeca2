// The report of a mixed run (pass, fail, rollback, skipped): valid against report.schema.json, and the
// job summary, the terminal table and the outputs say what happened.
import { describe, expect, it } from '@jest/globals';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { computeOutputs, writeReport } from '../../src/report/outputs.js';
import { renderJobSummary } from '../../src/report/summary.js';
import { renderTerminalTable } from '../../src/report/table.js';
import { inventoryOf, makeWorld, run } from './rollout-fakes.js';

async function mixedRun() {
  const world = makeWorld();
  await run(world, inventoryOf([4]));
  world.failingUntilRollback.add('vm-0-1');
  world.failingConnect.add('vm-0-2');
  const changed = inventoryOf([4]);
  changed.groups[0]!.labels = { tier: 'new' };
  return run(world, changed, { 'max-unavailable': '100%' });
}

describe('the run report', () => {
  it('validates against report.schema.json', async () => {
    const report = await mixedRun();
    const ajv = new Ajv.default({ allErrors: true, strict: true });
    addFormats.default(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync('report.schema.json', 'utf8')));
    expect(validate(JSON.parse(JSON.stringify(report))) ? [] : validate.errors).toEqual([]);
    expect(report.vms.map((vm) => vm.outcome).sort()).toEqual(['failed', 'rolled-back', 'updated', 'updated']);
  });

  it('renders a job summary with a row per VM, the failures with hints, and the cluster objects', async () => {
    const summary = renderJobSummary(await mixedRun());
    expect(summary).toContain('## istio-vm-onboard · onboard · ❌ failed');
    expect(summary).toContain('4 VM(s): **2 ok**, **2 failed**');
    expect(summary).toMatch(/\| `vm-0-1` \| g0 \| 10\.0\.0\.11:22 \| ↩️ rolled-back \| ✅ \| ❌ \|/);
    expect(summary).toMatch(/\| `vm-0-2` \| g0 \| 10\.0\.0\.12:22 \| ❌ failed \|/);
    expect(summary).toContain('#### `vm-0-1` (g0, 10.0.0.11:22) — rolled-back');
    expect(summary).toContain('- **sidecar-ready**: bad');
    expect(summary).toContain('  - what to do: fix it');
    expect(summary).toContain('- **connect**: connection refused by 10.0.0.12:22');
    expect(summary).toContain('| WorkloadGroup | ns0 | g0 | configured |');
  });

  it('folds passing VMs away when there are many', async () => {
    const report = await run(makeWorld(), inventoryOf([30]), { 'max-unavailable': '100%', concurrency: '30' });
    const summary = renderJobSummary(report);
    expect(summary).toContain('<details><summary>30 VM(s) passed</summary>');
  });

  it('prints the same facts as a terminal table and as outputs', async () => {
    const report = await mixedRun();
    const table = renderTerminalTable(report);
    expect(table.split('\n')[0]).toMatch(/^VM\s+GROUP\s+ADDRESS\s+RESULT\s+SIDECAR-RUNNING\s+SIDECAR-READY\s+TIME$/);
    expect(table).toContain('vm-0-1: sidecar-ready: bad\n  what to do: fix it');
    expect(table).toMatch(/FAILED: 2 ok, 2 failed/);
    const outputs = computeOutputs(report, '/tmp/report.json');
    expect(outputs.onboarded.split(',').sort()).toEqual(['vm-0-0', 'vm-0-3']);
    expect(outputs.failed.split(',').sort()).toEqual(['vm-0-1', 'vm-0-2']);
    expect(JSON.parse(outputs.result)).toMatchObject({ ok: false, totals: { failed: 2 } });
  });
});

describe('the report file', () => {
  it('is readable by its owner only (0600), also when a world-readable file was there before', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ivo report '));
    try {
      const world = makeWorld();
      const report = await run(world, inventoryOf([1]));
      const fresh = path.join(dir, 'fresh', 'report.json');
      await writeReport(report, fresh);
      expect(statSync(fresh).mode & 0o777).toBe(0o600);
      const existing = path.join(dir, 'existing.json');
      writeFileSync(existing, '{}', { mode: 0o644 });
      await writeReport(report, existing);
      expect(statSync(existing).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(existing, 'utf8')).vms).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
