// Lab index allocation: `mkdir /run/ivo-lab/<k>` is atomic, so two `up`s never get the same k.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LAB_RUN_DIR, MAX_LABS, bridgeName } from './addresses.js';

function ownerFile(k: number): string {
  return path.join(LAB_RUN_DIR, String(k), 'owner');
}

/** A lab index whose owning DIR is gone and whose bridge does not exist can be reused. */
function isStale(k: number): boolean {
  let owner: string;
  try {
    owner = readFileSync(ownerFile(k), 'utf8').trim();
  } catch {
    return false; // being created right now, or foreign: leave it
  }
  return !existsSync(path.join(owner, 'state.json')) && !existsSync(`/sys/class/net/${bridgeName(k)}`);
}

export function allocateLabIndex(dir: string): number {
  mkdirSync(LAB_RUN_DIR, { recursive: true });
  for (let pass = 0; pass < 2; pass++) {
    for (let k = 0; k < MAX_LABS; k++) {
      const d = path.join(LAB_RUN_DIR, String(k));
      if (pass === 1 && existsSync(d) && isStale(k)) rmSync(d, { recursive: true, force: true });
      try {
        mkdirSync(d);
      } catch {
        continue;
      }
      writeFileSync(ownerFile(k), dir + '\n');
      return k;
    }
  }
  throw new Error(
    `no free lab index in ${LAB_RUN_DIR} (0..${MAX_LABS - 1} all taken; run \`npm run lab -- down --dir DIR\` for old labs)`,
  );
}

export function releaseLabIndex(k: number, dir: string): void {
  try {
    const owner = readFileSync(ownerFile(k), 'utf8').trim();
    if (owner !== dir) return; // someone else's now
  } catch {
    if (!existsSync(path.join(LAB_RUN_DIR, String(k)))) return;
  }
  rmSync(path.join(LAB_RUN_DIR, String(k)), { recursive: true, force: true });
}
