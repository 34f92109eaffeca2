// Inventory text (YAML or JSON) → validated, defaults-applied `Inventory`, or an InventoryError that
// lists every problem with its field path and line. Reads nothing but the given file.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { INLINE_SOURCE, isInlineInventory } from './source.js';
import { formatPath, InventoryError, type InventoryIssue, type PathSegment } from './errors.js';
import { locate } from './locate.js';
import {
  checkDns1123Label,
  checkDns1123Subdomain,
  checkHost,
  checkIp,
  checkLabelValue,
  checkQualifiedKey,
} from './names.js';
import { controlCharacterIn, proxyMetadataProblems } from '../render/proxy-metadata.js';
import { parseYaml11 } from '../render/yaml-input.js';
import { INVENTORY_SCHEMA } from './schema.js';
// The raw document's shapes, as the schema guarantees them once it has validated (generated from it).
import type * as Schema from './schema-types.js';
import type { GroupSpec, Inventory, MeshSpec, SshEndpoint, VmSpec } from './types.js';

export const DEFAULT_SSH_PORT = 22;
export const DEFAULT_ISTIO_NAMESPACE = 'istio-system';
export const DEFAULT_EAST_WEST_SERVICE = 'istio-eastwestgateway';

// ---- schema validation ----------------------------------------------------------------------

let compiled: ReturnType<Ajv['compile']> | undefined;
function schemaValidator(): ReturnType<Ajv['compile']> {
  compiled ??= new Ajv({ allErrors: true, verbose: true, strict: false }).compile(INVENTORY_SCHEMA);
  return compiled;
}

interface PendingIssue {
  segments: PathSegment[];
  /** Where to point: the key (unknown fields) or the value; `locateAt` overrides the segments. */
  pointAtKey?: boolean;
  locateAt?: PathSegment[];
  message: string;
}

function pointerToSegments(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const segments: PathSegment[] = [];
  let current: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    const segment: PathSegment = Array.isArray(current) && /^\d+$/.test(key) ? Number(key) : key;
    segments.push(segment);
    current = current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[key] : undefined;
  }
  return segments;
}

function closestName(name: string, candidates: string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = dp[0]!;
      dp[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const tmp = dp[j]!;
        dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = tmp;
      }
    }
    return dp[b.length]!;
  };
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const score = c.toLowerCase() === name.toLowerCase() ? 0 : distance(name.toLowerCase(), c.toLowerCase());
    if (score < bestScore) {
      bestScore = score;
      best = c;
    }
  }
  return bestScore <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string (put it in quotes if YAML reads it as something else)',
  object: 'a mapping (key: value lines)',
  array: 'a list (lines starting with "- ")',
  boolean: 'true or false',
};

function isPortSchema(schema: unknown): boolean {
  const s = schema as { maximum?: number; minimum?: number } | undefined;
  return s?.maximum === 65535 && s.minimum === 1;
}

