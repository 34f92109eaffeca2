// Credentials for the Kubernetes API: the kubeconfig input (YAML or base64 of it), a kubeconfig
// file, KUBECONFIG / ~/.kube/config, or the in-cluster service account. Returns every secret string
// found so the caller can mask them before anything is printed. Error messages never quote the
// kubeconfig: they give the source, the line, the context names and the server URL only.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ClusterConfigError, redact } from './errors.js';

export interface LoadKubeConfigOptions {
  /** kubeconfig content: YAML, or base64 of it (the action's `kubeconfig` input). */
  kubeconfig?: string;
  /** Path of a kubeconfig file (CLI --kubeconfig). */
  kubeconfigPath?: string;
  /** Context to use instead of current-context. */
  context?: string;
  /** Environment to read KUBECONFIG / HOME / in-cluster variables from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Where the in-cluster service account token lives (tests). */
  serviceAccountDir?: string;
}

export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  /** API server URL of the selected context (safe to print). */
  server: string;
  /** Context name in use ('' for in-cluster). */
  context: string;
  /** Where the credentials came from: 'input', a file path, or 'in-cluster'. */
  source: string;
  /** Every secret value to mask: tokens, key/cert data, passwords, the whole text. */
  secrets: string[];
}

/** The chosen context is the problem (not there, or none chosen): the `context` input is what to fix. */
export class KubeContextError extends ClusterConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'KubeContextError';
  }
}

const IN_CLUSTER_SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Accepts YAML or base64-encoded YAML; returns the YAML text. Exported for tests. */
export function decodeKubeconfigText(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length > 0 && /^[A-Za-z0-9+/=\s]+$/.test(trimmed) && !/:\s/.test(trimmed)) {
    const decoded = Buffer.from(trimmed.replace(/\s+/g, ''), 'base64').toString('utf8');
    if (/(^|\n)\s*(apiVersion|clusters|contexts|users|kind)\s*:/.test(decoded)) return decoded;
  }
  return text;
}

interface RawKubeconfig {
  users?: Array<{ name?: string; user?: Record<string, unknown> }>;
}

/** Every credential value in a parsed kubeconfig (plus decoded PEM text of key data). Exported for tests. */
export function secretsOfKubeconfig(doc: unknown): string[] {
  const out: string[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'string' && v.length > 0) out.push(v);
  };
  const users = (doc as RawKubeconfig | null)?.users;
  if (!Array.isArray(users)) return out;
  for (const entry of users) {
    const u = entry?.user;
    if (!u || typeof u !== 'object') continue;
    for (const key of ['token', 'password', 'client-key-data', 'client-certificate-data']) add(u[key]);
    for (const key of ['client-key-data', 'client-certificate-data']) {
      const data = u[key];
      if (typeof data === 'string') {
        const pem = Buffer.from(data, 'base64').toString('utf8');
        add(pem);
        for (const line of pem.split('\n')) if (line.length >= 16 && !line.startsWith('-----')) add(line.trim());
      }
    }
    const provider = u['auth-provider'] as { config?: Record<string, unknown> } | undefined;
    if (provider?.config && typeof provider.config === 'object') for (const v of Object.values(provider.config)) add(v);
    const exec = u['exec'] as { env?: Array<{ value?: unknown }> } | undefined;
    if (Array.isArray(exec?.env)) for (const e of exec.env) add(e?.value);
  }
  return [...new Set(out)];
}

function parseKubeconfigYaml(text: string, source: string): unknown {
  try {
    const doc = parseYaml(text, { prettyErrors: true });
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new ClusterConfigError(
        `kubeconfig from ${source} is not a kubeconfig (expected a YAML mapping with clusters, contexts and users)`,
      );
    }
    return doc;
  } catch (err) {
    if (err instanceof ClusterConfigError) throw err;
    const line = err instanceof YAMLParseError ? err.linePos?.[0] : undefined;
    const where = line ? ` at line ${line.line}, column ${line.col}` : '';
    const code = err instanceof YAMLParseError ? ` (${err.code})` : '';
    throw new ClusterConfigError(`kubeconfig from ${source} is not valid YAML${where}${code}`);
  }
}

