// The orchestrator against fake ports: what it does with each VM, in which order, and when it stops.
import { describe, expect, it } from '@jest/globals';
import type { RunLogger } from '../../src/rollout/ports.js';
import { fakes, inventoryOf, makeWorld, run, silent } from './rollout-fakes.js';
import { makeCa, makeWorkloadCert, TEST_EPOCH_MS } from './verify-fixtures.js';

describe('runRollout', () => {
  it('onboards every VM, applies the group objects first, and renders files istioctl-style', async () => {
    const world = makeWorld();
    const report = await run(world, inventoryOf([3]));
    expect(report.totals).toMatchObject({ vms: 3, succeeded: 3, failed: 0 });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['installed', 'installed', 'installed']);
    // the group's objects come before any change on a VM (early logins change nothing)
    expect(world.events.filter((e) => !e.startsWith('connect'))[0]).toBe('applyGroup g0');
    const files = world.applied.get('vm-0-1')!.files;
    expect(files.clusterEnv).toContain("ISTIO_SVC_IP='10.0.0.11'");
    expect(files.clusterEnv).toContain("ISTIO_META_AUTO_REGISTER_GROUP='g0'");
    expect(files.hosts).toBe('10.0.9.1 istiod.istio-system.svc\n');
    expect(files.token).toBe('token-value-123');
    expect(report.vms[0]?.tokenExpiresAt).toBe('2030-01-01T00:00:00.000Z');
    expect(report.cluster?.apiRequests).toBe(7);
  });

  it('reports progress as VMs start and finish', async () => {
    const seen: string[] = [];
    await run(
      makeWorld(),
      inventoryOf([2]),
      { concurrency: '1', 'max-unavailable': '100%' },
      {
        progress: (state) => seen.push(`${state.done}/${state.total} [${state.inFlight.join(',')}]`),
      },
    );
    expect(seen).toEqual(['0/2 [vm-0-0]', '1/2 []', '1/2 [vm-0-1]', '2/2 []']);
  });

  it('reports unchanged on a rerun with nothing new', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([2]));
    const second = await run(world, inventoryOf([2]));
    expect(second.vms.map((vm) => vm.outcome)).toEqual(['unchanged', 'unchanged']);
    expect(second.vms.every((vm) => !vm.restarted)).toBe(true);
  });

  it('restarts an installed, unchanged sidecar whose WorkloadEntry is gone, so it registers again', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([2]));
    world.workloadEntries = new Set(['10.0.0.10']); // vm-0-1's entry (10.0.0.11) was deleted
    const second = await run(world, inventoryOf([2]));
    expect(world.applied.get('vm-0-0')!.restart).toBeUndefined();
    expect(world.applied.get('vm-0-1')!.restart).toBe('always');
    expect(second.vms.map((vm) => vm.outcome)).toEqual(['unchanged', 'unchanged']);
    // Not for a first install (it starts anyway) nor for static registration (we apply the entry).
    const fresh = makeWorld();
    fresh.workloadEntries = new Set();
    await run(fresh, inventoryOf([1]));
    await run(fresh, inventoryOf([1], 'static'));
    expect(fresh.applied.get('vm-0-0')!.restart).toBeUndefined();
  });

  it('re-bootstraps an installed VM whose certificate in /etc/certs expired (by its clock); plan shows it first', async () => {
    const ca = makeCa('cluster.local');
    const spiffe = 'spiffe://cluster.local/ns/ns0/sa/sa0';
    const certificate = (notAfterMs: number) =>
      makeWorkloadCert(ca, spiffe, { notBefore: new Date(notAfterMs - 3_600_000), notAfter: new Date(notAfterMs) });
    const world = makeWorld();
    await run(world, inventoryOf([2]));
    world.provisioned = new Map([
      ['vm-0-0', { certificate: certificate(TEST_EPOCH_MS - 86_400_000), clockMs: TEST_EPOCH_MS }],
      ['vm-0-1', { certificate: certificate(TEST_EPOCH_MS + 3_600_000), clockMs: TEST_EPOCH_MS }],
    ]);
    const lines: string[] = [];
    const logger = { ...silent, info: (line: string) => lines.push(line) };

    const plan = await run(world, inventoryOf([2]), { mode: 'plan' }, { logger });
    expect(plan.vms[0]?.reBootstrap).toEqual({
      certificateNotAfter: '2026-11-25T12:00:00.000Z',
      cause: 'expired',
      done: false,
    });
    expect(plan.vms[0]?.steps.find((step) => step.name === 'plan')?.detail).toContain(
      'would re-bootstrap: certificate expired at 2026-11-25T12:00:00.000Z',
    );
    expect(plan.vms[1]?.reBootstrap).toBeUndefined();

    const onboard = await run(world, inventoryOf([2]), {}, { logger });
    expect(world.applied.get('vm-0-0')!.reBootstrap).toBe(true);
    expect(world.applied.get('vm-0-1')!.reBootstrap).toBeUndefined();
    expect(onboard.vms[0]?.reBootstrap).toEqual({
      certificateNotAfter: '2026-11-25T12:00:00.000Z',
      cause: 'expired',
      done: true,
    });
    expect(onboard.vms.map((vm) => vm.outcome)).toEqual(['updated', 'unchanged']);
    expect(lines).toContain('[vm-0-0] re-bootstrapped: certificate expired at 2026-11-25T12:00:00.000Z');
    expect(lines.filter((line) => line.startsWith('[vm-0-1]') && /re-bootstrap/.test(line))).toEqual([]);
  });

  it('keeps concurrency and max-unavailable per group', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([6, 6]), { concurrency: '3', 'max-unavailable': '1' });
    expect(world.maxInFlight).toBeLessThanOrEqual(2);
    expect(Math.max(...world.maxInFlightByGroup.values())).toBe(1);
    const wide = makeWorld();
    await run(wide, inventoryOf([6, 6]), { concurrency: '3', 'max-unavailable': '100%' });
    expect(wide.maxInFlight).toBe(3);
  });

  it('fails one VM and finishes the others; a failed first install is not called rolled back', async () => {
    const world = makeWorld();
    world.failingChecks.add('vm-0-1');
    const report = await run(world, inventoryOf([3]));
    const failed = report.vms.find((vm) => vm.name === 'vm-0-1')!;
    expect(failed.outcome).toBe('failed');
    expect(failed.error).toMatchObject({ step: 'verify', message: 'checks failed: sidecar-ready', hint: 'fix it' });
    expect(world.events).toContain('rollback vm-0-1');
    expect(report.totals).toMatchObject({ succeeded: 2, failed: 1 });
  });

  it('rolls back a VM whose checks fail after an upgrade, and checks it again: healthy on what it had', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([1]), { 'istio-version': '1.24.0' });
    world.failingUntilRollback.add('vm-0-0');
    const report = await run(world, inventoryOf([1]), { 'istio-version': '1.24.1' });
    expect(report.vms[0]?.outcome).toBe('rolled-back');
    expect(report.vms[0]?.afterRollback).toMatchObject({ healthy: true, version: '1.24.0' });
    expect(report.vms[0]?.steps.map((step) => `${step.name} ${step.status}`).slice(-3)).toEqual([
      'verify failed',
      'rollback ok',
      'verify-after-rollback ok',
    ]);
    expect(world.events.filter((e) => e.startsWith('verify') || e.startsWith('rollback'))).toEqual([
      'verify vm-0-0',
      'verify vm-0-0',
      'rollback vm-0-0',
      'verify vm-0-0',
    ]);
    expect(report.totals.failed).toBe(1);
  });

  it('does not check again a VM whose rolled-back change rewrote cluster.env (this run would not describe it)', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([1]));
    world.failingUntilRollback.add('vm-0-0');
    const changed = inventoryOf([1]);
    changed.groups[0]!.labels = { tier: 'new' };
    const report = await run(world, changed);
    expect(report.vms[0]?.outcome).toBe('rolled-back');
    expect(report.vms[0]?.afterRollback).toBeUndefined();
    expect(report.vms[0]?.steps.map((step) => `${step.name} ${step.status}`).slice(-3)).toEqual([
      'verify failed',
      'rollback ok',
      'verify-after-rollback skipped',
    ]);
    expect(world.events.filter((e) => e.startsWith('verify') || e.startsWith('rollback'))).toEqual([
      'verify vm-0-0',
      'verify vm-0-0',
      'rollback vm-0-0',
    ]);
  });

  it('says distinctly when a rolled-back VM is still unhealthy on its previous state', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([1]), { 'istio-version': '1.24.0' });
    world.failingChecks.add('vm-0-0');
    const errors: string[] = [];
    const report = await run(
      world,
      inventoryOf([1]),
      { 'istio-version': '1.24.1' },
      { logger: { ...silent, error: (line) => errors.push(line) } },
    );
    expect(report.vms[0]?.outcome).toBe('rolled-back-unhealthy');
    expect(report.vms[0]?.afterRollback).toMatchObject({ healthy: false, version: '1.24.0' });
    expect(errors).toContain(
      '[vm-0-0] after the rollback the VM is still unhealthy on 1.24.0: sidecar-ready failed — it needs a look',
    );
    expect(report.totals.failed).toBe(1);
  });

  it('stops starting VMs once the failure budget is spent', async () => {
    const world = makeWorld();
    for (let i = 0; i < 3; i += 1) world.failingConnect.add(`vm-0-${i}`);
    const report = await run(world, inventoryOf([8]), {
      concurrency: '1',
      'max-unavailable': '100%',
      'failure-budget': '2',
    });
    expect(report.vms.filter((vm) => vm.outcome === 'failed')).toHaveLength(3);
    expect(report.vms.filter((vm) => vm.outcome === 'skipped-budget')).toHaveLength(5);
    expect(report.vms[0]?.error).toMatchObject({ step: 'connect', hint: 'is sshd running?' });
  });

  it('plans without writing: dry-run objects, no token, no apply', async () => {
    const world = makeWorld();
    const report = await run(world, inventoryOf([2]), { mode: 'plan' });
    expect(world.events.filter((e) => !/^(connect|close) /.test(e))).toEqual(['applyGroup g0 (dry-run)']);
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['planned', 'planned']);
    expect(report.vms[0]?.files.find((file) => file.path.endsWith('cluster.env'))?.diff).toContain(
      "+ISTIO_SVC_IP='10.0.0.10'",
    );
    expect(report.vms[0]?.tokenExpiresAt).toBeUndefined();
  });

  it('takes only its shard, and the shards cover every VM exactly once', async () => {
    const inventory = inventoryOf([10]);
    const seen: string[] = [];
    for (const shard of ['1/3', '2/3', '3/3']) {
      const report = await run(makeWorld(), inventory, { shard });
      seen.push(...report.vms.filter((vm) => vm.outcome !== 'skipped-shard').map((vm) => vm.name));
      expect(report.vms).toHaveLength(10);
    }
    expect(seen.sort()).toEqual(inventory.groups[0]!.vms.map((vm) => vm.name).sort());
  });

  it('offboards VMs and removes their WorkloadEntries', async () => {
    const world = makeWorld();
    const report = await run(world, inventoryOf([2]), { mode: 'offboard' });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['offboarded', 'offboarded']);
    expect(report.cluster?.objects.filter((object) => object.action === 'deleted')).toHaveLength(2);
  });

  it('touches no VM when the cluster preflight fails', async () => {
    const world = makeWorld();
    const cluster = fakes(world).cluster;
    const report = await run(
      world,
      inventoryOf([2]),
      {},
      {
        cluster: async () => ({
          ...cluster,
          preflight: async () => Promise.reject(new Error('Cluster preflight failed: CRD missing')),
        }),
      },
    );
    expect(report.fatal).toMatchObject({ stage: 'cluster', message: 'Cluster preflight failed: CRD missing' });
    expect(world.applied.size).toBe(0);
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['skipped-preflight', 'skipped-preflight']);
  });

  it('logs in to the first wave of VMs while the cluster side is prepared, only after the preflight passed', async () => {
    const world = makeWorld();
    const cluster = fakes(world).cluster;
    let releaseMesh: () => void = () => undefined;
    const meshGate = new Promise<void>((resolve) => (releaseMesh = resolve));
    const running = run(
      world,
      inventoryOf([3, 2]),
      { concurrency: '3', 'max-unavailable': '1' },
      {
        cluster: async () => ({
          ...cluster,
          preflight: async () => {
            world.events.push('preflight');
            return cluster.preflight({} as never);
          },
          meshContext: async (group) => {
            await meshGate;
            return cluster.meshContext(group);
          },
        }),
      },
    );
    // the root certificate is still on its way: the first wave (one VM per group: max-unavailable 1) is logging in
    for (let i = 0; i < 20 && world.events.filter((e) => e.startsWith('connect')).length < 2; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(world.events).toEqual(['preflight', 'connect vm-0-0', 'connect vm-1-0', 'applyGroup g0']);
    releaseMesh();
    const report = await running;
    expect(report.vms.map((vm) => vm.outcome)).toEqual([
      'installed',
      'installed',
      'installed',
      'installed',
      'installed',
    ]);
    // one login per VM: the early ones were used, not opened again
    expect(world.events.filter((e) => e.startsWith('connect')).sort()).toEqual([
      'connect vm-0-0',
      'connect vm-0-1',
      'connect vm-0-2',
      'connect vm-1-0',
      'connect vm-1-1',
    ]);
    expect(world.maxInFlightByGroup.get('g0')).toBe(1);
  });

  it('closes the early logins when the cluster side fails after the preflight, and touches nothing', async () => {
    const world = makeWorld();
    const cluster = fakes(world).cluster;
    const report = await run(
      world,
      inventoryOf([2]),
      { 'max-unavailable': '100%' },
      {
        cluster: async () => ({
          ...cluster,
          applyGroup: async () => Promise.reject(new Error('WorkloadGroup g0: 409 conflict')),
        }),
      },
    );
    expect(report.fatal).toMatchObject({ stage: 'cluster', message: 'WorkloadGroup g0: 409 conflict' });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['skipped-preflight', 'skipped-preflight']);
    expect(world.applied.size).toBe(0);
    expect(world.events.filter((e) => e.startsWith('close')).sort()).toEqual(['close vm-0-0', 'close vm-0-1']);
    expect(world.inFlight).toBe(0);
  });

  it('opens no early login when the preflight fails', async () => {
    const world = makeWorld();
    const cluster = fakes(world).cluster;
    await run(
      world,
      inventoryOf([2]),
      {},
      { cluster: async () => ({ ...cluster, preflight: async () => Promise.reject(new Error('no')) }) },
    );
    expect(world.events.some((e) => e.startsWith('connect'))).toBe(false);
  });

  it('rejects an unknown group filter', async () => {
    await expect(run(makeWorld(), inventoryOf([1]), { groups: 'nope' })).rejects.toThrow(/no group named 'nope'/);
  });

  it('logs each step line of a VM once: streamed with its name, then a group of its checks', async () => {
    const log: string[] = [];
    const logger: RunLogger = {
      info: (line) => log.push(line),
      warning: (line) => log.push(`warning ${line}`),
      error: (line) => log.push(`error ${line}`),
      debug: () => {},
      group: (title, lines) => log.push(`group ${title}`, ...lines.map((line) => `  ${line}`)),
    };
    const world = makeWorld();
    world.failingChecks.add('vm-0-1');
    await run(world, inventoryOf([2]), {}, { logger });
    const steps = log.filter((line) => /^\[vm-0-0\] /.test(line));
    expect(steps.length).toBeGreaterThan(2);
    for (const line of steps) {
      const text = line.replace('[vm-0-0] ', '');
      const mentions = log.filter((other) => !other.startsWith('[vm-0-1]') && other.includes(text));
      expect([text, mentions.length]).toEqual([text, 1]);
    }
    const group = log.indexOf('group vm-0-0: installed');
    expect(log.slice(group + 1, group + 3)).toEqual(['  ✓ sidecar-running: ok', '  ✓ sidecar-ready: ok']);
    expect(log).toContain('group vm-0-1: failed');
    expect(log).toContain('  ✗ sidecar-ready: bad');
  });

  it('logs the outcome of a VM without checks (plan) as one line', async () => {
    const log: string[] = [];
    const groups: string[] = [];
    const logger: RunLogger = {
      info: (line) => log.push(line),
      warning: () => {},
      error: () => {},
      debug: () => {},
      group: (title) => groups.push(title),
    };
    await run(makeWorld(), inventoryOf([1]), { mode: 'plan' }, { logger });
    expect(groups).toEqual([]);
    expect(log.filter((line) => line.startsWith('[vm-0-0] plan: '))).toHaveLength(1);
    expect(log.at(-1)).toMatch(/^\[vm-0-0\] \S+$/);
  });
});

