// The machine set-up behind `npm test`, `npm run demo` and `npm run bench` (and so `.ci/run`): installs the
// Debian packages the lab needs (as root, with apt-get), then builds Istio's binaries when missing. Each step
// says what it does. Safe to run again: it does nothing when everything is in place.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MACHINE_REQUIREMENTS, installCommand, missingRequirements } from './requirements.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function say(line) {
  process.stdout.write(`setup: ${line}\n`);
}

function run(argv, env = {}) {
  const result = spawnSync(argv[0], argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...env }, cwd: ROOT });
  if (result.error) throw new Error(`${argv[0]}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`\`${argv.join(' ')}\` exited with ${result.status ?? result.signal}`);
}

function installDebianPackages() {
  const missing = missingRequirements();
  if (missing.length === 0) {
    say(`Debian packages: all ${MACHINE_REQUIREMENTS.length} programs the lab needs are installed`);
    return;
  }
  for (const r of missing) say(`missing ${r.program} (package ${r.debianPackage}): ${r.usedFor}`);
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the lab needs root and these Debian packages; run as root:\n  ${installCommand(missing)}\nthen run this command again`,
    );
  }
  const packages = [...new Set(missing.map((r) => r.debianPackage))];
  say(`installing with apt-get: ${packages.join(' ')}`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  run(['apt-get', 'update', '-qq'], env);
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages], env);
  const still = missingRequirements();
  if (still.length > 0) throw new Error(`still missing after apt-get: ${still.map((r) => r.program).join(', ')}`);
  say(`installed ${packages.join(' ')}`);
}

function buildIstio() {
  const script = path.join(ROOT, 'scripts', 'istio', 'build.sh');
  if (!existsSync(script)) return;
  run(['bash', script]);
}

try {
  installDebianPackages();
  buildIstio();
} catch (error) {
  process.stderr.write(`setup: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
