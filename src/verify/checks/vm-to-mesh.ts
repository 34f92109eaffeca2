// vm-to-mesh: the VM reaches a mesh service by its cluster DNS name (DNS capture works). Round trip 2
// resolves the name and makes the call.
import { describeFetch, failResult, isSuccessCode, passResult, type CheckDefinition } from '../check.js';
import { followUpParts, type ScriptOutput } from '../vm-script.js';
import type { CheckName, CheckResult, VerifyContext } from '../types.js';

export function checkVmToMesh(ctx: VerifyContext, output: ScriptOutput, durationMs: number): CheckResult {
  const name: CheckName = 'vm-to-mesh';
  const host = new URL(ctx.verifyUrl).hostname;
  const call = output.sections.get('vm-to-mesh');
  const resolve = output.sections.get('resolve');
  const resolved = resolve ? (resolve.rc === 0 ? resolve.body.trim() : `exit ${resolve.rc} (not resolved)`) : 'not run';
  const evidence = [`getent hosts ${host} → ${resolved}`, `GET ${ctx.verifyUrl} → ${describeFetch(call)}`];
  if (!call) {
    return failResult(ctx, {
      check: name,
      seen: 'the request was not made (script output incomplete)',
      hint: 'mesh-service-unreachable',
      vars: { host, detail: 'no output' },
      evidence,
      durationMs,
    });
  }
  if (call.rc === 6) {
    return failResult(ctx, {
      check: name,
      seen: `could not resolve ${host} on the VM`,
      hint: 'dns-capture-off',
      vars: { host },
      evidence,
      durationMs,
    });
  }
  if (call.http === '000') {
    const detail = call.stderr.trim().split('\n').pop() || `curl exit ${call.rc}`;
    return failResult(ctx, {
      check: name,
      seen: `${ctx.verifyUrl} failed: ${detail}`,
      hint: 'mesh-service-unreachable',
      vars: { host, detail },
      evidence,
      durationMs,
    });
  }
  if (!isSuccessCode(call.http)) {
    return failResult(ctx, {
      check: name,
      seen: `${ctx.verifyUrl} answered HTTP ${call.http}`,
      hint: 'mesh-service-http-error',
      vars: { host, code: call.http },
      evidence,
      durationMs,
    });
  }
  return passResult({
    check: name,
    seen: `${ctx.verifyUrl} answered HTTP ${call.http} (resolved through the sidecar's DNS)`,
    evidence,
    durationMs,
  });
}

export const vmToMesh: CheckDefinition = {
  name: 'vm-to-mesh',
  short: 'vm→mesh',
  passesWhen: 'the VM reaches a mesh service by its cluster DNS name (DNS capture works)',
  dependsOn: ['sidecar-ready'],
  hints: {
    'dns-capture-off': {
      cause: 'the VM could not resolve {host}: DNS capture is off or broken (ISTIO_META_DNS_CAPTURE)',
      fix:
        'onboard with `--capture-dns` (ISTIO_META_DNS_CAPTURE="true" in cluster.env), ' +
        "check the sidecar's DNS iptables rules, restart istio; or correct `verify-url`",
    },
    'mesh-service-unreachable': {
      cause: '{host} resolved but the call failed ({detail}): the mesh service is down or has no ready endpoints',
      fix:
        'check `kubectl get endpoints` for the service behind `verify-url`, ' +
        'and that the VM network reaches the pods (east-west gateway)',
    },
    'mesh-service-http-error': {
      cause: '{host} answered HTTP {code} through the sidecar (503 = no healthy upstream / mesh service down)',
      fix: 'check the service behind `verify-url` and its endpoints; `curl -v` it from the VM',
    },
  },
  phase: 'follow-up',
  collect: { followUp: ({ ctx, options }) => followUpParts.vmToMesh(ctx.verifyUrl, options.vmToMeshTimeoutMs) },
  evaluate: ({ ctx, followUp }) => {
    if (!followUp?.ok) {
      const error = followUp && !followUp.ok ? followUp.error : 'round trip 2 did not run';
      return failResult(ctx, {
        check: 'vm-to-mesh',
        seen: `could not run the request on the VM: ${error}`,
        hint: 'probe-failed',
        vars: { detail: error },
        evidence: [error],
        durationMs: followUp?.durationMs ?? 0,
      });
    }
    return checkVmToMesh(ctx, followUp.output, followUp.durationMs);
  },
};
