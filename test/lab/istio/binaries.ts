// Istio's own programs for the lab: built from the Go module pinned in scripts/istio/version.env by
// scripts/istio/build.sh (a no-op when `.istio/<pin>/` is up to date). No stand-ins here.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..', '..');
const BUILD_SCRIPT = path.join(REPO_ROOT, 'scripts', 'istio', 'build.sh');
const VERSION_ENV = path.join(REPO_ROOT, 'scripts', 'istio', 'version.env');

export interface IstioBuild {
  /** Go module path and version, e.g. istio.io/istio@v0.0.0-2026… */
  module: string;
  moduleVersion: string;
  /** What the binaries report (`pilot-discovery version`), e.g. 1.31-dev-eed52ebb. */
  version: string;
  pilotDiscovery: string;
  pilotAgent: string;
  istioctl: string;
  /** Istio's tools/packaging/common files: istio-start.sh, istio.service, sidecar.env, envoy_bootstrap.json. */
  packagingDir: string;
}

/** KEY=value lines of scripts/istio/version.env (the one place the pin lives). */
export function istioPin(): { module: string; version: string } {
  const env = new Map<string, string>();
  for (const line of readFileSync(VERSION_ENV, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) env.set(m[1] as string, m[2] as string);
  }
  const module = env.get('ISTIO_MODULE');
  const version = env.get('ISTIO_MODULE_VERSION');
  if (!module || !version) throw new Error(`${VERSION_ENV}: ISTIO_MODULE and ISTIO_MODULE_VERSION are required`);
  return { module, version };
}

let built: IstioBuild | undefined;

/**
 * Runs scripts/istio/build.sh (progress on stderr; seconds when up to date, minutes cold) and returns
 * the paths. Throws with the script's message when Go is missing or the build fails — never skips.
 */
export function istioBuild(): IstioBuild {
  if (built) return built;
  const pin = istioPin();
  try {
    // Progress and errors go straight to our stderr (a cold build takes minutes).
    execFileSync('bash', [BUILD_SCRIPT], { cwd: REPO_ROOT, stdio: ['ignore', 2, 2], timeout: 60 * 60_000 });
  } catch (e) {
    throw new Error(`scripts/istio/build.sh failed (${(e as Error).message}); its message is above`, { cause: e });
  }
  const out = path.join(REPO_ROOT, '.istio', pin.version);
  const result: IstioBuild = {
    module: pin.module,
    moduleVersion: pin.version,
    version: readFileSync(path.join(out, 'version'), 'utf8').trim(),
    pilotDiscovery: path.join(out, 'bin', 'pilot-discovery'),
    pilotAgent: path.join(out, 'bin', 'pilot-agent'),
    istioctl: path.join(out, 'bin', 'istioctl'),
    packagingDir: path.join(out, 'packaging'),
  };
  for (const p of [result.pilotDiscovery, result.pilotAgent, result.istioctl, result.packagingDir]) {
    if (!existsSync(p)) throw new Error(`scripts/istio/build.sh finished but ${p} is missing`);
  }
  built = result;
  return result;
}

const XDS_PROBE_SRC = path.join(HERE, 'xds-probe');

/**
 * Builds test/lab/istio/xds-probe (Istio's pkg/adsc as a proxy's ADS connection) into
 * `.istio/<pin>/bin/xds-probe` unless it is newer than its sources. Seconds with Go's build cache warm
 * from the Istio build (same module versions).
 */
export function xdsProbe(): string {
  const build = istioBuild();
  const out = path.join(path.dirname(build.pilotAgent), 'xds-probe');
  const sources = ['main.go', 'go.mod', 'go.sum'].map((f) => path.join(XDS_PROBE_SRC, f));
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (existsSync(out) && statSync(out).mtimeMs >= newest) return out;
  execFileSync('go', ['build', '-o', out, '.'], {
    cwd: XDS_PROBE_SRC,
    stdio: ['ignore', 2, 2],
    timeout: 30 * 60_000,
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false' },
  });
  return out;
}