function ajvIssue(error: ErrorObject, data: unknown): PendingIssue | undefined {
  const segments = pointerToSegments(error.instancePath, data);
  const parentSchema = error.parentSchema as Record<string, unknown> | undefined;
  const value = error.data;
  // `service` is `true | {name, ports}`: report the branch that matches the value's type only.
  const inServiceOneOf = /\/service\/oneOf\//.test(error.schemaPath);
  if (error.keyword === 'oneOf') {
    if (typeof value === 'boolean' || (value !== null && typeof value === 'object' && !Array.isArray(value)))
      return undefined;
    return { segments, message: 'must be true, false, or a mapping with name and/or ports' };
  }
  if (inServiceOneOf && error.keyword === 'type') return undefined;
  switch (error.keyword) {
    case 'additionalProperties': {
      const extra = String((error.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys((parentSchema?.properties as object | undefined) ?? {});
      const guess = closestName(extra, allowed);
      return {
        segments: [...segments, extra],
        pointAtKey: true,
        message:
          `unknown field '${extra}'${guess ? ` — did you mean '${guess}'?` : ''} (allowed ` +
          `here: ${allowed.join(', ')})`,
      };
    }
    case 'required': {
      const missing = String((error.params as { missingProperty: string }).missingProperty);
      return {
        segments: [...segments, missing],
        locateAt: segments,
        pointAtKey: true,
        message: `is required: add '${missing}:' here`,
      };
    }
    case 'type': {
      if (isPortSchema(parentSchema))
        return { segments, message: `must be an integer 1..65535 (got ${JSON.stringify(value)})` };
      const type = String((error.params as { type: string }).type);
      return {
        segments,
        pointAtKey: true,
        message: `must be ${TYPE_WORDS[type] ?? type} (got ${JSON.stringify(value) ?? 'nothing'})`,
      };
    }
    case 'minimum':
    case 'maximum':
      if (isPortSchema(parentSchema))
        return { segments, message: `must be an integer 1..65535 (got ${JSON.stringify(value)})` };
      return {
        segments,
        message:
          `must be ${error.keyword === 'minimum' ? '>=' : '<='} ` +
          `${(error.params as { limit: number }).limit} (got ${JSON.stringify(value)})`,
      };
    case 'pattern':
    case 'maxLength': {
      const text = String(value);
      const description = String(parentSchema?.description ?? '');
      const message = description.includes('subdomain') ? checkDns1123Subdomain(text) : checkDns1123Label(text);
      return { segments, message: `'${text}' ${message ?? 'has the wrong form'}` };
    }
    case 'minLength':
      return { segments, message: 'must not be empty' };
    case 'enum': {
      const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.map((v) => String(v));
      return { segments, message: `must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})` };
    }
    case 'const':
      return { segments, message: `must be 1, the only inventory format version (got ${JSON.stringify(value)})` };
    case 'minItems':
      return { segments, message: 'must not be empty: list at least one entry' };
    default:
      return { segments, message: error.message ?? `fails schema rule ${error.keyword}` };
  }
}

// ---- semantic checks beyond the schema ---------------------------------------------------------

function checkLabels(labels: Record<string, string> | undefined, at: PathSegment[], out: PendingIssue[]): void {
  for (const [key, value] of Object.entries(labels ?? {})) {
    const keyProblem = checkQualifiedKey(key);
    if (keyProblem) out.push({ segments: [...at, key], pointAtKey: true, message: `label ${keyProblem}` });
    const valueProblem = checkLabelValue(value);
    if (valueProblem) out.push({ segments: [...at, key], message: valueProblem });
  }
}

function checkAnnotations(
  annotations: Record<string, string> | undefined,
  at: PathSegment[],
  out: PendingIssue[],
): void {
  for (const key of Object.keys(annotations ?? {})) {
    const problem = checkQualifiedKey(key);
    if (problem) out.push({ segments: [...at, key], pointAtKey: true, message: `annotation ${problem}` });
  }
}

/** Annotation holding ProxyConfig overrides; its proxyMetadata reaches cluster.env (sourced as root). */
const PROXY_CONFIG_ANNOTATION = 'proxy.istio.io/config';

function checkProxyConfigAnnotation(
  annotations: Record<string, string> | undefined,
  at: PathSegment[],
  out: PendingIssue[],
): void {
  const text = annotations?.[PROXY_CONFIG_ANNOTATION];
  if (text === undefined) return;
  const where = [...at, PROXY_CONFIG_ANNOTATION];
  let config: unknown;
  try {
    config = parseYaml11(text, `annotation ${PROXY_CONFIG_ANNOTATION}`);
  } catch (error) {
    out.push({ segments: where, message: (error as Error).message });
    return;
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) return;
  const record = config as Record<string, unknown>;
  const metadata = record.proxyMetadata ?? record.proxy_metadata;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return;
  const strings: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) if (typeof value === 'string') strings[key] = value;
  for (const { problem } of proxyMetadataProblems(strings)) out.push({ segments: where, message: problem });
}

/**
 * Control characters (and U+2028/2029) anywhere in the inventory's text: keys and values end up in
 * files root sources, shell command lines, Kubernetes objects and logs. Annotation values may span
 * lines (a multi-line proxy.istio.io/config), so they may hold newlines and tabs.
 */
function controlCharacterIssues(value: unknown, at: PathSegment[], out: PendingIssue[]): void {
  const inAnnotations = at.length >= 2 && at[at.length - 2] === 'annotations' && typeof at[at.length - 1] === 'string';
  if (typeof value === 'string') {
    const control = controlCharacterIn(value, inAnnotations ? '\n\t' : '');
    if (control !== undefined) out.push({ segments: at, message: `has a control character (${control}); remove it` });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => controlCharacterIssues(item, [...at, i], out));
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const control = controlCharacterIn(key);
      if (control !== undefined) {
        out.push({ segments: [...at, key], pointAtKey: true, message: `key has a control character (${control})` });
      }
      controlCharacterIssues(item, [...at, key], out);
    }
  }
}

