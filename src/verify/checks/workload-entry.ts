// workload-entry: a WorkloadEntry with this VM's address exists (and, with health checks, is Healthy).
// Read from the cluster, polling from the start while the VM side runs.
import { failResult, passResult, type CheckDefinition, type VmSideProgress } from '../check.js';
import type { WorkloadEntryView } from '../ports.js';
import type { CheckName, CheckResult, VerifyContext, VerifyOptions } from '../types.js';

function healthyCondition(entry: WorkloadEntryView) {
  return entry.status?.conditions?.find((c) => c.type === 'Healthy');
}

/**
 * When istiod marked an auto-registered entry disconnected: no istiod holds the VM's xDS connection (it keeps the
 * entry for a grace period; pilot/pkg/autoregistration sets istio.io/disconnectedAt and drops connectedAt).
 */
function disconnectedAt(entry: WorkloadEntryView): string | undefined {
  const a = entry.metadata.annotations ?? {};
  return a['istio.io/autoRegistrationGroup'] ? a['istio.io/disconnectedAt'] : undefined;
}

function describeEntry(entry: WorkloadEntryView): string {
  const a = entry.metadata.annotations ?? {};
  const kind = a['istio.io/autoRegistrationGroup']
    ? `auto-registered (group ${a['istio.io/autoRegistrationGroup']})`
    : 'static';
  const h = healthyCondition(entry);
  const healthy = h ? h.status : '(none)';
  const healthMessage = h?.message ? ` (${h.message})` : '';
  // The istiod instance (its pod) that holds the VM's connection and keeps the entry: after a revision move,
  // a pod of istiod-REV (annotation istio.io/workloadController: "the current/last pilot instance connected to
  // the workload for XDS", istio.io/api annotation/annotations.gen.go; set by pilot/pkg/autoregistration).
  const controller = a['istio.io/workloadController'] ? `, kept by istiod pod ${a['istio.io/workloadController']}` : '';
  return (
    `WorkloadEntry ${entry.metadata.namespace ?? ''}/${entry.metadata.name} ${kind}, ` +
    `address ${entry.spec.address ?? '?'}, Healthy=${healthy}${healthMessage}${controller}`
  );
}

function probePort(ctx: VerifyContext): string {
  const p = ctx.group.probe;
  return String(p?.httpGet?.port ?? p?.tcpSocket?.port ?? '?');
}

export async function checkWorkloadEntry(
  ctx: VerifyContext,
  options: VerifyOptions,
  vmSide?: VmSideProgress,
): Promise<CheckResult> {
  const name: CheckName = 'workload-entry';
  const now = ctx.now ?? Date.now;
  const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const started = now();
  const graceMs = Math.min(options.workloadEntryTimeoutMs, 10_000);
  const deadline = (): number => {
    const base = started + options.workloadEntryTimeoutMs;
    if (!vmSide) return base;
    return vmSide.doneAt === undefined ? Number.POSITIVE_INFINITY : Math.max(base, vmSide.doneAt + graceMs);
  };
  const healthChecks = ctx.healthChecks ?? !!ctx.group.probe;
  const address = ctx.workloadAddress;
  // A static entry is named after its VM (src/render buildWorkloadEntry): the lookup must know the VM's name.
  const query = {
    namespace: ctx.group.namespace,
    address,
    group: ctx.group.name,
    vmName: ctx.vm.name,
    ...(ctx.group.network ? { network: ctx.group.network } : {}),
  };
  let entry: WorkloadEntryView | undefined;
  let lastError: string | undefined;
  let diagnosed = false;
  // Bounded in count whatever the clock does: the longest the VM side can take, plus the wait itself.
  const longestMs =
    options.workloadEntryTimeoutMs + (vmSide ? options.readyTimeoutMs + options.restartWindowMs + 60_000 : 0);
  const maxPolls = Math.ceil(longestMs / Math.max(1, options.workloadEntryPollMs)) + 1;
  for (let poll = 0; poll < maxPolls; poll++) {
    try {
      entry = await ctx.meshProbe.workloadEntryFor(query);
      lastError = undefined;
    } catch (err) {
      lastError = (err as Error).message;
    }
    // An entry counts once the VM side is done (after a restart, the entry of the sidecar's previous run may
    // still be there, kept by the istiod the old agent held while it drained) and while istiod holds the VM.
    const settled = !vmSide || vmSide.doneAt !== undefined;
    if (entry && settled && disconnectedAt(entry) === undefined) {
      if (!healthChecks) break;
      const h = healthyCondition(entry);
      if (h?.status === 'True') break;
    } else if (!entry && !lastError && !diagnosed && ctx.group.registration === 'auto') {
      // Ask once why it may be missing: a definite answer ends the wait early.
      diagnosed = true;
      const enabled = await ctx.meshProbe.autoRegistrationEnabled?.().catch(() => undefined);
      if (enabled === false) {
        return failResult(ctx, {
          check: name,
          seen: `no WorkloadEntry for ${address} and istiod has autoregistration disabled`,
          hint: 'we-autoregistration-off',
          vars: { address },
          evidence: ['istiod env PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false'],
          durationMs: now() - started,
        });
      }
      const groupExists = await ctx.meshProbe
        .workloadGroupExists?.({ namespace: ctx.group.namespace, name: ctx.group.name })
        .catch(() => undefined);
      if (groupExists === false) {
        return failResult(ctx, {
          check: name,
          seen: `no WorkloadEntry for ${address}: WorkloadGroup ${ctx.group.namespace}/${ctx.group.name} is missing`,
          hint: 'we-group-missing',
          vars: { address },
          evidence: [`WorkloadGroup ${ctx.group.namespace}/${ctx.group.name}: not found`],
          durationMs: now() - started,
        });
      }
    }
    if (now() + options.workloadEntryPollMs > deadline()) break;
    await sleep(options.workloadEntryPollMs);
  }
  const waited = `${((now() - started) / 1000).toFixed(1)} s`;
  if (!entry && lastError) {
    return failResult(ctx, {
      check: name,
      seen: `could not read WorkloadEntries: ${lastError}`,
      hint: 'we-read-failed',
      vars: { detail: lastError },
      evidence: [lastError],
      durationMs: now() - started,
    });
  }
  if (!entry) {
    const detail =
      ctx.group.registration === 'static'
        ? ' (static registration: the entry was not applied)'
        : ' (the sidecar has not auto-registered)';
    return failResult(ctx, {
      check: name,
      seen: `no WorkloadEntry with address ${address} in ${ctx.group.namespace} after ${waited}`,
      hint: 'we-missing',
      vars: { address, detail },
      evidence: [`registration: ${ctx.group.registration}`],
      durationMs: now() - started,
    });
  }
  const evidence = [describeEntry(entry)];
  const since = disconnectedAt(entry);
  if (since !== undefined) {
    return failResult(ctx, {
      check: name,
      seen: `${entry.metadata.name} is marked disconnected since ${since} after ${waited}`,
      hint: 'we-disconnected',
      vars: { entry: entry.metadata.name, since },
      evidence,
      durationMs: now() - started,
    });
  }
  if (healthChecks) {
    const h = healthyCondition(entry);
    if (!h) {
      return failResult(ctx, {
        check: name,
        seen: `${entry.metadata.name} has no Healthy condition after ${waited}`,
        hint: 'we-health-unknown',
        vars: { entry: entry.metadata.name },
        evidence,
        durationMs: now() - started,
      });
    }
    if (h.status !== 'True') {
      const detail = h.message ?? h.reason ?? `Healthy=${h.status}`;
      return failResult(ctx, {
        check: name,
        seen: `${entry.metadata.name} is not Healthy after ${waited}: ${detail}`,
        hint: 'we-unhealthy',
        vars: { entry: entry.metadata.name, detail, probePort: probePort(ctx) },
        evidence,
        durationMs: now() - started,
      });
    }
  }
  return passResult({
    check: name,
    seen: `${entry.metadata.name} has address ${address}${healthChecks ? ' and is Healthy' : ' (health checks off)'}`,
    evidence,
    durationMs: now() - started,
  });
}

