// Istio's ProxyConfig (mesh.defaultConfig) as istioctl handles it: read from YAML the way
// golang/protobuf's jsonpb does (field-by-field replace, unknown fields dropped, proto or JSON
// field names accepted), and written back as jsonpb's canonical JSON (lowerCamelCase names, zero
// scalars omitted, enums by name, Durations normalised to seconds).
//
// Top-level ProxyConfig fields are typed precisely. Nested messages other than readinessProbe
// are kept as given (nulls dropped); see `docs`/report for that known simplification.

import { formatProtoDuration, parseGoDuration } from './go-duration.js';

export class RenderError extends Error {
  override name = 'RenderError';
}

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

type FieldKind =
  | { kind: 'string' }
  | { kind: 'int' }
  | { kind: 'enum'; values: Record<string, number> }
  | { kind: 'duration' }
  | { kind: 'int32Value' }
  | { kind: 'boolValue' }
  | { kind: 'stringMap' }
  | { kind: 'stringList' }
  | { kind: 'message' }
  | { kind: 'readinessProbe' };

interface FieldDef {
  json: string;
  proto: string;
  type: FieldKind;
  /** Member of a oneof: emitted even when it holds the zero value. */
  oneof?: string;
}

const STRING: FieldKind = { kind: 'string' };
const INT: FieldKind = { kind: 'int' };
const DURATION: FieldKind = { kind: 'duration' };
const MESSAGE: FieldKind = { kind: 'message' };

function field(json: string, type: FieldKind, oneof?: string): FieldDef {
  const proto = json.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return oneof === undefined ? { json, proto, type } : { json, proto, type, oneof };
}

/** istio.mesh.v1alpha1.ProxyConfig (istio/api mesh/v1alpha1/proxy.proto). */
const PROXY_CONFIG_FIELDS: FieldDef[] = [
  field('configPath', STRING),
  field('binaryPath', STRING),
  field('serviceCluster', STRING, 'cluster_name'),
  field(
    'tracingServiceName',
    { kind: 'enum', values: { APP_LABEL_AND_NAMESPACE: 0, CANONICAL_NAME_ONLY: 1, CANONICAL_NAME_AND_NAMESPACE: 2 } },
    'cluster_name',
  ),
  field('drainDuration', DURATION),
  field('discoveryAddress', STRING),
  field('discoveryRefreshDelay', DURATION),
  field('zipkinAddress', STRING),
  field('statsdUdpAddress', STRING),
  field('envoyMetricsServiceAddress', STRING),
  field('proxyAdminPort', INT),
  field('availabilityZone', STRING),
  field('controlPlaneAuthPolicy', { kind: 'enum', values: { NONE: 0, MUTUAL_TLS: 1, INHERIT: 1000 } }),
  field('customConfigFile', STRING),
  field('statNameLength', INT),
  field('concurrency', { kind: 'int32Value' }),
  field('proxyBootstrapTemplatePath', STRING),
  field('interceptionMode', { kind: 'enum', values: { REDIRECT: 0, TPROXY: 1, NONE: 2 } }),
  field('tracing', MESSAGE),
  field('sds', MESSAGE),
  field('envoyAccessLogService', MESSAGE),
  field('envoyMetricsService', MESSAGE),
  field('proxyMetadata', { kind: 'stringMap' }),
  field('runtimeValues', { kind: 'stringMap' }),
  field('statusPort', INT),
  field('extraStatTags', { kind: 'stringList' }),
  field('gatewayTopology', MESSAGE),
  field('terminationDrainDuration', DURATION),
  field('meshId', STRING),
  field('readinessProbe', { kind: 'readinessProbe' }),
  field('proxyStatsMatcher', MESSAGE),
  field('holdApplicationUntilProxyStarts', { kind: 'boolValue' }),
  field('caCertificatesPem', { kind: 'stringList' }),
  field('image', MESSAGE),
  field('privateKeyProvider', MESSAGE),
  field('proxyHeaders', MESSAGE),
  field('fileFlushInterval', DURATION),
  field('fileFlushMinSizeKb', INT),
  field('statsCompression', { kind: 'boolValue' }),
  field('connectionSettings', MESSAGE),
];

/** A ProxyConfig held as its canonical-JSON field values; absent = unset. */
export interface ProxyConfigState {
  fields: Map<string, JsonValue>;
  /** proxyMetadata kept separately so "nil map" and "empty map" stay distinguishable. */
  proxyMetadata: Record<string, string> | undefined;
}