function checkPortNames(ports: Record<string, number> | undefined, at: PathSegment[], out: PendingIssue[]): void {
  for (const name of Object.keys(ports ?? {})) {
    const problem = checkDns1123Label(name);
    if (problem) out.push({ segments: [...at, name], pointAtKey: true, message: `port name '${name}' ${problem}` });
  }
}

function checkEndpoint(endpoint: Schema.SshEndpoint | undefined, at: PathSegment[], out: PendingIssue[]): void {
  if (!endpoint) return;
  const problem = checkHost(endpoint.host);
  if (problem) out.push({ segments: [...at, 'host'], message: problem });
}

/** Namespaces a group may not use: Kubernetes' own and Istio's (whose ServiceAccounts are the control plane's). */
function systemNamespaceReason(namespace: string, istioNamespace: string): string | undefined {
  if (namespace === istioNamespace) return 'the Istio namespace (mesh.istioNamespace)';
  if (namespace === 'kube-system' || namespace === 'kube-public' || namespace === 'kube-node-lease')
    return 'a Kubernetes system namespace';
  return undefined;
}

function semanticIssues(raw: Schema.InventoryDocument): PendingIssue[] {
  const out: PendingIssue[] = [];
  controlCharacterIssues(raw, [], out);
  const ew = raw.mesh?.eastWestGateway;
  if (ew?.address !== undefined) {
    const problem = checkHost(ew.address);
    if (problem) out.push({ segments: ['mesh', 'eastWestGateway', 'address'], message: problem });
  }
  checkEndpoint(raw.defaults?.bastion, ['defaults', 'bastion'], out);
  checkLabels(raw.defaults?.labels, ['defaults', 'labels'], out);

  const groupsSeen = new Map<string, number>();
  const vmNames = new Map<string, PathSegment[]>();
  const sshTargets = new Map<string, PathSegment[]>();
  const internalIPs = new Map<string, PathSegment[]>();
  raw.groups.forEach((group, gi) => {
    const g: PathSegment[] = ['groups', gi];
    const groupKey = `${group.namespace}/${group.name}`;
    const firstGroup = groupsSeen.get(groupKey);
    if (firstGroup !== undefined) {
      out.push({
        segments: [...g, 'name'],
        message:
          `duplicate group '${group.name}' in namespace '${group.namespace}' (also ` +
          `groups[${firstGroup}]); give each group its own name, or merge their vms lists`,
      });
    } else groupsSeen.set(groupKey, gi);
    checkLabels(group.labels, [...g, 'labels'], out);
    checkAnnotations(group.annotations, [...g, 'annotations'], out);
    checkProxyConfigAnnotation(group.annotations, [...g, 'annotations'], out);
    checkPortNames(group.ports, [...g, 'ports'], out);
    if (group.service && typeof group.service === 'object')
      checkPortNames(group.service.ports, [...g, 'service', 'ports'], out);
    const serviceRequested = group.service === true || typeof group.service === 'object';
    const system = systemNamespaceReason(group.namespace, raw.mesh?.istioNamespace ?? DEFAULT_ISTIO_NAMESPACE);
    if (system !== undefined) {
      out.push({
        segments: [...g, 'namespace'],
        message:
          `'${group.namespace}' is ${system}: VM groups do not go there (their ` +
          `ServiceAccounts would sit next to the control plane's); pick a namespace of their own`,
      });
    }
    if (serviceRequested && Object.keys(group.labels ?? {}).length === 0) {
      out.push({
        segments: [...g, 'service'],
        message:
          "a Service selects the group's workloads by the group's labels: add `labels:` to the " +
          'group (a Service without a selector would not select the VMs, and an empty selector must ' +
          'never reach the namespace)',
      });
    }
    if (serviceRequested) {
      const servicePorts =
        typeof group.service === 'object' && group.service.ports ? group.service.ports : (group.ports ?? {});
      if (Object.keys(servicePorts).length === 0) {
        out.push({
          segments: [...g, 'service'],
          message: 'a Service needs ports: add `ports:` to the group or `service.ports`',
        });
      }
    }
    if (group.probe) {
      const methods = (['httpGet', 'tcpSocket', 'exec', 'grpc'] as const).filter((m) => group.probe![m] !== undefined);
      if (methods.length > 1) {
        out.push({
          segments: [...g, 'probe', methods[1]!],
          pointAtKey: true,
          message: `a probe has exactly one check; found ${methods.join(' and ')} — keep one`,
        });
      }
    }
    checkEndpoint(group.defaults?.bastion, [...g, 'defaults', 'bastion'], out);
    checkLabels(group.defaults?.labels, [...g, 'defaults', 'labels'], out);

    group.vms.forEach((vm, vi) => {
      const v: PathSegment[] = [...g, 'vms', vi];
      const seenName = vmNames.get(vm.name);
      if (seenName) {
        out.push({
          segments: [...v, 'name'],
          message:
            `duplicate VM name '${vm.name}' (also ${formatPath(seenName)}); VM names must be ` +
            `unique across the whole inventory — rename one`,
        });
      } else vmNames.set(vm.name, v);

      const hostProblem = checkHost(vm.address);
      if (hostProblem) out.push({ segments: [...v, 'address'], message: hostProblem });
      const port = vm.port ?? group.defaults?.port ?? raw.defaults?.port ?? DEFAULT_SSH_PORT;
      const bastion = vm.bastion ?? group.defaults?.bastion ?? raw.defaults?.bastion;
      const via = bastion ? `${bastion.host}:${bastion.port ?? DEFAULT_SSH_PORT}->` : '';
      const target = `${via}${vm.address.toLowerCase()}:${port}`;
      const seenTarget = sshTargets.get(target);
      if (seenTarget) {
        out.push({
          segments: [...v, 'address'],
          message:
            `duplicate SSH address ${vm.address}:${port} (also ${formatPath(seenTarget)}); ` +
            `two entries would onboard the same machine — remove one or fix the address/port`,
        });
      } else sshTargets.set(target, v);

      if (vm.internalIP !== undefined) {
        const problem = checkIp(vm.internalIP);
        if (problem) out.push({ segments: [...v, 'internalIP'], message: problem });
        else {
          const key = vm.internalIP.toLowerCase();
          const seenIP = internalIPs.get(key);
          if (seenIP) {
            out.push({
              segments: [...v, 'internalIP'],
              message:
                `duplicate internalIP ${vm.internalIP} (also ${formatPath(seenIP)}); each VM ` +
                `needs its own workload address`,
            });
          } else internalIPs.set(key, v);
        }
      }
      if (vm.externalIP !== undefined) {
        const problem = checkIp(vm.externalIP);
        if (problem) out.push({ segments: [...v, 'externalIP'], message: problem });
      }
      checkLabels(vm.labels, [...v, 'labels'], out);
      checkEndpoint(vm.bastion, [...v, 'bastion'], out);
      const user = vm.user ?? group.defaults?.user ?? raw.defaults?.user;
      if (user === undefined) {
        out.push({
          segments: [...v, 'user'],
          locateAt: v,
          message: "no SSH user: set `user:` on this VM, in the group's `defaults:`, or in the file's `defaults:`",
        });
      }
    });
  });
  return out;
}

