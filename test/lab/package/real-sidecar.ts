// The real sidecar's contents of the lab's istio-sidecar.deb: Istio's own pilot-agent
// built from the pinned module, the lab's Envoy stand-in (Go, test/lab/envoy) as /usr/local/bin/envoy, and
// Istio's own packaging files taken from the module at build time (never copied into the repository):
//   tools/packaging/common/{istio-start.sh,istio.service,sidecar.env,envoy_bootstrap.json} (via
//   scripts/istio/build.sh → .istio/<pin>/packaging/) and tools/packaging/postinst.sh as DEBIAN/postinst
//   (tools/packaging/packaging.mk passes it to fpm as `--after-install`).
// The file list and modes follow tools/packaging/packaging.mk (SIDECAR_FILES) and
// ../shared/envoy-reference/packaging/istio-sidecar-deb.md.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { istioBuild } from '../istio/binaries.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ENVOY_STANDIN_DIR = path.resolve(HERE, '..', 'envoy');

/** The programs and files of the real sidecar, on the host, ready to stage. */
export interface RealSidecarSources {
  pilotAgent: string;
  envoy: string;
  packagingDir: string;
  postinst: string;
  /** What the binaries report, e.g. 1.31-dev-eed52ebb. */
  istioVersion: string;
}

/**
 * Builds (or finds up to date) Istio's pilot-agent and the Envoy stand-in, and locates Istio's packaging
 * files. Both builds print progress and stop with a message without Go ≥ 1.26 — never a silent fallback.
 */
export function realSidecarSources(): RealSidecarSources {
  const build = istioBuild();
  try {
    execFileSync('bash', [path.join(ENVOY_STANDIN_DIR, 'build.sh')], {
      stdio: ['ignore', 2, 2],
      timeout: 30 * 60_000,
    });
  } catch (e) {
    throw new Error(`test/lab/envoy/build.sh failed (${(e as Error).message}); its message is above`, { cause: e });
  }
  const envoy = path.join(ENVOY_STANDIN_DIR, '.bin', 'envoy');
  const modCache = execFileSync('go', ['env', 'GOMODCACHE'], {
    encoding: 'utf8',
    env: { ...process.env, GOTOOLCHAIN: 'local' },
  }).trim();
  // istio.io/istio has no upper-case letters, so its module-cache folder needs no case encoding.
  const postinst = path.join(modCache, `${build.module}@${build.moduleVersion}`, 'tools', 'packaging', 'postinst.sh');
  for (const f of [envoy, postinst]) if (!existsSync(f)) throw new Error(`real sidecar package: ${f} is missing`);
  return {
    pilotAgent: build.pilotAgent,
    envoy,
    packagingDir: build.packagingDir,
    postinst,
    istioVersion: build.version,
  };
}

function copy(root: string, rel: string, from: string, mode: number): void {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  copyFileSync(from, file);
  chmodSync(file, mode);
}

/** Stages the real sidecar's files under `staging` (the package root; DEBIAN/postinst included). */
export function stageRealSidecar(staging: string, sources: RealSidecarSources = realSidecarSources()): void {
  const pkg = (name: string) => path.join(sources.packagingDir, name);
  copy(staging, 'usr/local/bin/pilot-agent', sources.pilotAgent, 0o755);
  copy(staging, 'usr/local/bin/envoy', sources.envoy, 0o755);
  copy(staging, 'usr/local/bin/istio-start.sh', pkg('istio-start.sh'), 0o755);
  copy(staging, 'lib/systemd/system/istio.service', pkg('istio.service'), 0o644);
  copy(staging, 'var/lib/istio/envoy/sidecar.env', pkg('sidecar.env'), 0o644);
  copy(staging, 'var/lib/istio/envoy/envoy_bootstrap_tmpl.json', pkg('envoy_bootstrap.json'), 0o644);
  copy(staging, 'DEBIAN/postinst', sources.postinst, 0o755);
}
