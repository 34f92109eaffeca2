# shellcheck shell=sh
# Inspect, as the login user (before sudo is tried): architecture, OS and the tools present.
ivo_emit64 uname "$(uname -m 2>/dev/null)"
[ -r /etc/os-release ] && ivo_emit_file os-release /etc/os-release
for ivo_t in dpkg-query rpm systemctl tar flock sha256sum base64 curl wget timeout bash nc ip getent awk install; do
  command -v "$ivo_t" >/dev/null 2>&1 && ivo_emit tool "$ivo_t"
done
