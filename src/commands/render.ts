// `istio-vm-onboard render`: the offline equivalent of `istioctl x workload entry configure`, with
// istioctl's flag names. Inputs come from files (mesh config text, root cert, token) instead of a
// live cluster; output is cluster.env, mesh.yaml, hosts, root-cert.pem and istio-token per VM.

import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { loadHeavy } from '../cli/load-heavy.js';
import { InventoryError, listVms, loadInventory } from '../inventory/index.js';
import {
  istiodHost,
  parseWorkloadGroupText,
  readWorkloadGroup,
  renderVmFiles,
  renderVmFilesForInventoryVm,
  RenderError,
  type VmFiles,
} from '../render/index.js';

export interface RenderCommandIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  cwd: string;
}

export const RENDER_USAGE = `Usage:
  istio-vm-onboard render -f workloadgroup.yaml --mesh-config mesh.txt --root-cert root-cert.pem \\
      --token token-file --clusterID ID [--ingressIP IP] [--internalIP IP | --externalIP IP] \\
      [--revision REV] [--istioNamespace NS] [--autoregister] [--capture-dns=false] -o DIR
  istio-vm-onboard render --inventory inventory.yaml --mesh-config mesh.txt --root-cert root-cert.pem \\
      --token token-file [--clusterID ID] [--ingressIP IP] [--revision REV] [--istioNamespace NS] \\
      [--capture-dns=false] -o DIR

  istio-vm-onboard render -f workloadgroup.yaml --kubeconfig FILE [--context NAME] \
      [--internalIP IP | --externalIP IP] [--autoregister] [--tokenDuration SECONDS] -o DIR
  istio-vm-onboard render --name NAME -n NAMESPACE --kubeconfig FILE [--context NAME] \
      [--internalIP IP | --externalIP IP] [--autoregister] [--tokenDuration SECONDS] -o DIR

Writes cluster.env, mesh.yaml, hosts, root-cert.pem and istio-token (mode 0600) exactly as
'istioctl x workload entry configure' would; with --inventory, into DIR/<vm-name>/ for every VM.
With --kubeconfig the mesh config, root cert, cluster ID, east-west gateway address (an LB hostname is
resolved by DNS) and a bootstrap token are read from the cluster, as istioctl does; a flag given
explicitly wins over the cluster's value.

  -f, --file          WorkloadGroup YAML (as for istioctl -f)
      --name          name of a WorkloadGroup to read from the cluster (with -n and --kubeconfig; as istioctl)
  -n, --namespace     namespace of that WorkloadGroup
      --inventory     inventory file (or inline YAML); one folder per VM
      --mesh-config   file with the text of the 'mesh' key of configmap istio (istio-REV)
      --root-cert     file with root-cert.pem of configmap istio-ca-root-cert
      --token         file with the bootstrap token (audience istio-ca)
      --clusterID     cluster ID (default with --inventory: mesh.clusterID)
      --ingressIP     east-west gateway IP for the hosts file (default with --inventory:
                      mesh.eastWestGateway.address)
      --internalIP    workload IP of the VM (-f only; with --inventory: each VM's internalIP)
      --externalIP    external IP of the VM (-f only; with --inventory: each VM's externalIP)
      --revision      istiod revision (default with --inventory: mesh.revision)
      --istioNamespace  istiod namespace (default istio-system, or mesh.istioNamespace)
      --autoregister  set ISTIO_META_AUTO_REGISTER_GROUP (-f only; with --inventory: registration: auto)
      --capture-dns   true|false, default true
      --kubeconfig    read the values above from this cluster (with -f)
      --context       kubeconfig context
      --tokenDuration bootstrap token lifetime in seconds (default 3600, like istioctl)
      --dns-servers   resolvers (ip[:port],…) for a hostname load balancer
  -o, --output        output directory
  -h, --help          this help
`;

class UsageError extends Error {}

const BOOLEAN_FLAGS = ['autoregister', 'capture-dns'] as const;

