// Drift: the comparison of a VM's managed files, package and its group's cluster objects with what onboard
// would make them (src/rollout/drift.ts), and what verify and plan do with it (against the fake ports).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { renderJobSummary } from '../../src/report/summary.js';
import { clusterObjectDrift, compareVmFiles, plannedFileChanges, vmDrift } from '../../src/rollout/drift.js';
import type { InspectedVm, RenderedVmFiles } from '../../src/rollout/ports.js';
import { ISTIO_PATHS, MANAGED_FILES, ONBOARD_PATHS, TOKEN_RESTORE_DROP_IN, VM_FILES } from '../../src/vm/paths.js';
import { inventoryOf, makeWorld, run } from './rollout-fakes.js';

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

const rendered: RenderedVmFiles = {
  clusterEnv: "ISTIO_SVC_IP='10.0.0.10'\n",
  meshYaml: 'defaultConfig: {}\n',
  hosts: '10.0.9.1 istiod.istio-system.svc\n',
  rootCert: 'ROOT\n',
  token: 'the-secret-token-value',
};

/** A VM exactly as onboard left it (its token is another run's: tokens differ every run). */
function onboardedVm(): InspectedVm {
  return {
    arch: 'amd64',
    packageFormat: 'deb',
    installedVersion: '1.28.0',
    reachesDiscovery: true,
    currentFiles: {
      [ISTIO_PATHS.rootCert]: rendered.rootCert,
      [ISTIO_PATHS.clusterEnv]: rendered.clusterEnv,
      [ISTIO_PATHS.meshConfig]: rendered.meshYaml,
      [VM_FILES.find((file) => file.key === 'hosts')!.label]: rendered.hosts,
    },
    fileHashes: {
      [ISTIO_PATHS.rootCert]: sha256(rendered.rootCert),
      [ISTIO_PATHS.clusterEnv]: sha256(rendered.clusterEnv),
      [ISTIO_PATHS.meshConfig]: sha256(rendered.meshYaml),
      [ONBOARD_PATHS.persistentToken]: sha256('an-older-token'),
      [ONBOARD_PATHS.dropIn]: sha256(TOKEN_RESTORE_DROP_IN),
    },
  };
}

