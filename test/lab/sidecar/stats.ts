// Envoy-like stats store: counters, gauges and one histogram, rendered as Envoy's admin `/stats`
// text and `/stats/prometheus`. Only stats that Istio's stats matcher includes are "instantiated"
// (rendered): the bootstrap default inclusion list, plus ProxyConfig proxyStatsMatcher additions.
// Formats: ../../../shared/envoy-reference/stats/*.txt (see README there).

export type StatKind = 'counter' | 'gauge';

interface Stat {
  kind: StatKind;
  value: number;
  used: boolean;
}

export interface StatsMatcherConfig {
  inclusionPrefixes?: string[];
  inclusionSuffixes?: string[];
  inclusionRegexps?: string[];
}

/** Istio's default bootstrap stats_matcher inclusion list (bootstrap golden). */
const DEFAULT_PREFIXES = [
  'reporter=',
  'cluster_manager',
  'listener_manager',
  'server',
  'cluster.xds-grpc',
  'wasm',
  'component',
  'istio',
];
const DEFAULT_SUFFIXES = ['rbac.allowed', 'rbac.denied', 'shadow_allowed', 'shadow_denied'];
const DEFAULT_REGEXPS = [/^vhost\..*\.route\..*$/];

/** Envoy's default histogram bucket bounds. */
const BUCKETS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

export class StatsMatcher {
  private prefixes: string[];
  private suffixes: string[];
  private regexps: RegExp[];
  constructor(extra: StatsMatcherConfig = {}) {
    this.prefixes = [...DEFAULT_PREFIXES, ...(extra.inclusionPrefixes ?? [])];
    this.suffixes = [...DEFAULT_SUFFIXES, ...(extra.inclusionSuffixes ?? [])];
    // Envoy safe_regex is a full match.
    this.regexps = [...DEFAULT_REGEXPS, ...(extra.inclusionRegexps ?? []).map((r) => new RegExp(`^(?:${r})$`))];
  }
  includes(name: string): boolean {
    return (
      this.prefixes.some((p) => name.startsWith(p)) ||
      this.suffixes.some((s) => name.endsWith(s)) ||
      this.regexps.some((r) => r.test(name))
    );
  }
}

export interface IstioRequestLabels {
  [label: string]: string;
}

/** The Istio standard metric label order (istio/proxy testdata + Istio docs for *_cluster). */
export const ISTIO_REQUEST_LABEL_ORDER = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

export const ISTIO_TCP_LABEL_ORDER = ISTIO_REQUEST_LABEL_ORDER.filter(
  (l) => !['request_protocol', 'response_code', 'grpc_response_status'].includes(l),
);

/** Istio metrics carry their tags in the stat name: `k=.=v;.;k2=.=v2;.;metric_name`. */
export function istioStatName(metric: string, labels: IstioRequestLabels, order: readonly string[]): string {
  return order.map((k) => `${k}=.=${labels[k] ?? 'unknown'};.;`).join('') + metric;
}

interface Extracted {
  name: string;
  labels: Array<[string, string]>;
}

/** Tag extraction as the bootstrap stats_tags do it (cluster_name, listener_address, Istio tags). */
export function extractTags(statName: string): Extracted {
  if (statName.includes('=.=')) {
    const parts = statName.split(';.;');
    const metric = parts.pop()!;
    return { name: metric, labels: parts.map((p) => p.split('=.=') as [string, string]) };
  }
  let m = /^cluster\.(.+?);\.(.*)$/.exec(statName);
  if (m) return { name: `cluster.${m[2]}`, labels: [['cluster_name', m[1]!]] };
  m = /^listener\.([_.0-9]*|[_[\]a-fA-F0-9:]*)\.(.*)$/.exec(statName);
  if (m && !statName.startsWith('listener_manager'))
    return { name: `listener.${m[2]}`, labels: [['listener_address', m[1]!]] };
  return { name: statName, labels: [] };
}

