// Bundles the action (dist/index.js) and the CLI (dist/cli/index.js) with ncc, minified, so both run
// with plain `node` and no node_modules. Native addons (ssh2's optional sshcrypto, cpu-features) are
// left out on purpose: ssh2 falls back to pure JavaScript, and dist/ stays the same on every machine.
//
//   node scripts/build.mjs            write dist/
//   node scripts/build.mjs --out DIR  write the bundles somewhere else (used by check-dist)
import { createRequire } from 'node:module';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const ncc = require('@vercel/ncc');
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const ENTRIES = [
  // The action in two files, like the CLI: the entry prints the first line using @actions/core only, then
  // loads the second bundle (the Kubernetes client, SSH, the rollout: src/action.ts).
  { source: 'src/main.ts', output: 'index.js' },
  { source: 'src/action.ts', output: 'run.js' },
  // The post step (action.yml runs.post): removes what the main step left on the runner.
  { source: 'src/post.ts', output: 'post.js' },
  // The CLI in two files: the entry (render, rbac, help: no Kubernetes client, no SSH) loads the second
  // bundle (the Kubernetes client, SSH, the run commands) only when a command needs it
  // (src/cli/load-heavy.ts).
  // The package's bin: it starts with a shebang so npm can link it as the `istio-vm-onboard` command.
  { source: 'src/cli.ts', output: 'cli/index.js', bin: true },
  { source: 'src/cli/heavy.ts', output: 'cli/run.js' },
];

/** Assets we never ship: native builds and Windows helpers that ssh2 only uses when present. */
const isDroppedAsset = (name) => name.endsWith('.node') || name.endsWith('.exe');

export async function buildInto(outDir) {
  await rm(outDir, { recursive: true, force: true });
  const licenseLengths = new Map();
  for (const entry of ENTRIES) {
    const { code, assets } = await ncc(join(root, entry.source), {
      minify: true,
      target: 'es2022',
      sourceMap: false,
      quiet: true,
      license: 'licenses.txt',
    });
    const target = join(outDir, entry.output);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, entry.bin && !code.startsWith('#!') ? `#!/usr/bin/env node\n${code}` : code);
    if (entry.bin) await chmod(target, 0o755);
    for (const [name, asset] of Object.entries(assets)) {
      if (isDroppedAsset(name)) continue;
      const assetPath = join(dirname(target), name);
      // Bundles of one folder share licenses.txt: keep the longest (the bundle with every dependency).
      if (name === 'licenses.txt' && String(asset.source).length < (licenseLengths.get(assetPath) ?? 0)) continue;
      if (name === 'licenses.txt') licenseLengths.set(assetPath, String(asset.source).length);
      await mkdir(dirname(assetPath), { recursive: true });
      await writeFile(assetPath, asset.source);
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outFlag = process.argv.indexOf('--out');
  const outDir = outFlag > 0 ? resolve(process.argv[outFlag + 1]) : join(root, 'dist');
  await buildInto(outDir);
  console.log(`built ${ENTRIES.map((e) => e.output).join(', ')} into ${outDir}`);
}
