// Which proxyMetadata entries may reach cluster.env. istioctl writes every proxyMetadata entry (the
// mesh config's defaultConfig.proxyMetadata merged with the proxy.istio.io/config annotation's) into
// cluster.env, and Istio's tools/packaging/common/istio-start.sh — run as root by the istio systemd
// unit — sources that file under `set -a`. A key is therefore a shell assignment run as root, and
// some variables change what the script executes as root. Every entry is checked here; the inventory
// parser, the cluster preflight and the renderer all use these checks (one definition).

/** A name the shell accepts on the left of `NAME=value`. */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Variables refused as proxyMetadata keys, with the reason. References are to Istio's
 * tools/packaging/common/istio-start.sh (and tools/istio-iptables/pkg/cmd/root.go for the
 * `pilot-agent istio-iptables` step the script runs as root).
 */
const REFUSED: ReadonlyMap<string, string> = new Map([
  ['EXEC_USER', 'istio-start.sh runs the agent as this user (root would give the proxy root)'],
  ['USER', 'istio-start.sh runs pilot-agent directly, as root, when EXEC_USER equals $USER'],
  ['ISTIO_BIN_BASE', 'istio-start.sh runs "${ISTIO_BIN_BASE}/pilot-agent" as root'],
  ['ISTIO_AGENT_FLAGS', 'istio-start.sh pastes it unquoted into the `bash -c` command line of the agent'],
  ['ISTIO_LOG_DIR', 'istio-start.sh pastes it unquoted into the `bash -c` command line of the agent'],
  ['ISTIO_SVC_IP', 'istio-start.sh pastes it unquoted into the `bash -c` command line (set it with internalIP)'],
  ['POD_NAME', 'istio-start.sh pastes it unquoted into the `bash -c` command line of the agent'],
  ['ISTIO_CUSTOM_IP_TABLES', 'istio-start.sh then skips the traffic capture it sets up as root'],
  ['ISTIO_INBOUND_INTERCEPTION_MODE', 'TPROXY makes istio-start.sh run the proxy as root (EXEC_USER=root)'],
  ['ISTIO_CLUSTER_CONFIG', 'istio-start.sh sources this file as root'],
  ['ISTIO_SIDECAR_CONFIG', 'istio-start.sh sources this file as root'],
  ['PROXY_CONFIG', "replaces the agent's ProxyConfig (binaryPath: the program the agent starts)"],
  ['SHELL', 'istio-start.sh starts the agent with `sudo -E -s`, which runs $SHELL'],
  ['PATH', 'decides which programs root runs (hostname, cut, sudo)'],
  ['BASH_ENV', 'bash sources this file before running a script'],
  ['ENV', 'sh sources this file on start'],
  ['IFS', 'changes how root shells split words'],
  ['SHELLOPTS', 'turns on bash options (e.g. xtrace) in the scripts root runs'],
  ['BASHOPTS', 'turns on bash options in the scripts root runs'],
  ['PS4', 'bash expands it (command substitution included) for every traced command'],
  ['GLOBIGNORE', 'changes pathname expansion in root shells'],
  ['CDPATH', 'changes where `cd` goes in root shells'],
  ['GCONV_PATH', 'glibc loads code modules from it'],
  ['LOCPATH', 'glibc loads locale data from it'],
  ['NLSPATH', 'glibc reads message catalogs from it'],
  ['HOSTALIASES', 'changes host name resolution of root programs'],
  ['GLIBC_TUNABLES', 'changes glibc behaviour of root programs'],
  ['NETWORK_NAMESPACE', 'a path `pilot-agent istio-iptables` opens as root'],
  ['CNI_MODE', 'changes where `pilot-agent istio-iptables` applies rules as root'],
  ['DRY_RUN', '`pilot-agent istio-iptables` then applies no traffic capture'],
  ['SKIP_RULE_APPLY', '`pilot-agent istio-iptables` then applies no traffic capture'],
  ['PROXY_UID', 'decides whose traffic `pilot-agent istio-iptables` exempts from capture'],
  ['PROXY_GID', 'decides whose traffic `pilot-agent istio-iptables` exempts from capture'],
]);

/** Refused name prefixes: the dynamic loader's and bash's own variables (BASH_FUNC_* defines functions). */
const REFUSED_PREFIXES: ReadonlyArray<[string, string]> = [
  ['LD_', 'the dynamic loader reads it (LD_PRELOAD runs code in every root program)'],
  ['BASH_', "bash's own variables (BASH_ENV, BASH_XTRACEFD, BASH_FUNC_*)"],
];

/** C0 controls, DEL, C1 controls and the Unicode line/paragraph separators. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;

/** The first control character of `text`, described (`U+000A`), or undefined. */
export function controlCharacterIn(text: string, allowed = ''): string | undefined {
  for (const character of text) {
    if (allowed.includes(character)) continue;
    if (CONTROL.test(character)) {
      return `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    }
  }
  return undefined;
}

/** Why `key` may not be a proxyMetadata key, or undefined when it may. */
export function proxyMetadataKeyProblem(key: string): string | undefined {
  if (!SHELL_NAME.test(key)) {
    return (
      `proxyMetadata key ${JSON.stringify(key)} is not a shell variable name ` +
      `([A-Za-z_][A-Za-z0-9_]*); cluster.env, which istio-start.sh sources as root, would run it as a command`
    );
  }
  const reason = REFUSED.get(key) ?? REFUSED_PREFIXES.find(([prefix]) => key.startsWith(prefix))?.[1];
  if (reason !== undefined) {
    return (
      `proxyMetadata key ${key} is refused: ${reason}. cluster.env is sourced as root on the ` +
      `VM; Istio's ISTIO_META_*, CA_ADDR, ISTIO_META_DNS_CAPTURE and the like stay allowed`
    );
  }
  return undefined;
}

/** Why `value` (of proxyMetadata key `key`) may not go to cluster.env, or undefined. */
export function proxyMetadataValueProblem(key: string, value: string): string | undefined {
  const control = controlCharacterIn(value);
  if (control !== undefined) {
    return `proxyMetadata ${key} has a control character (${control}); cluster.env holds one value per line`;
  }
  return undefined;
}

/** Every problem of a proxyMetadata map, each naming its key. */
export function proxyMetadataProblems(metadata: Record<string, string>): { key: string; problem: string }[] {
  const out: { key: string; problem: string }[] = [];
  for (const [key, value] of Object.entries(metadata)) {
    const problem = proxyMetadataKeyProblem(key) ?? proxyMetadataValueProblem(key, value);
    if (problem !== undefined) out.push({ key, problem });
  }
  return out;
}
