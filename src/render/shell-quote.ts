// Shell quoting with exactly the behaviour of Istio's pkg/util/shellescape.Quote, which istioctl
// uses for every value it writes to cluster.env.
//
// Istio's "unsafe" pattern is the Go raw string `[^\\w@%+=:,./-]`. In a raw string `\\w` is an
// escaped backslash followed by the letter w, so the only characters Istio treats as safe are:
// backslash, `w`, `@`, `%`, `+`, `=`, `:`, `,`, `.`, `/`, `-`. Any other character (letters other
// than w, digits, `*`, spaces, ...) makes the whole value single-quoted. That is why cluster.env
// shows `'latest'` and `'10.10.10.10'`. A value made only of safe characters is returned as-is,
// even when it contains a backslash; such a value does not survive shell evaluation unchanged
// (for example `\w` evaluates to `w`). We keep that behaviour because the output must be
// byte-identical to istioctl's; callers that need a lossless quote can use `shellQuoteLossless`.

const ISTIO_SAFE_CHARACTERS = new Set(['\\', 'w', '@', '%', '+', '=', ':', ',', '.', '/', '-']);

/** True when istio's shellescape would leave `value` unquoted. */
export function isIstioShellSafe(value: string): boolean {
  for (const character of value) {
    if (!ISTIO_SAFE_CHARACTERS.has(character)) return false;
  }
  return true;
}

/** istio pkg/util/shellescape.Quote: '' for empty, single-quoted when any unsafe character occurs. */
export function shellQuote(value: string): string {
  if (value.length === 0) return "''";
  if (isIstioShellSafe(value)) return value;
  return `'${value.replaceAll("'", `'"'"'`)}'`;
}

/** Always single-quotes (except empty → ''), so every string round-trips through `sh`. */
export function shellQuoteLossless(value: string): string {
  return `'${value.replaceAll("'", `'"'"'`)}'`;
}
