// Builds the lab's istio-sidecar.deb with dpkg-deb: Istio's real file paths, postinst effects and
// `istio` unit (see ../../../../shared/envoy-reference/packaging/istio-sidecar-deb.md), with the
// Envoy/pilot-agent simulator (test/lab/sidecar/main.ts, bundled) behind /usr/local/bin/{envoy,pilot-agent}.
import { createCipheriv, createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleForVm } from '../bundle.js';
import { run } from '../exec.js';
import { LAB_VM_NODE } from '../vm/root.js';
import { stageRealSidecar } from './real-sidecar.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FILES = path.join(HERE, 'files');
export const SIMULATOR_ENTRY = path.resolve(HERE, '..', 'sidecar', 'main.ts');
/** Where the package installs the bundled simulator on a VM. */
export const SIMULATOR_INSTALL_PATH = '/usr/local/lib/istio-lab/sidecar.mjs';
/** Fixed timestamps make two builds of the same inputs byte-identical (2024-01-01T00:00:00Z). */
const SOURCE_DATE_EPOCH = 1704067200;

export interface BuildPackageOptions {
  outDir: string;
  version: string;
  arch: 'amd64' | 'arm64';
  /** Pads the package with incompressible bytes up to about this many MiB (0 = no padding). */
  sizeMb?: number;
  /**
   * `simulator` (default): the Node Envoy/pilot-agent simulator. `real`: Istio's real pilot-agent, the Go
   * Envoy stand-in and Istio's own istio-start.sh, istio.service, sidecar.env and postinst (real-sidecar.ts).
   */
  sidecar?: 'simulator' | 'real';
  /** Packages this build depends on beyond the base ones (a new version's new dependency). */
  depends?: string[];
}

export interface BuiltPackage {
  path: string;
  fileName: string;
  sha256: string;
  sizeBytes: number;
  simulator: 'bundled' | 'placeholder' | 'real';
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

function copy(root: string, rel: string, from: string, mode = 0o644): void {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  copyFileSync(from, file);
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

function wrapper(binary: string): string {
  return [
    '#!/bin/sh',
    `# ${binary} of the istio lab: the Envoy/pilot-agent simulator; ISTIO_LAB_BINARY says which binary was called`,
    `ISTIO_LAB_BINARY=${binary} exec ${LAB_VM_NODE} ${SIMULATOR_INSTALL_PATH} "$@"`,
    '',
  ].join('\n');
}

export async function buildSidecarPackage(o: BuildPackageOptions): Promise<BuiltPackage> {
  const staging = path.join(o.outDir, `staging-${o.arch}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });

  const real = o.sidecar === 'real';
  // The simulator, or a placeholder that fails loudly when its entry (SIMULATOR_ENTRY) is missing.
  let simulator: BuiltPackage['simulator'] = 'placeholder';
  if (real) {
    stageRealSidecar(staging);
    simulator = 'real';
  } else {
    const simOut = path.join(staging, SIMULATOR_INSTALL_PATH.slice(1));
    mkdirSync(path.dirname(simOut), { recursive: true });
    if (existsSync(SIMULATOR_ENTRY)) {
      await bundleForVm(SIMULATOR_ENTRY, simOut);
      simulator = 'bundled';
    } else {
      copyFileSync(path.join(FILES, 'placeholder-sidecar.mjs'), simOut);
    }
    chmodSync(simOut, 0o644);

    put(staging, 'usr/local/bin/envoy', wrapper('envoy'), 0o755);
    put(staging, 'usr/local/bin/pilot-agent', wrapper('pilot-agent'), 0o755);
    copy(staging, 'usr/local/bin/istio-start.sh', path.join(FILES, 'istio-start.sh'), 0o755);
    copy(staging, 'lib/systemd/system/istio.service', path.join(FILES, 'istio.service'));
    copy(staging, 'var/lib/istio/envoy/sidecar.env', path.join(FILES, 'sidecar.env'));
    copy(staging, 'var/lib/istio/envoy/envoy_bootstrap_tmpl.json', path.join(FILES, 'envoy_bootstrap_tmpl.json'));
  }
  const padBytes = Math.max(0, Math.round((o.sizeMb ?? 0) * 1024 * 1024) - 64 * 1024);
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
      ...(real
        ? [
            " Lab build of the Istio sidecar package: Istio's pilot-agent, start script, unit,",
            " sidecar.env and postinst; the istio-vm-onboard lab's Envoy stand-in as envoy.",
          ]
        : [
            ' Lab build of the Istio sidecar package (same paths, postinst and istio unit as',
            " Istio's), running the istio-vm-onboard Envoy/pilot-agent simulator.",
          ]),
      '',
    ].join('\n'),
  );
  put(
    staging,
    'DEBIAN/conffiles',
    '/var/lib/istio/envoy/envoy_bootstrap_tmpl.json\n/var/lib/istio/envoy/sidecar.env\n',
  );
  if (!real) copy(staging, 'DEBIAN/postinst', path.join(FILES, 'postinst'), 0o755);
  touchTree(staging);

  const fileName = packageFileName(o.arch);
  const out = path.join(o.outDir, fileName);
  await run(
    ['dpkg-deb', '--root-owner-group', '-Zgzip', padBytes > 0 || real ? '-z1' : '-z9', '--build', staging, out],
    {
      env: { ...process.env, SOURCE_DATE_EPOCH: String(SOURCE_DATE_EPOCH) },
      timeoutMs: 120_000,
    },
  );
  rmSync(staging, { recursive: true, force: true });
  return { path: out, fileName, sha256: await sha256File(out), sizeBytes: statSync(out).size, simulator };
}
