// Builds the lab's istio-sidecar.deb with dpkg-deb, laid out as Istio's (see
// ../../../../shared/envoy-reference/packaging/istio-sidecar-deb.md): Istio's real pilot-agent, istio-start.sh,
// istio.service, sidecar.env and postinst taken from the module at build time, and the lab's Envoy stand-in
// as /usr/local/bin/envoy (package/real-sidecar.ts).
import { createCipheriv, createHash } from 'node:crypto';
import {
  chmodSync,
  createReadStream,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { run } from '../exec.js';
import { stageRealSidecar } from './real-sidecar.js';

/** Fixed timestamps make two builds of the same inputs byte-identical (2024-01-01T00:00:00Z). */
const SOURCE_DATE_EPOCH = 1704067200;

export interface BuildPackageOptions {
  outDir: string;
  version: string;
  arch: 'amd64' | 'arm64';
  /** The package's size to pad up to, in MiB, when it is smaller (0 = no padding). */
  sizeMb?: number;
  /** Packages this build depends on beyond the base ones (a new version's new dependency). */
  depends?: string[];
}

export interface BuiltPackage {
  path: string;
  fileName: string;
  sha256: string;
  sizeBytes: number;
}

/** Istio's file name for the package of an architecture (amd64 has no suffix). */
export function packageFileName(arch: string): string {
  return arch === 'amd64' ? 'istio-sidecar.deb' : `istio-sidecar-${arch}.deb`;
}

function put(root: string, rel: string, content: string | Buffer, mode = 0o644): void {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  chmodSync(file, mode);
}

/** Deterministic incompressible bytes (AES-256-CTR keystream of a fixed key). */
function paddingBytes(size: number): Buffer {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 0));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

function touchTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) touchTree(p);
    utimesSync(p, SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH);
  }
  utimesSync(dir, SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH);
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The package of Istio's sidecar; with `sizeMb` larger than that, padded with incompressible bytes so that the
 * download weighs about that much (the real pilot-agent already weighs tens of MiB: a smaller size adds nothing).
 */
export async function buildSidecarPackage(o: BuildPackageOptions): Promise<BuiltPackage> {
  const unpadded = await buildPackageFile(o, 0);
  const target = Math.round((o.sizeMb ?? 0) * 1024 * 1024);
  if (unpadded.sizeBytes + 64 * 1024 >= target) return unpadded;
  return buildPackageFile(o, target - unpadded.sizeBytes);
}

async function buildPackageFile(o: BuildPackageOptions, padBytes: number): Promise<BuiltPackage> {
  const staging = path.join(o.outDir, `staging-${o.arch}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });

  stageRealSidecar(staging);
  if (padBytes > 0) put(staging, 'usr/local/lib/istio-lab/padding.bin', paddingBytes(padBytes));

  const installedKb = Math.ceil(Number((await run(['du', '-sk', '--apparent-size', staging])).stdout.split(/\s/)[0]));
  put(
    staging,
    'DEBIAN/control',
    [
      'Package: istio-sidecar',
      `Version: ${o.version}`,
      `Architecture: ${o.arch}`,
      'Maintainer: istio-vm-onboard lab <lab@istio-vm-onboard.invalid>',
      `Installed-Size: ${installedKb}`,
      `Depends: ${['iproute2', 'iptables', 'sudo', 'hostname', ...(o.depends ?? [])].join(', ')}`,
      'Section: default',
      'Priority: optional',
      'Homepage: https://istio.io',
      'Description: Istio Sidecar',
      " Lab build of the Istio sidecar package: Istio's pilot-agent, start script, unit,",
      " sidecar.env and postinst; the istio-vm-onboard lab's Envoy stand-in as envoy.",
      '',
    ].join('\n'),
  );
  put(
    staging,
    'DEBIAN/conffiles',
    '/var/lib/istio/envoy/envoy_bootstrap_tmpl.json\n/var/lib/istio/envoy/sidecar.env\n',
  );
  touchTree(staging);

  const fileName = packageFileName(o.arch);
  const out = path.join(o.outDir, fileName);
  await run(['dpkg-deb', '--root-owner-group', '-Zgzip', '-z1', '--build', staging, out], {
    env: { ...process.env, SOURCE_DATE_EPOCH: String(SOURCE_DATE_EPOCH) },
    timeoutMs: 120_000,
  });
  rmSync(staging, { recursive: true, force: true });
  return { path: out, fileName, sha256: await sha256File(out), sizeBytes: statSync(out).size };
}