function promName(name: string): string {
  const sanitized = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return name.startsWith('istio') ? sanitized : `envoy_${sanitized}`;
}

function promEscape(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function fmtNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toFixed(6)));
}

export class StatsStore {
  private stats = new Map<string, Stat>();
  private initTimeMs: number | null = null;
  constructor(private matcher: StatsMatcher) {}

  setMatcher(m: StatsMatcher): void {
    this.matcher = m;
  }

  private ensure(name: string, kind: StatKind): Stat {
    let s = this.stats.get(name);
    if (!s) {
      s = { kind, value: 0, used: false };
      this.stats.set(name, s);
    }
    return s;
  }
  define(name: string, kind: StatKind): void {
    this.ensure(name, kind);
  }
  inc(name: string, by = 1): void {
    const s = this.ensure(name, 'counter');
    s.value += by;
    s.used = true;
  }
  set(name: string, value: number): void {
    const s = this.ensure(name, 'gauge');
    s.value = value;
    s.used = true;
  }
  get(name: string): number {
    return this.stats.get(name)?.value ?? 0;
  }
  recordInitializationTime(ms: number): void {
    this.initTimeMs = ms;
  }

  private visible(): Array<[string, Stat]> {
    return [...this.stats.entries()]
      .filter(([n]) => this.matcher.includes(n))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Envoy `/stats` text: `name: value`, sorted; histograms after. `usedonly` and `filter` (regex, search). */
  renderText(opts: { usedOnly?: boolean; filter?: string } = {}): string {
    const re = opts.filter ? new RegExp(opts.filter) : null;
    const lines: string[] = [];
    for (const [name, s] of this.visible()) {
      if (opts.usedOnly && !s.used) continue;
      if (re && !re.test(name)) continue;
      lines.push(`${name}: ${fmtNumber(s.value)}`);
    }
    const h = 'server.initialization_time_ms';
    if (this.initTimeMs !== null && this.matcher.includes(h) && (!re || re.test(h))) {
      const v = this.initTimeMs;
      const q = ['P0', 'P25', 'P50', 'P75', 'P90', 'P95', 'P99', 'P99.5', 'P99.9', 'P100'];
      lines.push(`${h}: ${q.map((p) => `${p}(nan,${fmtNumber(v)})`).join(' ')}`);
    }
    return lines.length ? lines.join('\n') + '\n' : '';
  }

  /** Envoy `/stats/prometheus`: counters, then gauges, then histograms; one `# TYPE` per family. */
  renderPrometheus(): string {
    const families = new Map<string, { kind: StatKind; rows: string[] }>();
    for (const [name, s] of this.visible()) {
      const ex = extractTags(name);
      const fam = promName(ex.name);
      const labels = `{${ex.labels.map(([k, v]) => `${k}="${promEscape(v)}"`).join(',')}}`;
      let f = families.get(fam);
      if (!f) {
        f = { kind: s.kind, rows: [] };
        families.set(fam, f);
      }
      f.rows.push(`${fam}${labels} ${fmtNumber(s.value)}`);
    }
    const out: string[] = [];
    for (const kind of ['counter', 'gauge'] as const) {
      for (const [fam, f] of [...families.entries()]
        .filter(([, f]) => f.kind === kind)
        .sort(([a], [b]) => (a < b ? -1 : 1))) {
        out.push(`# TYPE ${fam} ${kind}`, ...f.rows);
      }
    }
    const h = 'server.initialization_time_ms';
    if (this.initTimeMs !== null && this.matcher.includes(h)) {
      const fam = promName(h);
      out.push(`# TYPE ${fam} histogram`);
      for (const b of BUCKETS) out.push(`${fam}_bucket{le="${b}"} ${this.initTimeMs <= b ? 1 : 0}`);
      out.push(`${fam}_bucket{le="+Inf"} 1`, `${fam}_sum{} ${fmtNumber(this.initTimeMs)}`, `${fam}_count{} 1`);
    }
    return out.length ? out.join('\n') + '\n' : '';
  }
}
