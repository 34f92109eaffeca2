// workload-certificate: Envoy's certificate (round trip 1: /config_dump secrets, else /certs) has this
// group's SPIFFE identity, chains to the mesh root the action installed, and is not about to expire.
import { sameCertificates } from '../../render/certificate-set.js';
import { readFileSync } from 'node:fs';
import { describeFetch, failResult, fetchOk, passResult, probeOutput, type CheckDefinition } from '../check.js';
import {
  inspectCertificate,
  parseCertsJson,
  parseSecretsConfigDump,
  parseSpiffeId,
  splitPemCertificates,
  verifyChainToRoots,
  type CertificateInfo,
} from '../envoy/certs.js';
import {
  PROVISIONED_CERT_PATHS,
  provisionedCertificateState,
  type ProvisionedCertificateState,
} from '../provisioned-certificate.js';
import type { ScriptOutput } from '../vm-script.js';
import { ISTIO_PROXY_USER, probeAsProxyPart } from '../../vm/scripts/inspect.js';
import type { CheckName, CheckResult, VerifyContext, VerifyOptions } from '../types.js';

const PROVISIONED_CERT_SCRIPT = readFileSync(new URL('./workload-certificate.sh', import.meta.url), 'utf8');

export function expectedSpiffeId(ctx: VerifyContext): string {
  return `spiffe://${ctx.trustDomain}/ns/${ctx.group.namespace}/sa/${ctx.group.serviceAccount}`;
}

function describeCert(c: CertificateInfo): string {
  const sans = c.uriSans.join(' ') || '(none)';
  const validity = `${c.notBefore.toISOString()} – ${c.notAfter.toISOString()}`;
  return `serial ${c.serialNumber}, SAN ${sans}, issuer "${c.issuer}", valid ${validity}`;
}

/** The provisioned certificate (/etc/certs/cert-chain.pem) when istiod will refuse it. */
type ProvisionedProblem =
  | { state: 'expired'; notAfter: Date; serialNumber: string }
  | Extract<ProvisionedCertificateState, { state: 'untrusted' }>;

/** The provisioned certificate when it has expired at `now`, or is under none of `trustedRootsPem`. */
function provisionedProblem(output: ScriptOutput, now: Date, trustedRootsPem?: string): ProvisionedProblem | undefined {
  const body = output.sections.get('provisioned-cert')?.body;
  const state = provisionedCertificateState(body, now, 0, trustedRootsPem);
  if (state.state === 'expired')
    return { state: 'expired', notAfter: state.notAfter, serialNumber: state.serialNumber };
  return state.state === 'untrusted' ? state : undefined;
}

/** Envoy has no valid certificate and istiod will refuse the one the agent renews with: only a fresh token helps. */
function reBootstrapFailure(
  ctx: VerifyContext,
  provisioned: ProvisionedProblem,
  evidence: string[],
  durationMs: number,
): CheckResult {
  const notAfter = provisioned.notAfter.toISOString();
  const path = PROVISIONED_CERT_PATHS.certChain;
  const what =
    `${path}: serial ${provisioned.serialNumber}, notAfter ${notAfter} ` + '(the certificate pilot-agent renews with)';
  if (provisioned.state === 'untrusted')
    return failResult(ctx, {
      check: 'workload-certificate',
      seen: `certificate under a root the mesh no longer trusts: re-bootstrap needed (${path}: ${provisioned.reason})`,
      hint: 'cert-rebootstrap-untrusted',
      vars: { path },
      evidence: [what, ...evidence],
      durationMs,
    });
  return failResult(ctx, {
    check: 'workload-certificate',
    seen: `certificate expired: re-bootstrap needed (${path} expired at ${notAfter})`,
    hint: 'cert-rebootstrap',
    vars: { path, notAfter },
    evidence: [what, ...evidence],
    durationMs,
  });
}