// ---- building the model -------------------------------------------------------------------------

function endpoint(raw: Schema.SshEndpoint, fallbackUser: string): SshEndpoint {
  return { host: raw.host, port: raw.port ?? DEFAULT_SSH_PORT, user: raw.user ?? fallbackUser };
}

function buildModel(raw: Schema.InventoryDocument, source: string, doc: Document, lineCounter: LineCounter): Inventory {
  const istioNamespace = raw.mesh?.istioNamespace ?? DEFAULT_ISTIO_NAMESPACE;
  const ew = raw.mesh?.eastWestGateway;
  const mesh: MeshSpec = {
    revision: raw.mesh?.revision ?? '',
    istioNamespace,
    eastWestGateway: {
      service: ew?.service ?? DEFAULT_EAST_WEST_SERVICE,
      namespace: ew?.namespace ?? istioNamespace,
      ...(ew?.address !== undefined ? { address: ew.address } : {}),
    },
    ...(raw.mesh?.clusterID !== undefined ? { clusterID: raw.mesh.clusterID } : {}),
  };
  const fileDefaults = raw.defaults ?? {};
  const groups: GroupSpec[] = raw.groups.map((group, gi) => {
    const groupDefaults = group.defaults ?? {};
    const ports = { ...(group.ports ?? {}) };
    const vms: VmSpec[] = group.vms.map((vm, vi) => {
      const user = (vm.user ?? groupDefaults.user ?? fileDefaults.user)!;
      const bastion = vm.bastion ?? groupDefaults.bastion ?? fileDefaults.bastion;
      const line = locate(doc, lineCounter, ['groups', gi, 'vms', vi])?.line;
      const spec: VmSpec = {
        name: vm.name,
        group: group.name,
        ssh: { host: vm.address, port: vm.port ?? groupDefaults.port ?? fileDefaults.port ?? DEFAULT_SSH_PORT, user },
        labels: { ...(fileDefaults.labels ?? {}), ...(groupDefaults.labels ?? {}), ...(vm.labels ?? {}) },
      };
      if (bastion) spec.bastion = endpoint(bastion, user);
      if (vm.internalIP !== undefined) spec.internalIP = vm.internalIP;
      if (vm.externalIP !== undefined) spec.externalIP = vm.externalIP;
      if (line !== undefined) spec.line = line;
      return spec;
    });
    const spec: GroupSpec = {
      name: group.name,
      namespace: group.namespace,
      serviceAccount: group.serviceAccount ?? group.name,
      labels: { ...(group.labels ?? {}) },
      annotations: { ...(group.annotations ?? {}) },
      ports,
      network: group.network ?? '',
      registration: group.registration ?? 'auto',
      vms,
    };
    if (group.probe !== undefined) spec.probe = structuredClone(group.probe);
    if (group.adopt === true) spec.adopt = true;
    if (group.service === true) spec.service = { name: group.name, ports: { ...ports } };
    else if (group.service && typeof group.service === 'object') {
      spec.service = { name: group.service.name ?? group.name, ports: { ...(group.service.ports ?? ports) } };
    }
    const line = locate(doc, lineCounter, ['groups', gi])?.line;
    if (line !== undefined) spec.line = line;
    return spec;
  });
  return { source, mesh, groups };
}