describe('sidecar upgrade: one canary per group first', () => {
  /** Four VMs of one group on 1.24.0, then a run to 1.24.1 (istiod 1.24.x). */
  async function upgradeWorld(vms = [4]) {
    const world = makeWorld();
    await run(world, inventoryOf(vms), { 'istio-version': '1.24.0' });
    world.events.length = 0;
    return world;
  }
  const logged = () => {
    const lines: string[] = [];
    const push = (line: string) => lines.push(line);
    return { lines, logger: { ...silent, info: push, warning: push, error: push } };
  };

  it('upgrades the canary alone, then the rest within max-unavailable; from → to everywhere', async () => {
    const world = await upgradeWorld();
    const log = logged();
    const report = await run(
      world,
      inventoryOf([4]),
      { 'istio-version': '1.24.1', 'max-unavailable': '100%' },
      { logger: log.logger },
    );
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['updated', 'updated', 'updated', 'updated']);
    const canary = report.vms.find((vm) => vm.canary?.self)!;
    expect(canary).toBeDefined();
    for (const vm of report.vms) {
      expect(vm.package).toEqual({ version: '1.24.1', action: 'upgraded', from: '1.24.0' });
      expect(vm.canary?.vm).toBe(canary.name);
    }
    // the canary's apply and checks come before any other apply
    const applies = world.events.filter((e) => /^(apply|verify) vm-/.test(e));
    expect(applies.slice(0, 2)).toEqual([`apply ${canary.name}`, `verify ${canary.name}`]);
    // ...and the others ran together after it (max-unavailable 100%)
    expect(world.maxInFlightByGroup.get('g0')).toBe(4);
    expect(log.lines).toContain(
      `[${canary.name}] canary of group g0: sidecar 1.24.0 → 1.24.1 first; the group's other upgrades and revision moves wait for its checks`,
    );
    expect(log.lines).toContain(
      `[${canary.name}] apply: package upgraded 1.24.0 → 1.24.1; 0 file(s) changed; no restart`,
    );
    const others = report.vms.filter((vm) => !vm.canary?.self);
    for (const vm of others) {
      expect(log.lines).toContain(`[${vm.name}] sidecar 1.24.0 → 1.24.1 waits for the group's canary ${canary.name}`);
      expect(vm.steps.find((step) => step.name === 'canary')).toMatchObject({ status: 'ok' });
    }
    // the summary and the table show from → to
    const { renderJobSummary } = await import('../../src/report/summary.js');
    const { renderTerminalTable } = await import('../../src/report/table.js');
    expect(renderJobSummary(report)).toContain('| ✅ updated | 1.24.0 → 1.24.1 |');
    expect(renderTerminalTable(report)).toMatch(/updated\s+1\.24\.0 → 1\.24\.1/);
  });

  it('a failing canary is rolled back and the group’s other upgrades are skipped, naming it and why', async () => {
    const world = await upgradeWorld([4, 2]);
    world.failingVersion.set('vm-0-0', '1.24.1');
    const report = await run(world, inventoryOf([4, 2]), {
      'istio-version': '1.24.1',
      'max-unavailable': '1',
      'failure-budget': '5',
    });
    const byName = Object.fromEntries(report.vms.map((vm) => [vm.name, vm]));
    expect(byName['vm-0-0']!.outcome).toBe('rolled-back');
    expect(byName['vm-0-0']!.canary).toEqual({ vm: 'vm-0-0', self: true });
    expect(byName['vm-0-0']!.afterRollback).toMatchObject({ healthy: true, version: '1.24.0' });
    for (const name of ['vm-0-1', 'vm-0-2', 'vm-0-3']) {
      expect(byName[name]!.outcome).toBe('skipped-canary');
      expect(byName[name]!.error).toMatchObject({
        step: 'canary',
        message:
          "not changed (sidecar 1.24.0 → 1.24.1): the group's canary vm-0-0 was rolled back at verify: checks failed: sidecar-ready",
      });
      expect(world.events).not.toContain(`apply ${name}`);
    }
    // the other group has its own canary and upgrades
    expect([byName['vm-1-0']!.outcome, byName['vm-1-1']!.outcome]).toEqual(['updated', 'updated']);
    expect(report.totals).toMatchObject({ failed: 1, skipped: 3, succeeded: 2 });
    const { computeOutputs } = await import('../../src/report/outputs.js');
    const outputs = computeOutputs(report, 'report.json');
    expect(outputs.failed).toBe('vm-0-0');
    expect(JSON.parse(outputs.result).skipped.map((vm: { vm: string }) => vm.vm)).toEqual([
      'vm-0-1',
      'vm-0-2',
      'vm-0-3',
    ]);
  });

  it('a VM failing the new version after a good canary is rolled back; the others are upgraded', async () => {
    const world = await upgradeWorld();
    world.failingVersion.set('vm-0-2', '1.24.1');
    const report = await run(world, inventoryOf([4]), { 'istio-version': '1.24.1', 'max-unavailable': '1' });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['updated', 'updated', 'rolled-back', 'updated']);
    expect(world.versions.get('vm-0-2')).toBe('1.24.0');
  });

  it('a VM whose package manager refuses the new version is rolled back and checked on the old one', async () => {
    const world = await upgradeWorld();
    world.refusedVersion.set('vm-0-2', '1.24.1');
    const report = await run(world, inventoryOf([4]), { 'istio-version': '1.24.1', 'max-unavailable': '1' });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['updated', 'updated', 'rolled-back', 'updated']);
    const vm = report.vms[2]!;
    expect(vm.error).toMatchObject({ step: 'apply', message: expect.stringContaining('dependency problems') });
    expect(vm.package).toEqual({ version: '1.24.1', action: 'upgraded', from: '1.24.0' });
    expect(vm.afterRollback).toMatchObject({ healthy: true, version: '1.24.0' });
    expect(vm.steps.map((step) => `${step.name} ${step.status}`).slice(-3)).toEqual([
      'apply failed',
      'rollback ok',
      'verify-after-rollback ok',
    ]);
    const { renderJobSummary } = await import('../../src/report/summary.js');
    expect(renderJobSummary(report)).toContain('| ↩️ rolled-back | 1.24.0 → 1.24.1 (rolled back to 1.24.0) |');
  });

  it('a first install whose apply fails is not rolled back (nothing to go back to)', async () => {
    const world = makeWorld();
    world.refusedVersion.set('vm-0-0', '1.24.0');
    const report = await run(world, inventoryOf([1]), { 'istio-version': '1.24.0' });
    expect(report.vms[0]!.outcome).toBe('failed');
    expect(world.events).not.toContain('rollback vm-0-0');
  });

  it('first installs do not wait for a canary; unchanged VMs neither', async () => {
    const world = makeWorld();
    await run(world, inventoryOf([2]), { 'istio-version': '1.24.0' });
    world.events.length = 0;
    // two VMs installed, two new ones: the new ones install without waiting
    const report = await run(world, inventoryOf([4]), { 'istio-version': '1.24.0', 'max-unavailable': '100%' });
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['unchanged', 'unchanged', 'installed', 'installed']);
    expect(report.vms.every((vm) => vm.canary === undefined)).toBe(true);
  });

  it('plan shows the upgrade before it happens', async () => {
    const world = await upgradeWorld([1]);
    const log = logged();
    const report = await run(
      world,
      inventoryOf([1]),
      { mode: 'plan', 'istio-version': '1.24.1' },
      { logger: log.logger },
    );
    expect(report.vms[0]!.package).toEqual({ version: '1.24.1', action: 'upgraded', from: '1.24.0' });
    expect(log.lines.some((line) => line.startsWith('[vm-0-0] plan: package would be upgraded 1.24.0 → 1.24.1;'))).toBe(
      true,
    );
    expect(world.events.filter((e) => e.startsWith('apply vm-'))).toEqual([]);
  });
});

