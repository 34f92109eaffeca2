// The remediation table: every way a check can fail, its likely cause and the fix. Each check defines
// its own (checks/<name>.ts `hints`); they are looked up here by id for the results (CheckResult.hint /
// hintId) and listed for the README's troubleshooting section (`renderHintsMarkdown`).
import type { HintText } from './check.js';
import { checkDefinitions, hintEntry } from './registry.js';

export interface HintEntry extends HintText {
  check: string;
}

/** Every hint of every check, by id, in the checks' order. */
export function allHints(): Record<string, HintEntry> {
  const hints: Record<string, HintEntry> = {};
  for (const check of checkDefinitions()) {
    for (const [id, hint] of Object.entries(check.hints)) hints[id] = { check: check.name, ...hint };
  }
  return hints;
}

/** A hint's id: a key of some check's `hints`. */
export type HintId = string;

function fill(template: string, vars: Record<string, string | number | undefined>): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => {
    const v = vars[key];
    return v === undefined ? '' : String(v);
  });
}

/** `<cause>. Fix: <fix>` with the placeholders filled. */
export function renderHint(id: HintId, vars: Record<string, string | number | undefined> = {}): string {
  const entry = hintEntry(id);
  if (!entry) throw new Error(`no hint ${id} in any check`);
  return `${fill(entry.cause, vars)}. Fix: ${fill(entry.fix, vars)}`;
}

/**
 * A connection to the VM's own loopback: pilot-agent probing Envoy's admin port (pkg/istio-agent/health/
 * health_check.go logs "failure threshold hit, marking as unhealthy: Get \"http://127.0.0.1:15000/stats…\": …
 * connection refused" whenever Envoy is not up). Such a line says nothing about the way to istiod.
 */
const LOOPBACK_TARGET = /(?:\/\/|\s)(?:127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+/;

/** Causes found in pilot-agent's log (istio.log / istio.err.log), most specific first. */
const AGENT_LOG_CAUSES: { id: HintId; pattern: RegExp; unless?: RegExp }[] = [
  // Go's crypto/x509 HostnameError ("certificate is valid for A, B, not C"): a trusted istiod answered for
  // another name. Through an east-west gateway that is a revision's istiod-REV name routed to another istiod.
  { id: 'istiod-name-mismatch', pattern: /certificate is valid for [^\n]*, not [\w.-]+/i },
  {
    id: 'root-cert-rejected-by-agent',
    pattern: /x509|certificate signed by unknown authority|failed to verify certificate|certificate verify failed/i,
  },
  {
    id: 'token-rejected',
    pattern: /Unauthenticated|authenticat\w* fail|token (?:is )?(?:invalid|expired|rejected)|audience/i,
  },
  { id: 'istiod-refused', pattern: /connection refused/i, unless: LOOPBACK_TARGET },
  {
    id: 'port-15012-blocked',
    pattern: /i\/o timeout|deadline exceeded|no route to host|network is unreachable|connection timed out/i,
    unless: LOOPBACK_TARGET,
  },
  { id: 'istiod-name-unresolved', pattern: /no such host|server misbehaving|Temporary failure in name resolution/i },
];

/** The most specific cause the agent's log lines show, with the line that shows it (last such line wins). */
export function classifyAgentLog(lines: string[]): { id: HintId; line: string } | undefined {
  for (const { id, pattern, unless } of AGENT_LOG_CAUSES) {
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!;
      if (pattern.test(line) && !unless?.test(line)) return { id, line };
    }
  }
  return undefined;
}

/** The troubleshooting table for the README: check, hint id, cause, fix. */
export function renderHintsMarkdown(): string {
  const rows = Object.entries(allHints()).map(
    ([id, h]) => `| \`${h.check}\` | \`${id}\` | ${h.cause.replace(/\|/g, '\\|')} | ${h.fix.replace(/\|/g, '\\|')} |`,
  );
  return ['| check | hint | likely cause | fix |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}