/** node:util parseArgs has no `--flag=false`; turn istioctl-style booleans into string options. */
function normalizeBooleanFlags(argv: string[]): string[] {
  return argv.map((arg) => {
    for (const flag of BOOLEAN_FLAGS) if (arg === `--${flag}`) return `--${flag}=true`;
    return arg;
  });
}

function parseBoolean(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new UsageError(`--${name} must be true or false, got '${value}'`);
}

async function readInput(cwd: string, flag: string, file: string): Promise<string> {
  try {
    return await readFile(path.resolve(cwd, file), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(
      `cannot read --${flag} file ${path.resolve(cwd, file)} (${code === 'ENOENT' ? 'no such file' : code})`,
    );
  }
}

/** VMs whose files are written at once by `render --inventory` (file system latency, not CPU, is the limit). */
const WRITE_CONCURRENCY = 16;

/** Write the five files (at once); the token is readable by its owner only. */
async function writeVmFiles(dir: string, files: VmFiles): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tokenPath = path.join(dir, 'istio-token');
  await Promise.all([
    writeFile(path.join(dir, 'cluster.env'), files.clusterEnv, { mode: 0o644 }),
    writeFile(path.join(dir, 'mesh.yaml'), files.meshYaml, { mode: 0o644 }),
    writeFile(path.join(dir, 'hosts'), files.hosts, { mode: 0o644 }),
    writeFile(path.join(dir, 'root-cert.pem'), files.rootCert, { mode: 0o644 }),
    // an existing file keeps its old mode on writeFile: chmod after writing
    writeFile(tokenPath, files.token, { mode: 0o600 }).then(() => chmod(tokenPath, 0o600)),
  ]);
}

