# shellcheck shell=sh
# The /etc/hosts managed block. A rerun replaces the block in place, never duplicates it; an empty
# block removes it with its markers; an unclosed block is an error, not a reason to drop the rest of
# the file. Values: IVO_HOSTS_BEGIN, IVO_HOSTS_END (the marker lines).
ivo_hosts_render() {
  # ivo_hosts_render CURRENT BLOCKFILE OUT: CURRENT with our block replaced by BLOCKFILE's lines
  ivo_hr_src=$1
  [ -f "$ivo_hr_src" ] || ivo_hr_src=/dev/null
  awk -v B="$IVO_HOSTS_BEGIN" -v E="$IVO_HOSTS_END" -v blockfile="$2" '
    function trimmed(s) { sub(/[ \t\r]+$/, "", s); return s }
    function emit_block(   line, n) {
      n = 0
      while ((getline line < blockfile) > 0) { if (n == 0) print B; print line; n++ }
      close(blockfile)
      if (n > 0) print E
    }
    trimmed($0) == B { inblk = 1; if (!done) { emit_block(); done = 1 }; next }
    trimmed($0) == E { inblk = 0; next }
    !inblk { print }
    END { if (inblk) exit 3; if (!done) emit_block() }
  ' "$ivo_hr_src" > "$3"
}
ivo_hosts_extract() {
  # ivo_hosts_extract CURRENT: prints the lines inside our block
  [ -f "$1" ] || return 0
  awk -v B="$IVO_HOSTS_BEGIN" -v E="$IVO_HOSTS_END" '
    function trimmed(s) { sub(/[ \t\r]+$/, "", s); return s }
    trimmed($0) == B { inblk = 1; seen++; next }
    trimmed($0) == E { inblk = 0; next }
    inblk && seen == 1 { print }
  ' "$1"
}
ivo_hosts_write() {
  # ivo_hosts_write NEW TARGET: replace TARGET by NEW atomically (rename in the same directory),
  # keeping its mode and owner; in place when TARGET cannot be renamed over (a bind mount).
  ivo_hw_target=$2
  if [ -L "$ivo_hw_target" ]; then ivo_hw_target=$(readlink -f "$ivo_hw_target"); fi
  ivo_hw_tmp="$ivo_hw_target.ivo-new"
  rm -f "$ivo_hw_tmp"
  if [ -f "$ivo_hw_target" ]; then
    cp -p "$ivo_hw_target" "$ivo_hw_tmp" || { rm -f "$ivo_hw_tmp"; return 1; }
  else
    : > "$ivo_hw_tmp" && chmod 0644 "$ivo_hw_tmp" || return 1
  fi
  cat "$1" > "$ivo_hw_tmp" || { rm -f "$ivo_hw_tmp"; return 1; }
  if ! mv -f "$ivo_hw_tmp" "$ivo_hw_target" 2>/dev/null; then
    rm -f "$ivo_hw_tmp"
    cat "$1" > "$ivo_hw_target" || return 1
  fi
}
