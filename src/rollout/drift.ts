// Drift: how an onboarded VM, and the cluster objects its group owns, differ from what onboard would make
// them. One comparison of the managed files (VM_FILES, src/vm/paths.ts) against the rendered ones serves
// plan (its per-file changes and diffs) and verify (which fails on drift); onboard repairs what it finds
// by applying again. Pure. A secret (the bootstrap token) is only ever reported missing, never compared
// or shown: a fresh one is issued every run.
import { createHash } from 'node:crypto';
import { createTwoFilesPatch } from 'diff';
import type { ClusterObjectRecord, DriftRecord, FileChange } from '../report/model.js';
import { ISTIO_PATHS, managedFileContent, VM_FILES, type ManagedFile, type VmFile } from '../vm/paths.js';
import type { InspectedVm, RenderedVmFiles } from './ports.js';

/** One managed file: as onboard would write it (`same`), absent, or with other content. */
export interface FileComparison {
  file: VmFile;
  state: 'same' | 'missing' | 'edited';
  /** Unified diff, the VM's content against the rendered one; only for non-secret files read in full. */
  diff?: string;
}

/**
 * Every managed file compared: by content where inspect read it (plan and verify read the non-secret
 * rendered files and our /etc/hosts block), else by sha256 (the drop-in); the token only by presence.
 */
export function compareVmFiles(files: RenderedVmFiles, facts: InspectedVm): FileComparison[] {
  return VM_FILES.map((file): FileComparison => {
    if (file.secret) {
      return { file, state: facts.fileHashes[file.label] === undefined ? 'missing' : 'same' };
    }
    const before = facts.currentFiles[file.label];
    const hash = facts.fileHashes[file.label];
    if (file.key !== 'hosts' && before === undefined && hash !== undefined) {
      // Present but not read in full: its hash against the content onboard writes.
      const expected = sha256(managedFileContent(file as ManagedFile, files));
      return { file, state: hash === expected ? 'same' : 'edited' };
    }
    // Read in full, or absent (no hash; for /etc/hosts: no block of ours).
    const after = file.rendered === undefined ? managedFileContent(file as ManagedFile, files) : files[file.rendered];
    if ((before ?? '') === after) return { file, state: 'same' };
    // The same roots in pilot-agent's layout: apply leaves the file as it is too (VmFile.comparedAs).
    if (before !== undefined && file.comparedAs === 'certificates' && sameCertificates(before, after))
      return { file, state: 'same' };
    return {
      file,
      state: before === undefined ? 'missing' : 'edited',
      ...(file.rendered !== undefined
        ? {
            diff: createTwoFilesPatch(
              `${file.label} (on the VM)`,
              `${file.label} (onboard writes)`,
              before ?? '',
              after,
              '',
              '',
              { context: 2 },
            ),
          }
        : {}),
    };
  });
}

/** Plan's view: each non-secret rendered file, whether onboard would change it, and how. */
export function plannedFileChanges(comparisons: readonly FileComparison[]): FileChange[] {
  return comparisons
    .filter(({ file }) => file.rendered !== undefined && !file.secret)
    .map(({ file, state, diff }) => ({
      path: file.label,
      changed: state !== 'same',
      ...(diff !== undefined ? { diff } : {}),
    }));
}

/**
 * Whether onboarding has been here: the package is installed, or a file only this tool writes (the
 * drop-in, the token's persistent copy) is present. A VM never onboarded has nothing to drift from.
 */
export function wasOnboarded(facts: InspectedVm): boolean {
  if (facts.installedVersion) return true;
  return VM_FILES.some(
    (file) => (file.key === 'dropIn' || file.key === 'token') && facts.fileHashes[file.label] !== undefined,
  );
}

/** The VM's drift: its files, then its package. Empty for a VM never onboarded. */
export function vmDrift(input: {
  comparisons: readonly FileComparison[];
  facts: InspectedVm;
  /** The version onboard installs (the istio-version input, else istiod's); '' when unknown. */
  packageVersion: string;
}): DriftRecord[] {
  const { comparisons, facts, packageVersion } = input;
  if (!wasOnboarded(facts)) return [];
  const out: DriftRecord[] = comparisons.flatMap(({ file, state, diff }): DriftRecord[] => {
    if (state === 'same') return [];
    return [
      {
        kind: 'file',
        subject: file.label,
        change: state,
        detail: state === 'missing' ? `${file.label} is missing` : `${file.label} was edited on the VM`,
        ...(diff !== undefined && !file.secret ? { diff } : {}),
      },
    ];
  });
  const installed = facts.installedVersion;
  if (packageVersion !== '' && installed !== packageVersion) {
    out.push({
      kind: 'package',
      subject: ISTIO_PATHS.packageName,
      change: installed ? 'changed' : 'missing',
      detail: installed
        ? `${ISTIO_PATHS.packageName} ${installed} installed, onboard installs ${packageVersion}`
        : `${ISTIO_PATHS.packageName} is not installed (onboard installs ${packageVersion})`,
      ...(installed ? { from: installed } : {}),
      to: packageVersion,
    });
  }
  return out;
}

/** The drift of cluster objects, from a dry-run apply of them (`would-create`: gone; `would-configure`: changed). */
export function clusterObjectDrift(objects: readonly ClusterObjectRecord[]): DriftRecord[] {
  return objects.flatMap((object): DriftRecord[] => {
    const subject = `${object.kind} ${object.namespace ? `${object.namespace}/` : ''}${object.name}`;
    if (object.action === 'would-create') {
      return [{ kind: 'cluster-object', subject, change: 'missing', detail: `${subject} is missing` }];
    }
    if (object.action === 'would-configure') {
      const fields = object.drift ?? [];
      return [
        {
          kind: 'cluster-object',
          subject,
          change: 'changed',
          detail: `${subject} changed${fields.length > 0 ? `: ${fields.join(', ')}` : ''}`,
          ...(fields.length > 0 ? { fields } : {}),
        },
      ];
    }
    return [];
  });
}

/** One line naming each drift, for logs and errors. */
export function describeDrift(drift: readonly DriftRecord[]): string {
  return drift.map((record) => record.detail).join('; ');
}

/** The PEM certificates of a text, each as its base64 body without whitespace, sorted. */
function certificatesOf(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)]
    .map((match) => (match[1] ?? '').replace(/\s+/g, ''))
    .sort();
}

/** Whether two texts hold the same (non-empty) set of PEM certificates, whatever their line breaks. */
export function sameCertificates(a: string, b: string): boolean {
  const left = certificatesOf(a);
  const right = certificatesOf(b);
  return left.length > 0 && left.length === right.length && left.every((body, index) => body === right[index]);
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
