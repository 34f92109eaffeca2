// Errors for a bad inventory: every problem with its field path and, when known, its line/column.

export interface InventoryIssue {
  /** Field path such as `groups[0].vms[2].port`; '' for the whole document. */
  path: string;
  /** 1-based line in the inventory text. */
  line?: number;
  /** 1-based column in the inventory text. */
  column?: number;
  message: string;
}

/** One line per issue: `inventory.yaml:14:7 groups[0].vms[2].port: must be an integer 1..65535`. */
export function formatIssue(source: string, issue: InventoryIssue): string {
  const where = issue.line !== undefined ? `${source}:${issue.line}:${issue.column ?? 1}` : source;
  return `${where} ${issue.path === '' ? '(root)' : issue.path}: ${issue.message}`;
}

export class InventoryError extends Error {
  override name = 'InventoryError';
  readonly issues: InventoryIssue[];
  /** File path as given, or `<inline>`. */
  readonly source: string;

  constructor(source: string, issues: InventoryIssue[]) {
    const sorted = [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    const count = sorted.length === 1 ? '1 problem' : `${sorted.length} problems`;
    super(`inventory ${source} is invalid (${count}):\n${sorted.map((i) => `  ${formatIssue(source, i)}`).join('\n')}`);
    this.issues = sorted;
    this.source = source;
  }
}

export type PathSegment = string | number;

/** `['groups', 0, 'labels', 'app.kubernetes.io/name']` → `groups[0].labels["app.kubernetes.io/name"]`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}