export function emptyProxyConfig(): ProxyConfigState {
  return { fields: new Map(), proxyMetadata: undefined };
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function toInteger(value: JsonValue, where: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new RenderError(`${where}: expected an integer, got ${describe(value)}`);
  }
  return n;
}

function toStringValue(value: JsonValue, where: string): string {
  if (typeof value !== 'string') {
    throw new RenderError(`${where}: expected a string, got ${describe(value)}; quote the value in YAML`);
  }
  return value;
}

function stripNulls(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(stripNulls);
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = stripNulls(v);
    return out;
  }
  return value;
}

/**
 * networking.v1alpha3.ReadinessProbe in jsonpb's canonical JSON (zero scalars dropped, the oneof
 * health check kept even when empty). Accepts proto (snake_case) or JSON names.
 */
export function normalizeReadinessProbe(value: JsonValue, where = 'readinessProbe'): JsonObject {
  if (!isObject(value)) throw new RenderError(`${where}: expected a mapping, got ${describe(value)}`);
  const pick = (obj: JsonObject, json: string): JsonValue | undefined => {
    const proto = json.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const v = json in obj ? obj[json] : obj[proto];
    return v === null ? undefined : v;
  };
  const out: JsonObject = {};
  const putInt = (obj: JsonObject, target: JsonObject, name: string, ctx: string): void => {
    const v = pick(obj, name);
    if (v === undefined) return;
    const n = toInteger(v, `${ctx}.${name}`);
    if (n !== 0) target[name] = n;
  };
  const putString = (obj: JsonObject, target: JsonObject, name: string, ctx: string): void => {
    const v = pick(obj, name);
    if (v === undefined) return;
    const s = toStringValue(v, `${ctx}.${name}`);
    if (s !== '') target[name] = s;
  };
  for (const name of [
    'initialDelaySeconds',
    'timeoutSeconds',
    'periodSeconds',
    'successThreshold',
    'failureThreshold',
  ]) {
    putInt(value, out, name, where);
  }
  const httpGet = pick(value, 'httpGet');
  if (httpGet !== undefined) {
    const ctx = `${where}.httpGet`;
    if (!isObject(httpGet)) throw new RenderError(`${ctx}: expected a mapping`);
    const h: JsonObject = {};
    putString(httpGet, h, 'path', ctx);
    putInt(httpGet, h, 'port', ctx);
    putString(httpGet, h, 'host', ctx);
    putString(httpGet, h, 'scheme', ctx);
    const headers = pick(httpGet, 'httpHeaders');
    if (headers !== undefined) {
      if (!Array.isArray(headers)) throw new RenderError(`${ctx}.httpHeaders: expected a list`);
      if (headers.length > 0) {
        h.httpHeaders = headers.map((header, i) => {
          if (!isObject(header)) throw new RenderError(`${ctx}.httpHeaders[${i}]: expected a mapping`);
          const out1: JsonObject = {};
          putString(header, out1, 'name', `${ctx}.httpHeaders[${i}]`);
          putString(header, out1, 'value', `${ctx}.httpHeaders[${i}]`);
          return out1;
        });
      }
    }
    out.httpGet = h;
  }
  const tcpSocket = pick(value, 'tcpSocket');
  if (tcpSocket !== undefined) {
    const ctx = `${where}.tcpSocket`;
    if (!isObject(tcpSocket)) throw new RenderError(`${ctx}: expected a mapping`);
    const t: JsonObject = {};
    putString(tcpSocket, t, 'host', ctx);
    putInt(tcpSocket, t, 'port', ctx);
    out.tcpSocket = t;
  }
  const exec = pick(value, 'exec');
  if (exec !== undefined) {
    const ctx = `${where}.exec`;
    if (!isObject(exec)) throw new RenderError(`${ctx}: expected a mapping`);
    const e: JsonObject = {};
    const command = pick(exec, 'command');
    if (command !== undefined) {
      if (!Array.isArray(command)) throw new RenderError(`${ctx}.command: expected a list of strings`);
      if (command.length > 0) e.command = command.map((c, i) => toStringValue(c, `${ctx}.command[${i}]`));
    }
    out.exec = e;
  }
  const grpc = pick(value, 'grpc');
  if (grpc !== undefined) {
    const ctx = `${where}.grpc`;
    if (!isObject(grpc)) throw new RenderError(`${ctx}: expected a mapping`);
    const g: JsonObject = {};
    putInt(grpc, g, 'port', ctx);
    putString(grpc, g, 'service', ctx);
    out.grpc = g;
  }
  return out;
}