describe('revision move: the group canary first, like an upgrade', () => {
  const DEFAULT_ISTIOD = 'istiod.istio-system.svc:15012';
  const CANARY_ISTIOD = 'istiod-canary.istio-system.svc:15012';
  async function onDefaultRevision(vms = [3]) {
    const world = makeWorld();
    await run(world, inventoryOf(vms), { 'istio-version': '1.24.0' });
    world.events.length = 0;
    world.revision = 'canary';
    return world;
  }
  const clusterEnvOf = (world: ReturnType<typeof makeWorld>, vm: string) => world.applied.get(vm)!.files.clusterEnv;

  it('moves the canary alone, then the rest; from → to in the report, summary and table', async () => {
    const world = await onDefaultRevision();
    const lines: string[] = [];
    const logger = { ...silent, info: (line: string) => lines.push(line) };
    const report = await run(
      world,
      inventoryOf([3]),
      { 'istio-version': '1.24.0', 'max-unavailable': '100%' },
      { logger },
    );
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['updated', 'updated', 'updated']);
    const canary = report.vms.find((vm) => vm.canary?.self)!;
    expect(canary).toBeDefined();
    for (const vm of report.vms) {
      expect(vm.controlPlane).toEqual({ address: CANARY_ISTIOD, from: DEFAULT_ISTIOD });
      expect(vm.canary?.vm).toBe(canary.name);
      expect(clusterEnvOf(world, vm.name)).toContain(`CA_ADDR='${CANARY_ISTIOD}'`);
    }
    const applies = world.events.filter((e) => /^(apply|verify) vm-/.test(e));
    expect(applies.slice(0, 2)).toEqual([`apply ${canary.name}`, `verify ${canary.name}`]);
    expect(lines).toContain(
      `[${canary.name}] canary of group g0: istiod ${DEFAULT_ISTIOD} → ${CANARY_ISTIOD} first; ` +
        "the group's other upgrades and revision moves wait for its checks",
    );
    const { renderJobSummary } = await import('../../src/report/summary.js');
    const { renderTerminalTable } = await import('../../src/report/table.js');
    expect(renderJobSummary(report)).toContain(
      '| ✅ updated | istiod.istio-system.svc → istiod-canary.istio-system.svc |',
    );
    expect(renderTerminalTable(report)).toMatch(/ISTIOD[\s\S]*updated\s+istiod\.istio-system\.svc → istiod-canary/);

    // moved: the next run changes nothing and needs no canary
    world.events.length = 0;
    const again = await run(world, inventoryOf([3]), { 'istio-version': '1.24.0' });
    expect(again.vms.map((vm) => vm.outcome)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect(again.vms.every((vm) => vm.canary === undefined && vm.controlPlane === undefined)).toBe(true);
  });

  it('a canary failing on the new revision is rolled back; the group is not moved', async () => {
    const world = await onDefaultRevision([3]);
    world.failingUntilRollback.add('vm-0-0');
    const report = await run(world, inventoryOf([3]), { 'istio-version': '1.24.0', 'max-unavailable': '1' });
    const byName = Object.fromEntries(report.vms.map((vm) => [vm.name, vm]));
    expect(byName['vm-0-0']!.outcome).toBe('rolled-back');
    expect(world.events).toContain('rollback vm-0-0');
    for (const name of ['vm-0-1', 'vm-0-2']) {
      expect(byName[name]!.outcome).toBe('skipped-canary');
      expect(byName[name]!.error!.message).toBe(
        `not changed (istiod ${DEFAULT_ISTIOD} → ${CANARY_ISTIOD}): the group's canary vm-0-0 was rolled back ` +
          'at verify: checks failed: sidecar-ready',
      );
      expect(world.events).not.toContain(`apply ${name}`);
    }
  });

  it('an upgrade and a move at once are one change through the canary', async () => {
    const world = await onDefaultRevision([2]);
    const report = await run(world, inventoryOf([2]), { 'istio-version': '1.24.1', 'max-unavailable': '100%' });
    const canary = report.vms.find((vm) => vm.canary?.self)!;
    const other = report.vms.find((vm) => !vm.canary?.self)!;
    expect(other.steps.find((step) => step.name === 'canary')).toMatchObject({
      status: 'ok',
      detail: `canary ${canary.name} changed and verified`,
    });
    expect(report.vms.map((vm) => vm.package?.from)).toEqual(['1.24.0', '1.24.0']);
    expect(report.vms.map((vm) => vm.controlPlane?.address)).toEqual([CANARY_ISTIOD, CANARY_ISTIOD]);
  });

  it('plan shows the move before it happens and touches nothing', async () => {
    const world = await onDefaultRevision([1]);
    const lines: string[] = [];
    const logger = { ...silent, info: (line: string) => lines.push(line) };
    const report = await run(world, inventoryOf([1]), { mode: 'plan', 'istio-version': '1.24.0' }, { logger });
    expect(report.vms[0]!.controlPlane).toEqual({ address: CANARY_ISTIOD, from: DEFAULT_ISTIOD });
    expect(
      lines.some((line) =>
        line.endsWith(
          `would move the sidecar from ${DEFAULT_ISTIOD} to ${CANARY_ISTIOD} (revision move, canary first)`,
        ),
      ),
    ).toBe(true);
    expect(world.events.filter((e) => e.startsWith('apply vm-'))).toEqual([]);
  });
});