export function checkWorkloadCertificate(
  ctx: VerifyContext,
  output: ScriptOutput,
  options: VerifyOptions,
): CheckResult {
  const name: CheckName = 'workload-certificate';
  const started = Date.now();
  const duration = () => Date.now() - started;
  const now = new Date(ctx.now?.() ?? Date.now());
  const evidence: string[] = [];
  const provisionedRefused = provisionedProblem(output, now, ctx.rootCertPem);

  const vmRootPem = splitPemCertificates(output.sections.get('root-cert')?.body ?? '');
  const installedRootPem = ctx.rootCertPem ? splitPemCertificates(ctx.rootCertPem) : vmRootPem;
  // The same roots, whatever their order or repeats: pilot-agent rewrites the file (certificate-set.ts).
  const rootDiffers =
    !!ctx.rootCertPem && vmRootPem.length > 0 && !sameCertificates(vmRootPem.join('\n'), ctx.rootCertPem);
  if (rootDiffers)
    evidence.push(`/etc/certs/root-cert.pem on the VM differs from the mesh root cert (istio-ca-root-cert)`);

  // Source 1: /config_dump?resource=dynamic_active_secrets (PEMs). Source 2: /certs (metadata only).
  let chainPem: string[] = [];
  let warming: string[] = [];
  const secrets = output.sections.get('secrets');
  if (fetchOk(secrets)) {
    try {
      const parsed = parseSecretsConfigDump(secrets.body);
      chainPem = parsed.workloadChainPem;
      warming = parsed.warmingSecrets;
    } catch (err) {
      evidence.push(`config_dump: ${(err as Error).message}`);
    }
  } else {
    evidence.push(`GET localhost:15000/config_dump?resource=dynamic_active_secrets → ${describeFetch(secrets)}`);
  }

  if (chainPem.length === 0) {
    const certsSection = output.sections.get('certs');
    if (fetchOk(certsSection)) {
      try {
        const contexts = parseCertsJson(certsSection.body);
        const withChain = contexts.find((c) => c.certChain.some((e) => e.uriSans.length > 0));
        if (withChain)
          return evaluateCertsFallback(
            ctx,
            withChain,
            installedRootPem,
            rootDiffers,
            evidence,
            options,
            now,
            started,
            provisionedRefused,
          );
      } catch (err) {
        evidence.push(`/certs: ${(err as Error).message}`);
      }
    }
    const warmingNote = warming.length > 0 ? `; warming: ${warming.join(', ')}` : '';
    if (provisionedRefused) {
      evidence.push(`Envoy has no workload certificate (secret "default" absent${warmingNote})`);
      return reBootstrapFailure(ctx, provisionedRefused, evidence, duration());
    }
    if (rootDiffers) {
      return failResult(ctx, {
        check: name,
        seen: "no workload certificate, and the VM's root cert is not the mesh's",
        hint: 'cert-root-mismatch',
        vars: { detail: 'VM root-cert.pem differs from istio-ca-root-cert' },
        evidence,
        durationMs: duration(),
      });
    }
    return failResult(ctx, {
      check: name,
      seen: `Envoy has no workload certificate (secret "default" absent${warmingNote})`,
      hint: 'cert-missing',
      vars: { warming: warmingNote },
      evidence,
      durationMs: duration(),
    });
  }

  let leaf: CertificateInfo;
  try {
    leaf = inspectCertificate(chainPem[0]!);
  } catch (err) {
    return failResult(ctx, {
      check: name,
      seen: 'the workload certificate is not valid X.509',
      hint: 'cert-unreadable',
      vars: { detail: (err as Error).message },
      evidence,
      durationMs: duration(),
    });
  }
  evidence.unshift(`leaf: ${describeCert(leaf)}`);
  return evaluateLeaf(
    ctx,
    leaf,
    () => verifyChainToRoots(chainPem, installedRootPem),
    rootDiffers,
    evidence,
    options,
    now,
    started,
    provisionedRefused,
  );
}

