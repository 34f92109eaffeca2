// The managed-files table as the scripts read it (managed-files.sh): one line per file.
import { readFileSync } from 'node:fs';
import { MANAGED_FILES, type ManagedFile } from '../paths.js';
import type { ShellPart } from './protocol.js';

const MANAGED_FILES_LOOPS = readFileSync(new URL('./managed-files.sh', import.meta.url), 'utf8');

/** A table field the scripts split on blanks: never empty, never with blanks. */
function field(value: string): string {
  if (!/^[^\s]+$/.test(value)) throw new Error(`a managed-file field must be one word: ${JSON.stringify(value)}`);
  return value;
}

/** `IVO_MANAGED_FILES` (KEY STAGED PATH OWNER MODE RESTARTS COMPARED-AS) and the loops over it. */
export function managedFilesPart(restarts: (file: ManagedFile) => boolean = (file) => file.restarts): ShellPart {
  const rows = MANAGED_FILES.map((file) =>
    [file.key, file.staged, file.path, file.owner, file.mode, restarts(file) ? '1' : '0', file.comparedAs]
      .map(field)
      .join(' '),
  );
  return { values: { IVO_MANAGED_FILES: rows.join('\n') }, text: MANAGED_FILES_LOOPS };
}

/** The directory a file is in. */
export function parentDir(path: string): string {
  return path.replace(/\/[^/]+$/, '');
}
