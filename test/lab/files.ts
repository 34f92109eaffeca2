// The files `up` writes into DIR for the action and for tests: inventory.yaml, known_hosts, action.env.
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { LabState } from './state.js';

export const GROUP = { name: 'app', namespace: 'vm-app', serviceAccount: 'vm-app', labels: { app: 'vm-app' } };

export function inventoryYaml(state: LabState): string {
  const doc = {
    mesh: { istioNamespace: state.istiod?.istioNamespace ?? 'istio-system' },
    groups: [
      {
        name: GROUP.name,
        namespace: GROUP.namespace,
        serviceAccount: GROUP.serviceAccount,
        labels: GROUP.labels,
        ports: { http: state.appPort },
        registration: 'auto',
        probe: { httpGet: { port: state.appPort, path: '/' } },
        vms: state.vms.map((vm) => ({
          name: vm.name,
          address: vm.ip,
          ...(vm.sshPort !== 22 ? { port: vm.sshPort } : {}),
          user: state.user,
          internalIP: vm.ip,
        })),
      },
    ],
  };
  return `# Lab inventory written by \`npm run lab -- up\` (lab ${state.labIndex}, ${state.dir})\n` + stringify(doc);
}

export function knownHostsLine(ip: string, port: number, publicKey: string): string {
  const host = port === 22 ? ip : `[${ip}]:${port}`;
  const [type, key] = publicKey.trim().split(/\s+/);
  return `${host} ${type} ${key}`;
}

/**
 * `KEY=value` lines, unquoted; a value may hold spaces (a lab under a path with spaces) but no line break.
 * The action's names contain hyphens (INPUT_SIDECAR-PACKAGE-URL, as GitHub sets them), so read the file
 * as one KEY=value pair per line (`(IFS=$'\n'; set -f; env $(cat action.env) node dist/index.js)`, or
 * parseActionEnv) rather than with `source`.
 */
export function actionEnv(inputs: Record<string, string>): string {
  const lines = Object.entries(inputs).map(([k, v]) => {
    if (/[\r\n\0]/.test(v)) throw new Error(`action.env value for ${k} contains a line break`);
    return `${k}=${v}`;
  });
  return lines.join('\n') + '\n';
}

export function parseActionEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export function writeLabFile(file: string, content: string, mode = 0o644): void {
  writeFileSync(file, content, { mode });
}