function evaluateLeaf(
  ctx: VerifyContext,
  leaf: { uriSans: string[]; notAfter: Date; notBefore?: Date },
  verifyChain: () => { ok: true; anchoredBy: CertificateInfo } | { ok: false; reason: string },
  rootDiffers: boolean,
  evidence: string[],
  options: VerifyOptions,
  now: Date,
  started: number,
  provisionedRefused?: ProvisionedProblem,
): CheckResult {
  const name: CheckName = 'workload-certificate';
  const duration = () => Date.now() - started;
  const expected = expectedSpiffeId(ctx);
  const spiffe = leaf.uriSans.map(parseSpiffeId).find((s) => s !== undefined);
  const san = leaf.uriSans[0] ?? '(none)';
  if (!spiffe) {
    return failResult(ctx, {
      check: name,
      seen: `cert has no SPIFFE URI SAN (SANs: ${leaf.uriSans.join(', ') || 'none'})`,
      hint: 'cert-identity',
      vars: { san, expected },
      evidence,
      durationMs: duration(),
    });
  }
  const actual = leaf.uriSans.find((u) => parseSpiffeId(u)) ?? san;
  if (spiffe.trustDomain !== ctx.trustDomain) {
    return failResult(ctx, {
      check: name,
      seen: `cert SAN is ${actual} but mesh trust domain is ${ctx.trustDomain}`,
      hint: 'cert-trust-domain',
      vars: { san: actual, trustDomain: ctx.trustDomain },
      evidence,
      durationMs: duration(),
    });
  }
  if (actual !== expected) {
    return failResult(ctx, {
      check: name,
      seen: `cert SAN is ${actual}, expected ${expected}`,
      hint: 'cert-identity',
      vars: { san: actual, expected },
      evidence,
      durationMs: duration(),
    });
  }
  const chain = verifyChain();
  if (!chain.ok) {
    return failResult(ctx, {
      check: name,
      seen: `cert does not chain to the installed root: ${chain.reason}`,
      hint: 'cert-root-mismatch',
      vars: { detail: chain.reason },
      evidence,
      durationMs: duration(),
    });
  }
  if (rootDiffers) {
    return failResult(ctx, {
      check: name,
      seen: "the VM's /etc/certs/root-cert.pem is not the mesh root cert",
      hint: 'cert-root-mismatch',
      vars: { detail: 'VM root-cert.pem differs from istio-ca-root-cert' },
      evidence,
      durationMs: duration(),
    });
  }
  if (leaf.notBefore && leaf.notBefore.getTime() > now.getTime() + 5 * 60_000) {
    return failResult(ctx, {
      check: name,
      seen: `cert is not valid before ${leaf.notBefore.toISOString()} (VM or CA clock skew?)`,
      hint: 'cert-unreadable',
      vars: { detail: 'notBefore in the future' },
      evidence,
      durationMs: duration(),
    });
  }
  const remainingMs = leaf.notAfter.getTime() - now.getTime();
  if (remainingMs <= 0) {
    if (provisionedRefused?.state === 'expired')
      return reBootstrapFailure(ctx, provisionedRefused, evidence, duration());
    return failResult(ctx, {
      check: name,
      seen: `cert expired at ${leaf.notAfter.toISOString()}`,
      hint: 'cert-expired',
      vars: { notAfter: leaf.notAfter.toISOString() },
      evidence,
      durationMs: duration(),
    });
  }
  if (remainingMs < options.certExpiryThresholdMs) {
    return failResult(ctx, {
      check: name,
      seen: `cert expires at ${leaf.notAfter.toISOString()} (in ${Math.round(remainingMs / 60_000)} min)`,
      hint: 'cert-expiring',
      vars: { notAfter: leaf.notAfter.toISOString(), thresholdMin: Math.round(options.certExpiryThresholdMs / 60_000) },
      evidence,
      durationMs: duration(),
    });
  }
  return passResult({
    check: name,
    seen: `SAN ${actual}, chains to the installed root, valid until ${leaf.notAfter.toISOString()}`,
    evidence,
    durationMs: duration(),
  });
}

function evaluateCertsFallback(
  ctx: VerifyContext,
  context: ReturnType<typeof parseCertsJson>[number],
  installedRootPem: string[],
  rootDiffers: boolean,
  evidence: string[],
  options: VerifyOptions,
  now: Date,
  started: number,
  provisionedRefused?: ProvisionedProblem,
): CheckResult {
  const leaf = context.certChain[0]!;
  evidence.unshift(
    `/certs leaf: serial ${leaf.serialNumber}, SAN ${leaf.uriSans.join(' ')}, ` +
      `expires ${leaf.expirationTime?.toISOString() ?? '?'} (no PEM: config_dump unavailable)`,
  );
  const notAfter = leaf.expirationTime ?? new Date(now.getTime() + (leaf.daysUntilExpiration ?? 0) * 86_400_000);
  const leafView: { uriSans: string[]; notAfter: Date; notBefore?: Date } = { uriSans: leaf.uriSans, notAfter };
  if (leaf.validFrom) leafView.notBefore = leaf.validFrom;
  // Without PEMs the chain can only be matched by the CA serial numbers Envoy reports.
  const verify = () => {
    const installedSerials = installedRootPem.map((p) => inspectCertificate(p).serialNumber);
    const caSerials = context.caCert.map((c) => c.serialNumber);
    const match = caSerials.find((s) => installedSerials.includes(s));
    if (match)
      return { ok: true as const, anchoredBy: inspectCertificate(installedRootPem[installedSerials.indexOf(match)]!) };
    return {
      ok: false as const,
      reason:
        `Envoy trusts CA serial(s) ${caSerials.join(', ') || 'none'}, ` +
        `installed root has ${installedSerials.join(', ') || 'none'}`,
    };
  };
  return evaluateLeaf(ctx, leafView, verify, rootDiffers, evidence, options, now, started, provisionedRefused);
}

