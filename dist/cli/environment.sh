# shellcheck shell=sh
# The environment of every script that changes or inspects a VM: the system's tools first, plain
# messages (tools' words are matched, e.g. "No space left").
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C
export LC_ALL
