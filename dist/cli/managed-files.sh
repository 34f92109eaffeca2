# shellcheck shell=sh
# The managed-files table (one file a line, fields without blanks).
# Values: IVO_MANAGED_FILES (lines of: KEY STAGED-NAME PATH OWNER MODE RESTARTS COMPARED-AS).
ivo_each_managed_file() {
  # ivo_each_managed_file FUNCTION: FUNCTION KEY STAGED PATH OWNER MODE RESTARTS COMPARED-AS, for each managed file
  while read -r ivo_mf_key ivo_mf_staged ivo_mf_path ivo_mf_owner ivo_mf_mode ivo_mf_restarts ivo_mf_compared <&7; do
    [ -n "$ivo_mf_key" ] || continue
    "$1" "$ivo_mf_key" "$ivo_mf_staged" "$ivo_mf_path" "$ivo_mf_owner" "$ivo_mf_mode" "$ivo_mf_restarts" \
      "$ivo_mf_compared" 7<&-
  done 7<<IVO_END
$IVO_MANAGED_FILES
IVO_END
}