export async function runRenderCommand(argv: string[], io: RenderCommandIo): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: normalizeBooleanFlags(argv),
      strict: true,
      allowPositionals: false,
      options: {
        file: { type: 'string', short: 'f' },
        name: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        inventory: { type: 'string' },
        'mesh-config': { type: 'string' },
        'root-cert': { type: 'string' },
        token: { type: 'string' },
        clusterID: { type: 'string' },
        ingressIP: { type: 'string' },
        internalIP: { type: 'string' },
        externalIP: { type: 'string' },
        revision: { type: 'string' },
        istioNamespace: { type: 'string' },
        autoregister: { type: 'string' },
        'capture-dns': { type: 'string' },
        output: { type: 'string', short: 'o' },
        kubeconfig: { type: 'string' },
        context: { type: 'string' },
        tokenDuration: { type: 'string' },
        'dns-servers': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    io.stderr.write(`render: ${(error as Error).message}\n\n${RENDER_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(RENDER_USAGE);
    return 0;
  }
  const str = (name: string): string | undefined => values[name] as string | undefined;
  try {
    const file = str('file');
    const inventoryInput = str('inventory');
    const groupName = str('name');
    const sources = [file, inventoryInput, groupName].filter((v) => v !== undefined).length;
    if (sources !== 1) {
      throw new UsageError(
        'give exactly one of -f/--file (a WorkloadGroup), --name with -n (a WorkloadGroup in the ' +
          'cluster) or --inventory',
      );
    }
    const live = str('kubeconfig') !== undefined;
    if (groupName !== undefined && !live)
      throw new UsageError('--name reads the WorkloadGroup from the cluster: give --kubeconfig too');
    if (groupName !== undefined && !str('namespace'))
      throw new UsageError('--name needs -n/--namespace (the WorkloadGroup namespace)');
    if (groupName === undefined && str('namespace') !== undefined)
      throw new UsageError(
        '-n/--namespace goes with --name (with -f the namespace is the WorkloadGroup metadata.namespace)',
      );
    if (live && inventoryInput !== undefined)
      throw new UsageError(
        '--kubeconfig goes with -f or --name (a WorkloadGroup); for an inventory use `istio-vm-onboard plan`',
      );
    const missing = (live ? ['output'] : ['mesh-config', 'root-cert', 'token', 'output']).filter((name) => !str(name));
    if (file !== undefined && !live && !str('clusterID')) missing.push('clusterID');
    if (missing.length > 0)
      throw new UsageError(`missing required flag(s): ${missing.map((m) => `--${m}`).join(', ')}`);
    if (str('internalIP') && str('externalIP'))
      throw new UsageError('the flags --internalIP and --externalIP are mutually exclusive');
    const captureDNS = parseBoolean('capture-dns', str('capture-dns'), true);
    const autoregister = parseBoolean('autoregister', str('autoregister'), false);
    const outputDir = path.resolve(io.cwd, str('output')!);

    if (file !== undefined || groupName !== undefined) {
      const workloadGroup =
        groupName !== undefined
          ? await fetchWorkloadGroup(io, str, str('namespace')!, groupName)
          : parseWorkloadGroupText(await readInput(io.cwd, 'file', file!));
      const istioNamespace = str('istioNamespace') ?? 'istio-system';
      const revision = str('revision');
      const values = live
        ? await readFromCluster(io, workloadGroup, str, istioNamespace, revision ?? '')
        : {
            meshConfigText: await readInput(io.cwd, 'mesh-config', str('mesh-config')!),
            rootCert: await readInput(io.cwd, 'root-cert', str('root-cert')!),
            token: await readInput(io.cwd, 'token', str('token')!),
            clusterID: str('clusterID')!,
            ingressIP: str('ingressIP'),
          };
      const ingressIP = values.ingressIP;
      const files = renderVmFiles({
        workloadGroup,
        meshConfigText: values.meshConfigText,
        rootCert: values.rootCert,
        token: values.token,
        clusterID: values.clusterID,
        ...(ingressIP !== undefined ? { ingressIP } : {}),
        ...(str('internalIP') ? { internalIP: str('internalIP')! } : {}),
        ...(str('externalIP') ? { externalIP: str('externalIP')! } : {}),
        ...(revision !== undefined ? { revision } : {}),
        istioNamespace,
        autoregister,
        captureDNS,
      });
      if (files.hosts === '') {
        io.stderr.write(
          `warning: no hosts entry for ${istiodHost(istioNamespace, revision)}: give --ingressIP ` +
            `with the east-west gateway's IP\n`,
        );
      }
      await writeVmFiles(outputDir, files);
      io.stdout.write(`Configuration generation into directory ${outputDir} was successful\n`);
      return 0;
    }

    for (const flag of ['internalIP', 'externalIP', 'autoregister']) {
      if (str(flag) !== undefined) {
        throw new UsageError(`--${flag} cannot be used with --inventory: it comes from each VM/group in the inventory`);
      }
    }
    const meshConfigText = await readInput(io.cwd, 'mesh-config', str('mesh-config')!);
    const rootCert = await readInput(io.cwd, 'root-cert', str('root-cert')!);
    const token = await readInput(io.cwd, 'token', str('token')!);
    const inventory = await loadInventory(inventoryInput!, io.cwd);
    const mesh = {
      ...inventory.mesh,
      ...(str('revision') !== undefined ? { revision: str('revision')! } : {}),
      ...(str('istioNamespace') !== undefined ? { istioNamespace: str('istioNamespace')! } : {}),
    };
    const clusterID = str('clusterID') ?? mesh.clusterID;
    if (clusterID === undefined) throw new UsageError('missing --clusterID (or mesh.clusterID in the inventory)');
    const ingressIP = str('ingressIP');
    const rendered: { name: string; files: VmFiles }[] = [];
    for (const { group, vm } of listVms(inventory)) {
      const files = renderVmFilesForInventoryVm({
        mesh,
        group,
        vm,
        meshConfigText,
        rootCert,
        token,
        clusterID,
        captureDNS,
        ...(ingressIP !== undefined ? { ingressIP } : {}),
      });
      rendered.push({ name: vm.name, files });
    }
    // Render everything first, so a bad input writes nothing; then write, a bounded number of VMs at once.
    for (const { name, files } of rendered) {
      if (files.hosts === '')
        io.stderr.write(
          `warning: ${name}: no hosts entry: give --ingressIP or mesh.eastWestGateway.address as an IP\n`,
        );
    }
    const limit = pLimit(WRITE_CONCURRENCY);
    await Promise.all(rendered.map(({ name, files }) => limit(() => writeVmFiles(path.join(outputDir, name), files))));
    io.stdout.write(`Configuration for ${rendered.length} VM(s) written to ${outputDir}/<vm-name>/\n`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`render: ${error.message}\n\n${RENDER_USAGE}`);
      return 2;
    }
    if (error instanceof InventoryError || error instanceof RenderError) {
      io.stderr.write(`render: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

/** The kubeconfig flags as a Kubernetes client (loaded only in the live modes). */
async function clusterClientFromFlags(io: RenderCommandIo, str: (name: string) => string | undefined) {
  const kubeconfigPath = path.resolve(io.cwd, str('kubeconfig')!);
  const { createClusterClient, loadKubeConfig } = await loadHeavy();
  const loaded = loadKubeConfig({ kubeconfigPath, ...(str('context') ? { context: str('context')! } : {}) });
  const dnsServers = (str('dns-servers') ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  return createClusterClient(loaded.kubeConfig, dnsServers.length > 0 ? { dnsServers } : {});
}

/** `--name N -n NS`: the WorkloadGroup as the API serves it (istioctl: NetworkingV1().WorkloadGroups(ns).Get). */
async function fetchWorkloadGroup(
  io: RenderCommandIo,
  str: (name: string) => string | undefined,
  namespace: string,
  name: string,
): Promise<unknown> {
  const client = await clusterClientFromFlags(io, str);
  const object = await client.getWorkloadGroup(namespace, name);
  if (object === undefined) throw new RenderError(`workloadgroup ${name} not found in namespace ${namespace}`);
  return object;
}

/**
 * What istioctl reads from a live cluster for one WorkloadGroup: the mesh config, the group
 * namespace's root cert, the cluster ID, the east-west gateway address and a bootstrap token.
 * Explicit flags win. The token never reaches the output streams.
 */
async function readFromCluster(
  io: RenderCommandIo,
  workloadGroup: unknown,
  str: (name: string) => string | undefined,
  istioNamespace: string,
  revision: string,
): Promise<{
  meshConfigText: string;
  rootCert: string;
  token: string;
  clusterID: string;
  ingressIP: string | undefined;
}> {
  const group = readWorkloadGroup(workloadGroup);
  if (!group.namespace)
    throw new UsageError('the WorkloadGroup needs metadata.namespace to read its root cert and token from the cluster');
  const duration = str('tokenDuration') ?? '3600';
  if (!/^\d+$/.test(duration)) throw new UsageError(`--tokenDuration must be a number of seconds, got '${duration}'`);
  // Loaded only in this live mode: the offline render needs no Kubernetes client.
  const client = await clusterClientFromFlags(io, str);
  const mesh = await client.readMeshContext({
    namespace: group.namespace,
    revision,
    istioNamespace,
    ...(str('clusterID') ? { clusterID: str('clusterID')! } : {}),
    eastWestGateway: {
      service: 'istio-eastwestgateway',
      namespace: istioNamespace,
      ...(str('ingressIP') ? { address: str('ingressIP')! } : {}),
    },
  });
  if (mesh.eastWest.hostname) {
    io.stderr.write(
      `east-west gateway ${mesh.eastWest.hostname} resolved to ` +
        `${mesh.eastWest.candidates.join(', ')}; using ${mesh.eastWest.address}\n`,
    );
  }
  const token = str('token')
    ? await readInput(io.cwd, 'token', str('token')!)
    : (
        await client.requestBootstrapToken({
          namespace: group.namespace,
          serviceAccount: group.serviceAccount,
          expirationSeconds: Number(duration),
        })
      ).token;
  return {
    meshConfigText: str('mesh-config') ? await readInput(io.cwd, 'mesh-config', str('mesh-config')!) : mesh.meshConfig,
    rootCert: str('root-cert') ? await readInput(io.cwd, 'root-cert', str('root-cert')!) : mesh.rootCert,
    token,
    clusterID: mesh.clusterID,
    ingressIP: mesh.eastWest.address,
  };
}
