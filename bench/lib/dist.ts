// The bundle under test. dist/ is what `npm run build` writes; other contributors rebuild it while
// they work (a failed build leaves it half-written), so the benchmark runs a private copy taken once at
// the start — every run in one benchmark uses the same bytes. When dist/ is incomplete the copy is
// built with scripts/build.mjs (the same ncc build into another folder, as check-dist does).
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sleep } from '../../test/lab/exec.js';
import { REPO_ROOT } from '../../test/lab/testing.js';

export interface DistSnapshot {
  dir: string;
  source: 'dist/ copied' | 'built with scripts/build.mjs';
  /** Bytes of every file in the bundle folder, and of the two entry points. */
  totalBytes: number;
  actionBytes: number;
  cliBytes: number;
  /** The CLI's second bundle (Kubernetes client, SSH, the run commands), loaded on demand. */
  cliRunBytes: number;
  /** The action's second bundle (dist/run.js), loaded after the first log line; absent in older builds. */
  actionRunBytes?: number;
  actionSha256: string;
}

const ENTRIES = ['index.js', 'run.js', 'post.js', path.join('cli', 'index.js'), path.join('cli', 'run.js')];

function complete(dir: string): boolean {
  return ENTRIES.every((entry) => existsSync(path.join(dir, entry)) && statSync(path.join(dir, entry)).size > 0);
}

function sizesOf(dir: string): string {
  return ENTRIES.map((entry) => (existsSync(path.join(dir, entry)) ? statSync(path.join(dir, entry)).size : -1)).join(
    ',',
  );
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? folderBytes(full) : statSync(full).size;
  }
  return total;
}

export async function snapshotDist(target: string): Promise<DistSnapshot> {
  const dist = path.join(REPO_ROOT, 'dist');
  let source: DistSnapshot['source'] | undefined;
  for (let attempt = 0; attempt < 6 && !source; attempt++) {
    if (complete(dist)) {
      const before = sizesOf(dist);
      rmSync(target, { recursive: true, force: true });
      cpSync(dist, target, { recursive: true });
      if (complete(target) && sizesOf(target) === before && sizesOf(dist) === before) source = 'dist/ copied';
    }
    if (!source) await sleep(5_000);
  }
  if (!source) {
    rmSync(target, { recursive: true, force: true });
    const build = (await import(pathToFileURL(path.join(REPO_ROOT, 'scripts', 'build.mjs')).href)) as {
      buildInto(dir: string): Promise<void>;
    };
    await build.buildInto(target);
    if (!complete(target))
      throw new Error(`dist/ is incomplete and scripts/build.mjs did not produce ${ENTRIES.join(', ')}`);
    source = 'built with scripts/build.mjs';
  }
  return {
    dir: target,
    source,
    totalBytes: folderBytes(target),
    actionBytes: statSync(path.join(target, 'index.js')).size,
    cliBytes: statSync(path.join(target, 'cli', 'index.js')).size,
    cliRunBytes: statSync(path.join(target, 'cli', 'run.js')).size,
    actionRunBytes: statSync(path.join(target, 'run.js')).size,
    actionSha256: createHash('sha256')
      .update(readFileSync(path.join(target, 'index.js')))
      .digest('hex'),
  };
}