function selectContext(kc: KubeConfig, wanted: string | undefined, source: string, secrets: string[]): void {
  const names = kc.getContexts().map((c) => c.name);
  const list = names.length ? names.map((n) => `"${n}"`).join(', ') : '(none)';
  if (wanted) {
    if (!names.includes(wanted)) {
      throw new KubeContextError(
        redact(`kubeconfig from ${source} has no context "${wanted}"; available contexts: ${list}`, secrets),
      );
    }
    kc.setCurrentContext(wanted);
    return;
  }
  const current = kc.getCurrentContext();
  if (!current || !names.includes(current)) {
    throw new KubeContextError(
      redact(
        `kubeconfig from ${source} has ` +
          `${current ? `current-context "${current}", which is not defined` : 'no current-context'}; ` +
          `give the context input; available contexts: ${list}`,
        secrets,
      ),
    );
  }
}

function loadText(text: string, source: string, context: string | undefined, extraSecrets: string[]): LoadedKubeConfig {
  const yamlText = decodeKubeconfigText(text);
  const wholeTexts = [text, text.trim(), yamlText].filter((t) => t.trim().length > 0);
  const doc = parseKubeconfigYaml(yamlText, source);
  const secrets = [...new Set([...secretsOfKubeconfig(doc), ...wholeTexts, ...extraSecrets])];
  const kc = new KubeConfig();
  try {
    kc.loadFromString(yamlText);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ClusterConfigError(redact(`kubeconfig from ${source} is invalid: ${reason}`, secrets));
  }
  selectContext(kc, context, source, secrets);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new ClusterConfigError(
      redact(
        `kubeconfig from ${source}: context "${kc.getCurrentContext()}" names no cluster with a server URL`,
        secrets,
      ),
    );
  }
  return { kubeConfig: kc, server: cluster.server, context: kc.getCurrentContext(), source, secrets };
}

function readKubeconfigFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ClusterConfigError(`cannot read kubeconfig file ${path} (${code})`);
  }
}

/**
 * Loads credentials in this order: `kubeconfig` content, `kubeconfigPath`, $KUBECONFIG (first
 * existing file of the list), ~/.kube/config, the in-cluster service account.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): LoadedKubeConfig {
  const env = options.env ?? process.env;
  if (options.kubeconfig !== undefined && options.kubeconfig.trim() !== '') {
    return loadText(options.kubeconfig, 'the kubeconfig input', options.context, []);
  }
  if (options.kubeconfigPath) {
    return loadText(readKubeconfigFile(options.kubeconfigPath), options.kubeconfigPath, options.context, []);
  }
  const fromEnv = (env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) {
    const path = fromEnv.find((p) => existsSync(p));
    if (!path) throw new ClusterConfigError(`no kubeconfig file found at KUBECONFIG=${fromEnv.join(delimiter)}`);
    return loadText(readKubeconfigFile(path), path, options.context, []);
  }
  const home = env['HOME'] ?? homedir();
  const defaultPath = join(home, '.kube', 'config');
  if (existsSync(defaultPath)) return loadText(readKubeconfigFile(defaultPath), defaultPath, options.context, []);

  const saDir = options.serviceAccountDir ?? IN_CLUSTER_SA_DIR;
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (host && existsSync(join(saDir, 'token'))) {
    if (options.context)
      throw new KubeContextError(
        `context "${options.context}" given, but running with in-cluster credentials (no kubeconfig)`,
      );
    const token = readFileSync(join(saDir, 'token'), 'utf8').trim();
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const kc = new KubeConfig();
    // Same shape client-node's loadFromCluster() builds, with our env and paths.
    kc.loadFromClusterAndUser(
      { name: 'in-cluster', server, caFile: join(saDir, 'ca.crt'), skipTLSVerify: false },
      { name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile: join(saDir, 'token') } } },
    );
    return { kubeConfig: kc, server, context: '', source: 'in-cluster', secrets: token ? [token] : [] };
  }
  throw new ClusterConfigError(
    'no Kubernetes credentials: give the kubeconfig input (or --kubeconfig), set KUBECONFIG, or run inside a cluster',
  );
}