describe('version skew', () => {
  it.each([
    ['1.26.0', 'newer than istiod'],
    ['1.23.4', '2 minor versions behind'],
    ['2.25.0', 'differ in major version'],
  ])('refuses sidecar %s with istiod 1.25.2 before any VM is touched (%s)', async (version, why) => {
    const world = makeWorld();
    world.istiodVersion = '1.25.2';
    const report = await run(world, inventoryOf([2]), { 'istio-version': version });
    expect(report.fatal).toMatchObject({ stage: 'version-skew', hintId: 'version-skew' });
    expect(report.fatal!.message).toContain(why);
    expect(report.fatal!.message).toContain(
      'https://istio.io/latest/docs/releases/supported-releases/#control-planedata-plane-skew',
    );
    expect(report.vms.map((vm) => vm.outcome)).toEqual(['skipped-preflight', 'skipped-preflight']);
    expect(world.events).toEqual([]);
  });

  it('accepts the same minor and one behind; verify only warns', async () => {
    for (const version of ['1.25.0', '1.24.9']) {
      const world = makeWorld();
      world.istiodVersion = '1.25-dev-eed52ebb';
      const report = await run(world, inventoryOf([1]), { 'istio-version': version });
      expect(report.fatal).toBeUndefined();
    }
    const world = makeWorld();
    world.istiodVersion = '1.27.0';
    const report = await run(world, inventoryOf([1]), { mode: 'verify', 'istio-version': '1.25.0' });
    expect(report.fatal).toBeUndefined();
    expect(report.warnings.some((w) => w.startsWith('unsupported version skew: sidecar 1.25.0'))).toBe(true);
  });
});
