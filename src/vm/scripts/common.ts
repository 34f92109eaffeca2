// The functions shared by the root scripts that change a VM (common.sh): the lock, the step runner,
// the installed-version query and the placement of staged files.
import { readFileSync } from 'node:fs';
import { ISTIO_PATHS, ONBOARD_PATHS } from '../paths.js';
import type { ShellPart } from './protocol.js';

const COMMON = readFileSync(new URL('./common.sh', import.meta.url), 'utf8');

/** The user of the istio-sidecar package (pilot-agent and Envoy run as it; istio-iptables spares its uid). */
export const ISTIO_PROXY_USER = 'istio-proxy';

export interface ChangeFunctionsOptions {
  /** How long to wait for another run's lock; default 30 s (at most 600). */
  lockWaitSeconds?: number;
  /** The user that owns the sidecar's files; default istio-proxy. */
  proxyUser?: string;
}

export function changeFunctions(options: ChangeFunctionsOptions = {}): ShellPart {
  return {
    values: {
      IVO_LOCK_FILE: ONBOARD_PATHS.lockFile,
      IVO_LOCK_WAIT: Math.max(0, Math.min(Math.floor(options.lockWaitSeconds ?? 30), 600)),
      IVO_PACKAGE_NAME: ISTIO_PATHS.packageName,
      IVO_PROXY_USER: options.proxyUser ?? ISTIO_PROXY_USER,
      IVO_PERSISTENT_TOKEN: ONBOARD_PATHS.persistentToken,
      IVO_RUNTIME_TOKEN: ISTIO_PATHS.runtimeToken,
    },
    text: COMMON,
  };
}
