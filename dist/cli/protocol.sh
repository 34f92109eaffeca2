# shellcheck shell=sh
# The remote-script protocol (src/vm/scripts/protocol.ts parses it). Every script the runner sends to a
# VM starts with its values (a header of quoted assignments) and these functions. Output on stdout,
# one record a line; every other line (a login banner, a chatty tool) is ignored:
#   @@ivo KEY VALUE        VALUE is plain text without newlines
#   @@ivo64 KEY BASE64     VALUE is arbitrary bytes
#   @@ivo64 error:CODE BASE64-MESSAGE, then a non-zero exit: the script failed for a named reason
# A section (a command's or an HTTP read's outcome) is three records; it counts only when its last
# record arrived, so a cut connection never yields half a section:
#   @@ivo64 NAME.err BASE64-STDERR / @@ivo64 NAME.body BASE64-BODY / @@ivo section NAME rc=RC http=HTTP
# A list value has one item a line (ivo_each_line walks it).
ivo_b64() { base64 | tr -d '\n'; }
ivo_emit() { printf '@@ivo %s %s\n' "$1" "$2"; }
ivo_emit64() { printf '@@ivo64 %s %s\n' "$1" "$(printf '%s' "$2" | ivo_b64)"; }
ivo_emit_file() {
  printf '@@ivo64 %s ' "$1"
  ivo_b64 < "$2"
  printf '\n'
}
ivo_fail() {
  ivo_emit64 "error:$1" "$2"
  exit 1
}
ivo_section() {
  # ivo_section NAME RC HTTP BODY-FILE ERR-FILE (the leading newline ends whatever a tool left unended)
  printf '\n@@ivo64 %s.err ' "$1"
  if [ -s "$5" ]; then ivo_b64 < "$5"; fi
  printf '\n@@ivo64 %s.body ' "$1"
  if [ -s "$4" ]; then ivo_b64 < "$4"; fi
  printf '\n@@ivo section %s rc=%s http=%s\n' "$1" "$2" "$3"
}
ivo_each_line() {
  # ivo_each_line LINES FUNCTION: FUNCTION LINE, for each non-empty line of LINES
  while IFS= read -r ivo_el_line <&7; do
    [ -n "$ivo_el_line" ] || continue
    "$2" "$ivo_el_line" 7<&-
  done 7<<IVO_END
$1
IVO_END
}