function normalizeField(def: FieldDef, value: JsonValue, where: string): JsonValue | undefined {
  const at = `${where}.${def.json}`;
  switch (def.type.kind) {
    case 'string':
      return toStringValue(value, at);
    case 'int':
      return toInteger(value, at);
    case 'enum': {
      if (typeof value === 'string') {
        if (!(value in def.type.values)) {
          throw new RenderError(
            `${at}: unknown value ${describe(value)}; expected one of ${Object.keys(def.type.values).join(', ')}`,
          );
        }
        return value;
      }
      const n = toInteger(value, at);
      const name = Object.entries(def.type.values).find(([, v]) => v === n)?.[0];
      return name ?? n;
    }
    case 'duration': {
      const nanos = typeof value === 'string' ? parseGoDuration(value) : undefined;
      if (nanos === undefined)
        throw new RenderError(`${at}: bad Duration ${describe(value)}; write it like "45s" or "1m30s"`);
      return formatProtoDuration(nanos);
    }
    case 'int32Value':
      return toInteger(value, at);
    case 'boolValue':
      if (typeof value !== 'boolean') throw new RenderError(`${at}: expected true or false, got ${describe(value)}`);
      return value;
    case 'stringMap': {
      if (!isObject(value)) throw new RenderError(`${at}: expected a mapping of strings`);
      const out: JsonObject = {};
      for (const [k, v] of Object.entries(value)) out[k] = toStringValue(v, `${at}.${k}`);
      return out;
    }
    case 'stringList':
      if (!Array.isArray(value)) throw new RenderError(`${at}: expected a list of strings`);
      return value.map((v, i) => toStringValue(v, `${at}[${i}]`));
    case 'message':
      if (!isObject(value)) throw new RenderError(`${at}: expected a mapping, got ${describe(value)}`);
      return stripNulls(value);
    case 'readinessProbe':
      return normalizeReadinessProbe(value, at);
  }
}

/**
 * jsonpb merge of a JSON object into a ProxyConfig: every known field present (and not null)
 * replaces the field as a whole — maps and nested messages included; unknown fields are dropped.
 */
export function applyProxyConfigJson(state: ProxyConfigState, input: JsonValue, where: string): void {
  if (input === null) return;
  if (!isObject(input)) throw new RenderError(`${where}: expected a mapping, got ${describe(input)}`);
  for (const def of PROXY_CONFIG_FIELDS) {
    // jsonpb looks up the proto name, then the JSON name; the JSON name wins when both are given.
    const raw = def.json in input ? input[def.json] : input[def.proto];
    if (raw === undefined || raw === null) continue;
    const value = normalizeField(def, raw, where)!;
    if (def.json === 'proxyMetadata') {
      state.proxyMetadata = { ...(value as Record<string, string>) };
      continue;
    }
    if (def.oneof !== undefined) {
      for (const other of PROXY_CONFIG_FIELDS) if (other.oneof === def.oneof) state.fields.delete(other.json);
    }
    state.fields.set(def.json, value);
  }
}

function isZero(def: FieldDef, value: JsonValue): boolean {
  if (def.oneof !== undefined) return false;
  switch (def.type.kind) {
    case 'string':
      return value === '';
    case 'int':
      return value === 0;
    case 'enum':
      return value === 0 || (typeof value === 'string' && def.type.values[value] === 0);
    case 'stringMap':
      return isObject(value) && Object.keys(value).length === 0;
    case 'stringList':
      return Array.isArray(value) && value.length === 0;
    default:
      return false;
  }
}

/** jsonpb canonical JSON of the ProxyConfig (what protomarshal.ToJSONMap returns). */
export function proxyConfigToJson(state: ProxyConfigState): JsonObject {
  const out: JsonObject = {};
  for (const def of PROXY_CONFIG_FIELDS) {
    const value = def.json === 'proxyMetadata' ? (state.proxyMetadata ?? undefined) : state.fields.get(def.json);
    if (value === undefined || isZero(def, value)) continue;
    out[def.json] = value;
  }
  return out;
}

/** The effective status port (0 when unset), as createClusterEnv reads it. */
export function proxyStatusPort(state: ProxyConfigState): number {
  const v = state.fields.get('statusPort');
  return typeof v === 'number' ? v : 0;
}

export function proxyStringField(state: ProxyConfigState, name: 'discoveryAddress' | 'meshId'): string {
  const v = state.fields.get(name);
  return typeof v === 'string' ? v : '';
}

export function setProxyField(state: ProxyConfigState, name: string, value: JsonValue | undefined): void {
  if (value === undefined) state.fields.delete(name);
  else state.fields.set(name, value);
}
