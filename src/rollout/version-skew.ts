// Istio's control plane / data plane skew rule, applied before any VM is touched: the sidecar version a run
// installs against the version of the istiod it connects to.
//   "The Istio control plane can be one version ahead of the data plane. However, the data plane cannot be
//    ahead of control plane." — https://istio.io/latest/docs/releases/supported-releases/#control-planedata-plane-skew
// Versions compare by major.minor only (the policy speaks of minor versions; patches never skew).

export const SKEW_POLICY_URL = 'https://istio.io/latest/docs/releases/supported-releases/#control-planedata-plane-skew';

/** How many minor versions the data plane may lag the control plane (the policy above). */
export const MAX_DATA_PLANE_LAG = 1;

/** The hint id of a refused skew (README, troubleshooting). */
export const SKEW_HINT_ID = 'version-skew';

export interface MinorVersion {
  major: number;
  minor: number;
}

/**
 * major.minor of an Istio version as releases (1.24.2, v1.24.2), pre-releases (1.25.0-beta.1), packages
 * (1.24.2-1) and development builds (1.31-dev-eed52ebb, 1.28-alpha.<sha>: no patch) spell it; undefined
 * when it has none.
 */
export function parseMinorVersion(version: string): MinorVersion | undefined {
  const m = /^v?(\d+)\.(\d+)(?:$|[.\-+~])/.exec(version.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

export type SkewVerdict =
  | { ok: true }
  | { ok: false; unknown: true; reason: string }
  | { ok: false; unknown?: false; rule: string; message: string };

/** Whether a sidecar of `dataPlane` is supported with an istiod of `controlPlane`. */
export function checkVersionSkew(dataPlane: string, controlPlane: string): SkewVerdict {
  const data = parseMinorVersion(dataPlane);
  const control = parseMinorVersion(controlPlane);
  if (!data || !control) {
    return {
      ok: false,
      unknown: true,
      reason: `cannot compare sidecar ${dataPlane || '(none)'} with istiod ${controlPlane || '(unknown)'}`,
    };
  }
  const name = (v: MinorVersion) => `${v.major}.${v.minor}`;
  if (data.major !== control.major) {
    return {
      ok: false,
      rule: 'the data plane and the control plane must share the major version',
      message:
        `sidecar ${dataPlane} (${name(data)}) and istiod ${controlPlane} (${name(control)}) ` +
        'differ in major version',
    };
  }
  if (data.minor > control.minor) {
    return {
      ok: false,
      rule: 'the data plane cannot be ahead of the control plane',
      message: `sidecar ${dataPlane} (${name(data)}) is newer than istiod ${controlPlane} (${name(control)})`,
    };
  }
  if (control.minor - data.minor > MAX_DATA_PLANE_LAG) {
    return {
      ok: false,
      rule: `the control plane can be at most ${MAX_DATA_PLANE_LAG} minor version ahead of the data plane`,
      message:
        `sidecar ${dataPlane} (${name(data)}) is ${control.minor - data.minor} minor versions behind istiod ` +
        `${controlPlane} (${name(control)})`,
    };
  }
  return { ok: true };
}

/** The error a refused skew stops the run with: the rule, its source and what to do. */
export class VersionSkewError extends Error {
  readonly hint: string;
  readonly hintId = SKEW_HINT_ID;
  constructor(verdict: Extract<SkewVerdict, { rule: string }>) {
    super(`unsupported version skew: ${verdict.message}; Istio's rule: ${verdict.rule} (${SKEW_POLICY_URL})`);
    this.hint =
      `[${SKEW_HINT_ID}] set istio-version to a release of istiod's minor version or the one before it ` +
      "(or leave it empty to install istiod's own version); upgrade istiod first to go further";
  }
}
