// The pure part of planning a large fleet, through the shipped CLI: `dist/cli/index.js render
// --inventory` on a generated 1,000-VM inventory (10 groups × 100 VMs) parses and validates the
// inventory (schema, duplicate names/addresses, line numbers), lists every VM, renders its five files
// and writes them (5,000 files). No cluster and no VM is involved: `plan` mode itself also reads the
// cluster and inspects every VM over SSH, which this does not measure. Wall time and peak RSS from GNU
// time, median of the repetitions.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { run } from '../../test/lab/exec.js';
import { node24 } from '../../test/lab/testing.js';
import { runTimed } from './proc.js';

export interface PlanMeasurement {
  vms: number;
  /** Where the 5,000 files were written: a tmpfs (the tool's own cost) or this machine's disk. */
  output?: 'tmpfs' | 'disk';
  ok: boolean;
  problems: string[];
  wallMs: number;
  maxRssKiB: number;
  cpuS: number;
}

export const PLAN_VMS = 1000;
const GROUPS = 10;

export function fleetInventory(vms: number, groups: number): string {
  const perGroup = Math.ceil(vms / groups);
  const doc = {
    version: 1,
    mesh: { istioNamespace: 'istio-system', clusterID: 'Kubernetes', eastWestGateway: { address: '203.0.113.10' } },
    defaults: { user: 'ubuntu', port: 22, labels: { env: 'bench' } },
    groups: Array.from({ length: groups }, (_, g) => ({
      name: `svc-${g}`,
      namespace: `vm-${g}`,
      serviceAccount: `svc-${g}-sa`,
      labels: { app: `svc-${g}` },
      ports: { http: 8080, grpc: 9090 },
      probe: { httpGet: { port: 8080, path: '/healthz' } },
      service: true,
      vms: Array.from({ length: Math.min(perGroup, vms - g * perGroup) }, (_, i) => {
        const k = g * perGroup + i;
        return {
          name: `vm-${g}-${i}`,
          address: `10.${100 + g}.${Math.floor(i / 250)}.${(i % 250) + 1}`,
          internalIP: `172.${16 + g}.${Math.floor(i / 250)}.${(i % 250) + 1}`,
          labels: { zone: `z${k % 3}` },
        };
      }),
    })),
  };
  return stringify(doc);
}

const MESH_CONFIG = `defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  tracing:
    zipkin:
      address: zipkin.istio-system:9411
enablePrometheusMerge: true
rootNamespace: istio-system
trustDomain: cluster.local
`;

export async function measurePlan(distDir: string, repetitions: number): Promise<PlanMeasurement[]> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ivo-bench-plan-'));
  try {
    writeFileSync(path.join(scratch, 'inventory.yaml'), fleetInventory(PLAN_VMS, GROUPS));
    writeFileSync(path.join(scratch, 'mesh.txt'), MESH_CONFIG);
    await run(
      [
        'openssl',
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/O=cluster.local',
        '-keyout',
        path.join(scratch, 'root-key.pem'),
        '-out',
        path.join(scratch, 'root-cert.pem'),
      ],
      { timeoutMs: 30_000 },
    );
    // an opaque stand-in for the bootstrap token: render copies it, never parses it
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    writeFileSync(
      path.join(scratch, 'token'),
      `${b64({ alg: 'RS256' })}.${b64({ aud: ['istio-ca'], exp: 4102444800 })}.${'x'.repeat(342)}`,
      { mode: 0o600 },
    );
    const results: PlanMeasurement[] = [];
    // The files go to a tmpfs for the figure the goal judges (creating 5,000 files on this machine's
    // disk took from 0.2 to 3.4 s depending on what else wrote to it), and to the disk for context.
    const tmpfs = existsSync('/dev/shm') ? mkdtempSync(path.join('/dev/shm', 'ivo-bench-plan-')) : undefined;
    const runs: { output: 'tmpfs' | 'disk'; dir: string }[] = [
      ...(tmpfs ? Array.from({ length: repetitions }, () => ({ output: 'tmpfs' as const, dir: tmpfs })) : []),
      ...Array.from({ length: repetitions }, () => ({ output: 'disk' as const, dir: scratch })),
    ];
    try {
      for (const [i, { output, dir }] of runs.entries()) {
        const out = path.join(dir, `out-${i}`);
        const r = await runTimed(
          [
            node24(),
            path.join(distDir, 'cli', 'index.js'),
            'render',
            '--inventory',
            path.join(scratch, 'inventory.yaml'),
            '--mesh-config',
            path.join(scratch, 'mesh.txt'),
            '--root-cert',
            path.join(scratch, 'root-cert.pem'),
            '--token',
            path.join(scratch, 'token'),
            '-o',
            out,
          ],
          { timeoutMs: 120_000, cwd: scratch },
        );
        const problems: string[] = [];
        if (r.code !== 0) problems.push(`exit ${r.code ?? r.signal}: ${r.stderr.trim().split('\n')[0] ?? ''}`);
        let dirs = 0;
        try {
          dirs = readdirSync(out).filter((name) => readdirSync(path.join(out, name)).length === 5).length;
        } catch {
          dirs = 0;
        }
        if (dirs !== PLAN_VMS) problems.push(`${dirs} VM folder(s) with 5 files, expected ${PLAN_VMS}`);
        results.push({
          vms: PLAN_VMS,
          output,
          ok: problems.length === 0,
          problems,
          wallMs: r.wallMs,
          maxRssKiB: r.maxRssKiB,
          cpuS: r.cpuUserS + r.cpuSysS,
        });
        rmSync(out, { recursive: true, force: true });
      }
    } finally {
      if (tmpfs) rmSync(tmpfs, { recursive: true, force: true });
    }
    return results;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