// ---- entry points -------------------------------------------------------------------------------

function toIssues(pending: PendingIssue[], doc: Document, lineCounter: LineCounter): InventoryIssue[] {
  const seen = new Set<string>();
  const issues: InventoryIssue[] = [];
  for (const p of pending) {
    const pathText = formatPath(p.segments);
    const id = `${pathText}\u0000${p.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    // Point at the key of the field (not at a nested block that starts on the next line).
    const position = locate(doc, lineCounter, p.locateAt ?? p.segments, p.pointAtKey === true);
    issues.push({
      path: pathText,
      message: p.message,
      ...(position ? { line: position.line, column: position.column } : {}),
    });
  }
  return issues;
}

/**
 * Parse and validate an inventory (YAML or JSON text). `source` names it in messages (a file path
 * or `<inline>`). Throws InventoryError listing every problem with path and line.
 */
export function parseInventory(text: string, source: string): Inventory {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new InventoryError(
      source,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return {
          path: '',
          line: pos.line,
          column: pos.col,
          message: `not valid YAML/JSON: ${e.message.split('\n')[0]}`,
        };
      }),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    throw new InventoryError(source, [{ path: '', message: `cannot read the document: ${(error as Error).message}` }]);
  }
  if (data === null || data === undefined) {
    throw new InventoryError(source, [
      {
        path: '',
        line: 1,
        column: 1,
        message: 'the inventory is empty: expected a mapping with `groups:` (see inventory.schema.json)',
      },
    ]);
  }
  const validate = schemaValidator();
  if (!validate(data)) {
    const pending = (validate.errors ?? [])
      .map((e) => ajvIssue(e, data))
      .filter((p): p is PendingIssue => p !== undefined);
    throw new InventoryError(source, toIssues(pending, doc, lineCounter));
  }
  const raw = data as Schema.InventoryDocument;
  const semantic = semanticIssues(raw);
  if (semantic.length > 0) throw new InventoryError(source, toIssues(semantic, doc, lineCounter));
  return buildModel(raw, source, doc, lineCounter);
}

/**
 * Load an inventory from a file path (relative to `cwd`) or from inline YAML/JSON (see
 * isInlineInventory). Reads only that one file.
 */
export async function loadInventory(input: string, cwd: string): Promise<Inventory> {
  if (isInlineInventory(input)) return parseInventory(input, INLINE_SOURCE);
  const file = input.trim();
  if (file === '')
    throw new InventoryError(INLINE_SOURCE, [
      { path: '', message: 'no inventory given: pass a file path or inline YAML' },
    ]);
  let text: string;
  try {
    text = await readFile(path.resolve(cwd, file), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (code ?? String(error));
    throw new InventoryError(file, [
      {
        path: '',
        message:
          `cannot read inventory file ${path.resolve(cwd, file)} (${why}); give a path ` +
          `relative to ${cwd}, or the inventory itself as inline YAML`,
      },
    ]);
  }
  return parseInventory(text, file);
}