describe('compareVmFiles and vmDrift', () => {
  it('finds nothing on a VM as onboard left it, though its token differs', () => {
    const comparisons = compareVmFiles(rendered, onboardedVm());
    expect(comparisons.map((c) => c.file.key)).toEqual(VM_FILES.map((file) => file.key));
    expect(comparisons.every((c) => c.state === 'same')).toBe(true);
    expect(vmDrift({ comparisons, facts: onboardedVm(), packageVersion: '1.28.0' })).toEqual([]);
  });

  it('names an edited file with its diff, a missing one, an edited drop-in (by hash) and the package', () => {
    const facts = onboardedVm();
    facts.currentFiles[ISTIO_PATHS.clusterEnv] = "ISTIO_SVC_IP='10.9.9.9'\n";
    facts.currentFiles[ISTIO_PATHS.meshConfig] = undefined;
    facts.fileHashes[ISTIO_PATHS.meshConfig] = undefined;
    facts.fileHashes[ONBOARD_PATHS.dropIn] = sha256('[Service]\n');
    const drift = vmDrift({ comparisons: compareVmFiles(rendered, facts), facts, packageVersion: '1.29.0' });
    expect(drift.map((d) => [d.kind, d.subject, d.change])).toEqual([
      ['file', ISTIO_PATHS.clusterEnv, 'edited'],
      ['file', ISTIO_PATHS.meshConfig, 'missing'],
      ['file', ONBOARD_PATHS.dropIn, 'edited'],
      ['package', 'istio-sidecar', 'changed'],
    ]);
    expect(drift[0]!.diff).toContain("-ISTIO_SVC_IP='10.9.9.9'");
    expect(drift[0]!.diff).toContain("+ISTIO_SVC_IP='10.0.0.10'");
    expect(drift[2]!.diff).toBeUndefined();
    expect(drift[3]).toMatchObject({ from: '1.28.0', to: '1.29.0' });
  });

  it('compares a file not read in full by its hash', () => {
    const facts = onboardedVm();
    facts.currentFiles[ISTIO_PATHS.rootCert] = undefined;
    expect(compareVmFiles(rendered, facts).find((c) => c.file.key === 'rootCert')?.state).toBe('same');
    facts.fileHashes[ISTIO_PATHS.rootCert] = sha256('OTHER ROOT\n');
    expect(compareVmFiles(rendered, facts).find((c) => c.file.key === 'rootCert')?.state).toBe('edited');
  });

  it("takes root-cert.pem rewritten by Istio's agent (same certificates, other bytes) as no drift; other roots are", () => {
    const pem = (body: string): string => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
    const files = { ...rendered, rootCert: pem('QUJD\nREVG') };
    const facts = onboardedVm();
    // pilot-agent's encoding: no final newline
    facts.currentFiles[ISTIO_PATHS.rootCert] = files.rootCert.trimEnd();
    const comparisons = compareVmFiles(files, facts);
    expect(vmDrift({ comparisons, facts, packageVersion: '1.28.0' })).toEqual([]);
    // onboard leaves it as it is (apply compares it the same way), and plan says so
    expect(plannedFileChanges(comparisons).find((change) => change.path === ISTIO_PATHS.rootCert)?.changed).toBe(false);
    facts.currentFiles[ISTIO_PATHS.rootCert] = pem('WFla');
    expect(
      vmDrift({ comparisons: compareVmFiles(files, facts), facts, packageVersion: '1.28.0' }).map((d) => d.subject),
    ).toEqual([ISTIO_PATHS.rootCert]);
    facts.currentFiles[ISTIO_PATHS.rootCert] = files.rootCert + pem('WFla');
    expect(
      vmDrift({ comparisons: compareVmFiles(files, facts), facts, packageVersion: '1.28.0' }).map((d) => d.subject),
    ).toEqual([ISTIO_PATHS.rootCert]);
  });

  it('reports the token only as missing, never its content', () => {
    const facts = onboardedVm();
    facts.fileHashes[ONBOARD_PATHS.persistentToken] = undefined;
    const drift = vmDrift({ comparisons: compareVmFiles(rendered, facts), facts, packageVersion: '1.28.0' });
    expect(drift).toEqual([
      {
        kind: 'file',
        subject: ONBOARD_PATHS.persistentToken,
        change: 'missing',
        detail: `${ONBOARD_PATHS.persistentToken} is missing`,
      },
    ]);
    expect(JSON.stringify(drift)).not.toContain(rendered.token);
    // plan never lists the token either
    expect(plannedFileChanges(compareVmFiles(rendered, facts)).map((change) => change.path)).not.toContain(
      ONBOARD_PATHS.persistentToken,
    );
  });

  it('finds no drift on a VM never onboarded (nothing of ours there), though plan lists every file', () => {
    const facts: InspectedVm = {
      arch: 'amd64',
      packageFormat: 'deb',
      reachesDiscovery: true,
      currentFiles: {},
      fileHashes: {},
    };
    const comparisons = compareVmFiles(rendered, facts);
    expect(vmDrift({ comparisons, facts, packageVersion: '1.28.0' })).toEqual([]);
    expect(plannedFileChanges(comparisons).every((change) => change.changed && change.diff)).toBe(true);
    expect(MANAGED_FILES.length).toBeGreaterThan(0);
  });

  it('names cluster objects a dry-run apply would create (gone) or configure (changed fields)', () => {
    expect(
      clusterObjectDrift([
        { kind: 'Service', namespace: 'ns', name: 'web', action: 'would-create' },
        { kind: 'WorkloadGroup', namespace: 'ns', name: 'g', action: 'would-configure', drift: ['.spec.x differs'] },
        { kind: 'ServiceAccount', namespace: 'ns', name: 'sa', action: 'unchanged' },
      ]),
    ).toEqual([
      { kind: 'cluster-object', subject: 'Service ns/web', change: 'missing', detail: 'Service ns/web is missing' },
      {
        kind: 'cluster-object',
        subject: 'WorkloadGroup ns/g',
        change: 'changed',
        detail: 'WorkloadGroup ns/g changed: .spec.x differs',
        fields: ['.spec.x differs'],
      },
    ]);
  });
});