export const workloadCertificate: CheckDefinition = {
  name: 'workload-certificate',
  short: 'cert',
  passesWhen:
    "Envoy's certificate has the SAN `spiffe://<trust domain>/ns/<ns>/sa/<sa>`, chains to the mesh root we installed, and is not about to expire",
  dependsOn: ['sidecar-running'],
  hints: {
    'cert-missing': {
      cause:
        'Envoy has no workload certificate (SDS secret `default` missing{warming}): ' +
        'the CA (istiod) has not signed one — token, root cert or connectivity to 15012',
      fix: 'fix the sidecar-ready / xds-connected failure first; the certificate follows once istiod accepts the token',
    },
    'cert-trust-domain': {
      cause: 'cert SAN is {san} but mesh trust domain is {trustDomain}',
      fix:
        "the certificate was signed under another trust domain (istiod's mesh config `trustDomain` changed " +
        'after the VM got it, or another CA signed it): if the change to {trustDomain} is meant, rerun onboard — ' +
        "it writes the mesh's trust domain (TRUST_DOMAIN in cluster.env, the mesh config) and restarts the " +
        "sidecar, which asks istiod for a new certificate; otherwise restore istiod's trustDomain",
    },
    'cert-identity': {
      cause: "cert SAN is {san} but this VM's group expects {expected}",
      fix: "the VM runs with another group's token or cluster.env: rerun onboard for this VM",
    },
    'cert-root-mismatch': {
      cause:
        'the workload certificate does not chain to the root cert the action installed ({detail}): ' +
        'istio-ca-root-cert changed (CA rotation, plugged-in CA) or the VM belongs to another cluster',
      fix:
        'compare istio-ca-root-cert in namespace {namespace} with /etc/certs/root-cert.pem on the VM; ' +
        'rerun onboard to install the current one',
    },
    'cert-expired': {
      cause:
        'the workload certificate expired at {notAfter}: ' +
        'the sidecar cannot renew it (istiod unreachable or token rejected)',
      fix:
        'restore connectivity to istiod on 15012 and a valid token (rerun onboard); ' +
        'then `sudo systemctl restart istio`',
    },
    'cert-rebootstrap': {
      cause:
        'the certificate pilot-agent renews with ({path}, PROV_CERT in istio-start.sh) expired at {notAfter}: ' +
        'the VM was off or cut off from istiod longer than its lifetime, and the bootstrap token the agent falls ' +
        'back to is as old (certificate expired: re-bootstrap needed)',
      fix:
        'rerun `onboard` for this VM: it re-bootstraps it (a fresh token, the expired cert-chain.pem and key.pem ' +
        'removed, the sidecar restarted)',
    },
    'cert-rebootstrap-untrusted': {
      cause:
        'the certificate pilot-agent renews with ({path}) is under a root the mesh no longer trusts (the last step ' +
        'of a root rotation dropped it before this VM renewed): the agent still presents it and istiod refuses ' +
        'the handshake (unknown certificate authority)',
      fix:
        'rerun `onboard` for this VM: it re-bootstraps it (a fresh token, the old cert-chain.pem and key.pem ' +
        'removed, the sidecar restarted)',
    },
    'cert-expiring': {
      cause: 'the workload certificate expires at {notAfter}, within {thresholdMin} min, and was not renewed',
      fix: 'check that the sidecar can reach istiod to rotate it (sidecar-ready / xds-connected), then rerun verify',
    },
    'cert-unreadable': {
      cause: 'the certificate could not be read from Envoy ({detail})',
      fix: "check Envoy's admin port 15000 on the VM (`curl localhost:15000/certs`)",
    },
  },
  phase: 'probe',
  collect: {
    // The certificate pilot-agent renews with, read as the proxy user, who writes it and owns its directory.
    probe: {
      values: { ...probeAsProxyPart(ISTIO_PROXY_USER).values, IVO_PROV_CHAIN: PROVISIONED_CERT_PATHS.certChain },
      text: `${probeAsProxyPart(ISTIO_PROXY_USER).text}\n${PROVISIONED_CERT_SCRIPT}`,
    },
  },
  evaluate: ({ ctx, probe, options }) => checkWorkloadCertificate(ctx, probeOutput(probe), options),
};
