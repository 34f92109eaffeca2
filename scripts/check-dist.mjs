// Fails when dist/ is not what `npm run build` makes from the current src/: the action runs dist/,
// so a stale bundle would ship old code. Builds into a temporary folder and compares every file.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInto } from './build.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

async function listFiles(dir) {
  const found = [];
  async function walk(current) {
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) await walk(full);
      else found.push(relative(dir, full));
    }
  }
  await walk(dir);
  return found.sort();
}

const fresh = await mkdtemp(join(tmpdir(), 'ivo-check-dist-'));
try {
  await buildInto(fresh);
  const committed = join(root, 'dist');
  const [want, have] = await Promise.all([listFiles(fresh), listFiles(committed)]);
  const problems = [];
  for (const file of want) {
    if (!have.includes(file)) problems.push(`missing: dist/${file}`);
    else if (!(await readFile(join(fresh, file))).equals(await readFile(join(committed, file)))) {
      problems.push(`stale: dist/${file}`);
    }
  }
  for (const file of have) if (!want.includes(file)) problems.push(`unexpected: dist/${file}`);
  // What the runner starts: action.yml's runs.main and runs.post must be files the build makes.
  const actionYml = await readFile(join(root, 'action.yml'), 'utf8');
  for (const key of ['main', 'post']) {
    const file = new RegExp(`^  ${key}: '?dist/([^'\\s]+)'?\\s*$`, 'm').exec(actionYml)?.[1];
    if (file === undefined) problems.push(`action.yml: no runs.${key}`);
    else if (!want.includes(file)) problems.push(`action.yml runs.${key}: dist/${file} is not built`);
  }
  if (problems.length > 0) {
    console.error(`dist/ does not match src/ — run \`npm run build\` and commit dist/:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log(`dist/ is up to date (${want.length} files)`);
  }
} finally {
  await rm(fresh, { recursive: true, force: true });
}