export const workloadEntry: CheckDefinition = {
  name: 'workload-entry',
  short: 'WE',
  passesWhen: "a WorkloadEntry with this VM's address exists and is `Healthy`",
  dependsOn: [],
  hints: {
    'we-autoregistration-off': {
      cause: 'no WorkloadEntry was auto-registered: PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=false on istiod',
      fix:
        'set PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=true ' +
        '(and PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS=true) on istiod, ' +
        'or use `registration: static` for this group',
    },
    'we-group-missing': {
      cause: 'WorkloadGroup {namespace}/{group} does not exist, so istiod cannot auto-register the VM',
      fix:
        'rerun onboard (it applies the WorkloadGroup), ' +
        'and check that ISTIO_META_AUTO_REGISTER_GROUP in cluster.env is {group}',
    },
    'we-missing': {
      cause: 'no WorkloadEntry with address {address} in namespace {namespace}{detail}',
      // istiod creates an auto-registered entry only when the proxy connects, or for connected proxies when their
      // WorkloadGroup is added: one deleted under a connected agent stays gone until the agent reconnects
      // (pilot/pkg/autoregistration/controller.go: OnConnect, registerWorkload, setupAutoRecreate).
      fix:
        'auto: istiod registers the VM only when its sidecar connects (ISTIO_META_AUTO_REGISTER_GROUP={group}, ' +
        'address {address}); an entry deleted while it stays connected is not re-created: rerun onboard ' +
        '(it restarts a sidecar whose entry is gone) or `sudo systemctl restart istio`; ' +
        'static: rerun onboard to apply the entry',
    },
    'we-disconnected': {
      cause:
        'WorkloadEntry {entry} is marked disconnected (istio.io/disconnectedAt {since}): no istiod holds the ' +
        "VM's xDS connection, and istiod removes the entry when its grace period ends",
      fix: 'fix what sidecar-ready / xds-connected report (the sidecar must reach istiod on 15012), then rerun onboard',
    },
    'we-unhealthy': {
      cause:
        'WorkloadEntry {entry} is not Healthy: the readiness probe fails ({detail}) — ' +
        'the application is down or the probe port/path is wrong',
      fix: "start the application on the VM (port {probePort}) or fix the group's probe in the inventory",
    },
    'we-health-unknown': {
      cause:
        'WorkloadEntry {entry} has no Healthy condition although health checks are on (probe results not reported)',
      fix: 'check PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS=true on istiod and the probe in the WorkloadGroup',
    },
    'we-address-mismatch': {
      cause: 'the sidecar registered as {seen}, not {address}',
      fix: "set the VM's internalIP in the inventory (or fix the route to the gateway) and rerun onboard",
    },
    'we-read-failed': {
      cause: 'could not read WorkloadEntries from the cluster ({detail})',
      fix: 'check the kubeconfig and that the action may list networking.istio.io workloadentries in {namespace}',
    },
  },
  phase: 'cluster',
  evaluate: ({ ctx, options, vmSide }) =>
    checkWorkloadEntry(ctx, options, vmSide).catch((err: unknown) =>
      failResult(ctx, {
        check: 'workload-entry',
        seen: `check crashed: ${(err as Error).message}`,
        hint: 'we-read-failed',
        vars: { detail: (err as Error).message },
        evidence: [],
        durationMs: 0,
      }),
    ),
};
