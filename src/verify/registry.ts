// The checks, in the order they run and are reported: one definition each (checks/<name>.ts). Adding a
// check is one file plus its line here; everything else (the orchestration, skips, the job summary,
// the README's tables via `npm run docs`, the report schema's names) reads this registry.
import type { CheckDefinition, HintText } from './check.js';
import { meshToVmMtls } from './checks/mesh-to-vm-mtls.js';
import { sidecarReady } from './checks/sidecar-ready.js';
import { sidecarRunning } from './checks/sidecar-running.js';
import { vmToMesh } from './checks/vm-to-mesh.js';
import { workloadCertificate } from './checks/workload-certificate.js';
import { workloadEntry } from './checks/workload-entry.js';
import { xdsConnected } from './checks/xds-connected.js';

const BUILT_IN: readonly CheckDefinition[] = [
  sidecarRunning,
  sidecarReady,
  xdsConnected,
  workloadCertificate,
  workloadEntry,
  vmToMesh,
  meshToVmMtls,
];

/** The names of the checks this release runs, in order. */
export const CHECK_NAMES: readonly string[] = BUILT_IN.map((check) => check.name);

const registered: CheckDefinition[] = [];

/** Every check that runs, in order: the built-in ones, then any registered. */
export function checkDefinitions(): readonly CheckDefinition[] {
  return [...BUILT_IN, ...registered];
}

export function checkNames(): string[] {
  return checkDefinitions().map((check) => check.name);
}

export function checkDefinition(name: string): CheckDefinition | undefined {
  return checkDefinitions().find((check) => check.name === name);
}

/** A hint by id, with the check it belongs to. */
export function hintEntry(id: string): (HintText & { check: string }) | undefined {
  for (const check of checkDefinitions()) {
    const hint = check.hints[id];
    if (hint) return { check: check.name, ...hint };
  }
  return undefined;
}

/**
 * Adds a check after the others (what a test-only check, or an extension, uses); returns its removal.
 * Its name and hint ids must be new, and it may depend only on checks that run before it.
 */
export function registerCheck(check: CheckDefinition): () => void {
  const existing = checkDefinitions();
  if (!/^[a-z][a-z0-9-]*$/.test(check.name)) throw new Error(`check name must be lower-case words: ${check.name}`);
  if (existing.some((other) => other.name === check.name)) throw new Error(`check ${check.name} exists already`);
  for (const dependency of check.dependsOn) {
    if (!existing.some((other) => other.name === dependency)) {
      throw new Error(`check ${check.name} depends on ${dependency}, which does not run before it`);
    }
  }
  for (const id of Object.keys(check.hints)) {
    const owner = hintEntry(id);
    if (owner) throw new Error(`check ${check.name}: hint ${id} belongs to ${owner.check} already`);
  }
  registered.push(check);
  return () => {
    const index = registered.indexOf(check);
    if (index >= 0) registered.splice(index, 1);
  };
}

/** The README's check table: each check and when it passes. */
export function renderChecksMarkdown(): string {
  const rows = checkDefinitions().map((check) => `| \`${check.name}\` | ${check.passesWhen.replace(/\|/g, '\\|')} |`);
  return ['| check | passes when |', '| --- | --- |', ...rows].join('\n') + '\n';
}
