// npm run lint:sh: shellcheck on every shell script of the repository — the scripts the runner sends to
// VMs (src/**/*.sh), the lab's and the benchmark's. Part of `npm test`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the repository's own scripts live (dist/ holds copies of src/'s, node_modules others'). */
const FOLDERS = ['src', 'scripts', 'test', 'bench', 'tools'];
const SKIPPED = new Set(['node_modules', '.bin', '.git']);

function shellScripts(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return SKIPPED.has(entry.name) ? [] : shellScripts(path);
    return entry.isFile() && entry.name.endsWith('.sh') ? [relative(root, path)] : [];
  });
}

const files = FOLDERS.flatMap((folder) => shellScripts(join(root, folder))).sort();
const result = spawnSync('shellcheck', ['--external-sources', '--source-path=SCRIPTDIR', ...files], {
  cwd: root,
  stdio: 'inherit',
});
if (result.error) {
  console.error(`shellcheck could not run (${result.error.message}): npm run setup installs it`);
  process.exitCode = 1;
} else if (result.status !== 0) {
  process.exitCode = result.status ?? 1;
} else {
  console.log(`shellcheck: ${files.length} scripts clean`);
}
