// The beforeAll of a suite on the real control plane: the pinned Istio build and the Envoy stand-in (no-ops
// when up to date, built here rather than inside `up`'s time budget), a lab with `--istiod real --sidecar real`,
// and one snapshot of dist/ for the whole file (others may rebuild the shared tree meanwhile).
import { snapshotDist } from './action-harness.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { newLabDir, upLab } from './testing.js';

export async function upRealLab(
  name: string,
  vms: number,
  extraArgs: string[] = [],
): Promise<{ dir: string; state: LabState; entry: string }> {
  istioBuild();
  realSidecarSources();
  const dir = newLabDir(name);
  const state = await upLab(dir, vms, ['--istiod', 'real', '--sidecar', 'real', ...extraArgs]);
  const entry = await snapshotDist(dir);
  return { dir, state, entry };
}
