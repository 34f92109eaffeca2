// The lab daemon, started detached by `up` (stdout/stderr → DIR/lab.log): serves the sidecar package,
// runs the control plane (startControlPlane, lab part 2), writes action.env, applies faults, and answers
// on DIR/control.sock. After `up` it is the only writer of DIR/state.json.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { startControlServer, type ControlRequest } from './control.js';
import { FaultRegistry, vmFaults } from './faults.js';
import { actionEnv, writeLabFile } from './files.js';
import { PACKAGE_PORT, startPackageServer, type PackageServer } from './package/server.js';
import { processStartTime, readState, writeState, type LabState } from './state.js';
import { sshdPid } from './vm/boot.js';
import { vmPids } from './vm/exec.js';

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} daemon: ${line}\n`);
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

async function statusOf(
  state: LabState,
  registry: FaultRegistry | undefined,
  packages: PackageServer | undefined,
  controlPlane: ControlPlane | undefined,
): Promise<unknown> {
  const vms = await Promise.all(
    state.vms.map(async (vm) => {
      const pids = await vmPids(vm);
      return {
        name: vm.name,
        ip: vm.ip,
        sshPort: vm.sshPort,
        netns: vm.netns,
        anchorPid: vm.anchorPid,
        sshdPid: sshdPid(state, vm) ?? null,
        processes: pids.map((pid) => ({ pid, cmd: cmdline(pid).slice(0, 160) })),
      };
    }),
  );
  return {
    phase: state.phase,
    dir: state.dir,
    labIndex: state.labIndex,
    gatewayIP: state.gatewayIP,
    daemonPid: process.pid,
    package: {
      url: state.package.url,
      sha256: state.package.sha256,
      requests: Object.fromEntries(packages?.requests ?? []),
    },
    actionInputs: state.actionInputs,
    /** Requests the lab's Kubernetes API has answered since it started (rejected ones too), by user ('' = none). */
    kubeRequestsByUser: kubeRequestsByUser(controlPlane),
    istiod: state.istiod ?? { mode: 'real' },
    vms,
    faults: state.faults,
    availableFaults: registry?.list() ?? [],
  };
}

function kubeRequestsByUser(controlPlane: ControlPlane | undefined): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const request of controlPlane?.kube?.requests.log ?? []) counts[request.user] = (counts[request.user] ?? 0) + 1;
  return counts;
}

async function main(): Promise<void> {
  const dir = argValue('dir');
  if (!dir) throw new Error('daemon: --dir is required');
  const state = readState(dir);
  state.daemon = { pid: process.pid, startTime: processStartTime(process.pid) ?? 0 };
  writeState(state);
  log(`lab ${state.labIndex} daemon pid ${process.pid}`);

  let registry: FaultRegistry | undefined;
  let packages: PackageServer | undefined;
  let controlPlane: ControlPlane | undefined;
  let control: Server | undefined;
  let stopping = false;

  const shutdown = async (reason: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${reason})`);
    const hardStop = setTimeout(() => process.exit(1), 20_000);
    hardStop.unref();
    try {
      await controlPlane?.stop();
    } catch (e) {
      log(`control plane stop failed: ${(e as Error).message}`);
    }
    await packages?.close();
    control?.close();
    rmSync(state.files.controlSocket, { force: true });
    log('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  if (existsSync(state.files.controlSocket)) rmSync(state.files.controlSocket);
  control = await startControlServer(state.files.controlSocket, async (req: ControlRequest) => {
    switch (req.op) {
      case 'status':
        return statusOf(state, registry, packages, controlPlane);
      case 'fault':
      case 'heal': {
        if (!registry) throw new Error('the lab is still starting');
        log(
          `${req.op} ${req.name}${req.vm ? ` --vm ${req.vm}` : ''}${req.options ? ` ${JSON.stringify(req.options)}` : ''}`,
        );
        const active =
          req.op === 'fault'
            ? await registry.apply(req.name, req.vm, req.options)
            : await registry.heal(req.name, req.vm, req.options);
        return { faults: active };
      }
      case 'kube-user-rules': {
        const kube = controlPlane?.kube;
        if (!kube) throw new Error('the Kubernetes API of the lab is not up (yet)');
        log(`kube-user-rules ${req.user}: ${req.rules.length} rule(s)`);
        kube.setUserRules(req.user, req.rules);
        return { user: req.user, rules: req.rules.length };
      }
      case 'kube-requests': {
        const kube = controlPlane?.kube;
        if (!kube) throw new Error('the Kubernetes API of the lab is not up (yet)');
        const total = kube.requests.total;
        const requests = kube.requests.since(req.since ?? 0).map((r) => ({
          method: r.method,
          path: r.path,
          verb: r.verb,
          user: r.user,
          status: r.status,
          ...(r.resource !== undefined ? { resource: r.resource } : {}),
          ...(r.subresource !== undefined ? { subresource: r.subresource } : {}),
          ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
          ...(r.name !== undefined ? { name: r.name } : {}),
        }));
        return { total, requests };
      }
      case 'shutdown':
        setImmediate(() => void shutdown('shutdown request'));
        return { stopping: true };
      default:
        throw new Error(`unknown op ${(req as { op: string }).op}`);
    }
  });

  packages = await startPackageServer(
    state.gatewayIP,
    PACKAGE_PORT,
    [
      {
        version: state.package.version,
        fileName: state.package.path.split('/').pop() as string,
        path: state.package.path,
        sha256: state.package.sha256,
        sizeBytes: state.package.sizeBytes,
      },
      ...(state.package.extra ?? []).map((extra) => ({
        version: extra.version,
        fileName: extra.path.split('/').pop() as string,
        path: extra.path,
        sha256: extra.sha256,
        sizeBytes: extra.sizeBytes,
      })),
    ],
    log,
  );
  log(`sidecar package served at ${state.package.url}`);

  controlPlane = await startControlPlane({
    dir: state.dir,
    labIndex: state.labIndex,
    gatewayIP: state.gatewayIP,
    vms: state.vms.map((vm) => ({ name: vm.name, ip: vm.ip, netns: vm.netns, sshPort: vm.sshPort })),
    ...(state.istiod?.istioNamespace ? { istioNamespace: state.istiod.istioNamespace } : {}),
    ...(state.istiod?.extraRevision ? { extraRevision: state.istiod.extraRevision } : {}),
    log,
    onPodsChanged: (pods) => {
      state.pods = pods.map((p) => ({ ...p }));
      writeState(state);
    },
  });
  if (controlPlane.istiod) {
    state.istiod = {
      ...state.istiod,
      mode: 'real',
      ...(controlPlane.istiod.pid ? { pid: controlPlane.istiod.pid } : {}),
      binary: controlPlane.istiod.binary,
      logPath: controlPlane.istiod.logPath,
      ...(controlPlane.extraIstiod
        ? {
            extra: {
              revision: controlPlane.extraIstiod.revision,
              ...(controlPlane.extraIstiod.pid ? { pid: controlPlane.extraIstiod.pid } : {}),
              logPath: controlPlane.extraIstiod.logPath,
              address: controlPlane.extraIstiod.address,
            },
          }
        : {}),
    };
  }
  const cp = controlPlane;
  registry = new FaultRegistry([...vmFaults(state), ...controlPlane.faults], state, () => {
    // A fault may restart the real istiod (istiod-down, autoregistration-off): keep its pid current.
    if (cp.istiod && state.istiod) {
      const pid = cp.istiod.pid;
      if (pid) state.istiod.pid = pid;
      else delete state.istiod.pid;
    }
    writeState(state);
  });

  state.actionInputs = {
    INPUT_INVENTORY: state.files.inventory,
    'INPUT_SIDECAR-PACKAGE-URL': state.package.urlTemplate,
    'INPUT_SIDECAR-PACKAGE-SHA256': state.package.sha256,
    'INPUT_ISTIO-VERSION': state.istioVersion,
    ...controlPlane.actionInputs,
  };
  if (controlPlane.kubeconfigPath) state.files.kubeconfig = controlPlane.kubeconfigPath;
  writeLabFile(state.files.actionEnv, actionEnv(state.actionInputs));
  state.phase = 'ready';
  writeState(state);
  log(`ready: ${state.vms.length} VMs, ${registry.list().length} faults`);
}

main().catch((e: unknown) => {
  log(`fatal: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