describe('verify and plan report drift; onboard repairs it', () => {
  it('verify passes after onboard, fails the drifted VM naming each drift, and passes again after onboard', async () => {
    const world = makeWorld();
    const inventory = inventoryOf([2], 'static');
    await run(world, inventory);
    const clean = await run(world, inventory, { mode: 'verify' });
    expect(clean.vms.map((vm) => [vm.outcome, vm.drift])).toEqual([
      ['verified', []],
      ['verified', []],
    ]);

    world.vmFiles.get('vm-0-1')!.set(ISTIO_PATHS.clusterEnv, "ISTIO_SVC_IP='10.6.6.6'\n");
    world.clusterObjects.delete('WorkloadEntry ns0/vm-0-1');
    const drifted = await run(world, inventory, { mode: 'verify' });
    expect(drifted.vms.map((vm) => vm.outcome)).toEqual(['verified', 'failed']);
    const vm = drifted.vms[1]!;
    expect(vm.drift?.map((d) => `${d.subject}: ${d.change}`)).toEqual([
      `${ISTIO_PATHS.clusterEnv}: edited`,
      'WorkloadEntry ns0/vm-0-1: missing',
    ]);
    expect(vm.error).toMatchObject({ step: 'drift', hint: 'run onboard to repair' });
    expect(vm.error?.message).toContain(`${ISTIO_PATHS.clusterEnv} was edited on the VM`);
    expect(drifted.totals.failed).toBe(1);
    const ajv = new Ajv.default({ allErrors: true, strict: true });
    addFormats.default(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync('report.schema.json', 'utf8')));
    expect(validate(JSON.parse(JSON.stringify(drifted))) ? [] : validate.errors).toEqual([]);
    const summary = renderJobSummary(drifted);
    expect(summary).toContain('### Drift');
    expect(summary).toContain(`- **file** \`${ISTIO_PATHS.clusterEnv}\` edited`);
    expect(summary).toContain("  -ISTIO_SVC_IP='10.6.6.6'");
    expect(summary).toContain('- **cluster-object** `WorkloadEntry ns0/vm-0-1` missing');

    const planned = await run(world, inventory, { mode: 'plan' });
    expect(planned.vms[1]?.outcome).toBe('planned');
    expect(planned.vms[1]?.drift?.map((d) => d.subject)).toEqual([ISTIO_PATHS.clusterEnv, 'WorkloadEntry ns0/vm-0-1']);
    expect(planned.vms[1]?.files.find((file) => file.path === ISTIO_PATHS.clusterEnv)?.changed).toBe(true);

    const repaired = await run(world, inventory);
    expect(repaired.vms.map((v) => v.outcome)).toEqual(['unchanged', 'updated']);
    const after = await run(world, inventory, { mode: 'verify' });
    expect(after.vms.map((v) => [v.outcome, v.drift])).toEqual([
      ['verified', []],
      ['verified', []],
    ]);
  });

  it("verify fails on the group's missing objects and on another package version", async () => {
    const world = makeWorld();
    const inventory = inventoryOf([1]);
    await run(world, inventory);
    world.clusterObjects.clear();
    const report = await run(world, inventory, { mode: 'verify', 'istio-version': '1.25.0' });
    expect(report.vms[0]?.outcome).toBe('failed');
    expect(report.vms[0]?.drift?.map((d) => d.detail)).toEqual([
      'istio-sidecar 1.24.0 installed, onboard installs 1.25.0',
      'WorkloadGroup ns0/g0 is missing',
    ]);
    // verify compares, it never writes
    expect(world.clusterObjects.size).toBe(0);
  });
});
