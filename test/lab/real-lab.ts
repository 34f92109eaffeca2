// The beforeAll every suite on real Istio shares: the Istio build and the sidecar package's sources (no-ops
// when up to date, built here rather than inside `up`'s time budget), a lab on the real control plane
// (Istio's istiod and pilot-agent, the Go Envoy stand-in, the Pod runner),
// and the bundled action pinned for the file (see snapshotDist).
import { snapshotDist } from './action-harness.js';
import { istioBuild } from './istio/binaries.js';
import { realSidecarSources } from './package/real-sidecar.js';
import type { LabState } from './state.js';
import { downLab, newLabDir, upLab } from './testing.js';

export async function upRealLab(
  name: string,
  vms: number,
  extraArgs: string[] = [],
): Promise<{ dir: string; state: LabState; entry: string }> {
  istioBuild();
  realSidecarSources();
  const dir = newLabDir(name);
  const state = await upLab(dir, vms, extraArgs);
  try {
    return { dir, state, entry: await snapshotDist(dir) };
  } catch (e) {
    // `up` cleans up after itself when it fails; past it, the lab is ours to take down.
    await downLab(dir);
    throw e;
  }
}
