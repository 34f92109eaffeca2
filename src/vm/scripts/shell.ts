// Building blocks of the remote scripts: POSIX shell quoting, the line protocol the scripts speak
// back to us, and the wrapper that runs a script as root through `sudo -n`.

/** Single-quotes a value for POSIX sh: safe for any text (NUL bytes cannot be passed and are rejected). */
export function shQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a value for a remote shell command contains a NUL byte');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Shell functions every script starts with. Output protocol, one item per line on stdout:
 *   `@@ivo KEY VALUE`     VALUE is plain text without newlines
 *   `@@ivo64 KEY BASE64`  VALUE is arbitrary bytes
 *   `@@ivo64 error:CODE BASE64-MESSAGE` then a non-zero exit: the script failed for a named reason.
 * Every other line (a login banner, a chatty tool) is ignored by the parser.
 */
export const PROTOCOL_PRELUDE = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C
export LC_ALL
ivo_b64() { base64 | tr -d '\\n'; }
ivo_emit() { printf '@@ivo %s %s\\n' "$1" "$2"; }
ivo_emit64() { printf '@@ivo64 %s %s\\n' "$1" "$(printf '%s' "$2" | ivo_b64)"; }
ivo_emit_file() { printf '@@ivo64 %s ' "$1"; ivo_b64 < "$2"; printf '\\n'; }
ivo_fail() { ivo_emit64 "error:$1" "$2"; exit 1; }
`;

/** Exit code of the wrapper when `sudo -n` does not work for the login user. */
export const SUDO_FAILED_EXIT = 3;

/**
 * A script that runs `inner` as root. As the login user it first proves `sudo -n` works (reporting
 * sudo's own words and the user name when it does not), then replaces itself with
 * `sudo -n /bin/sh -c INNER`, so the caller's stdin reaches the root script untouched.
 * `userPart` runs before the sudo probe, as the login user (facts that need no root).
 */
export function asRoot(inner: string, userPart = ''): string {
  return `${PROTOCOL_PRELUDE}ivo_emit64 user "$(id -un 2>/dev/null)"
${userPart}
if ! ivo_sudo_out=$(sudo -n true 2>&1 </dev/null); then
  ivo_emit64 error:sudo "$ivo_sudo_out"
  exit ${SUDO_FAILED_EXIT}
fi
exec sudo -n /bin/sh -c ${shQuote(PROTOCOL_PRELUDE + inner)}
`;
}

/** A script that runs as the login user (reads localhost URLs, etc.). */
export function asUser(body: string): string {
  return `${PROTOCOL_PRELUDE}${body}`;
}
