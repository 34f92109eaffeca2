// Parser for Envoy's admin `/stats` text format (`GET /stats[?usedonly][&filter=RE2]`):
// one `name: value` per line; histograms as `name: P0(interval,cumulative) P25(...) ...` or
// `name: No recorded values`. Istio sets `alt_stat_name = "<cluster>;"` on every cluster, so cluster stats
// appear as `cluster.xds-grpc;.upstream_cx_active` on current Istio and `cluster.xds-grpc.upstream_cx_active`
// on older ones: lookups here accept both forms. Pure; no I/O.

export interface HistogramQuantile {
  /** Quantile label without the `P`, e.g. `99.5`. */
  quantile: string;
  /** Value over the last interval; `undefined` when Envoy prints `nan`. */
  interval?: number;
  /** Cumulative value; `undefined` when Envoy prints `nan`. */
  cumulative?: number;
}

export type EnvoyStatValue =
  { kind: 'scalar'; value: number; raw: string } | { kind: 'histogram'; quantiles: HistogramQuantile[]; raw: string };

export interface EnvoyStats {
  /** Keyed by the canonical name (`;` alt_stat_name marker removed). */
  byName: Map<string, EnvoyStatValue>;
  /** Lines that did not look like `name: value` (kept for evidence, never fatal). */
  unparsed: string[];
}

/** `cluster.xds-grpc;.upstream_cx_active` → `cluster.xds-grpc.upstream_cx_active`. */
export function canonicalStatName(name: string): string {
  return name.replace(/;\./g, '.').replace(/;$/, '');
}

function parseNumberOrNan(text: string): number | undefined {
  if (text === 'nan' || text === '-nan') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

const QUANTILE = /^P([0-9.]+)\(([^,()]+),([^,()]+)\)$/;

function parseHistogram(valueText: string): HistogramQuantile[] | undefined {
  if (valueText === 'No recorded values') return [];
  const parts = valueText.split(/\s+/);
  const out: HistogramQuantile[] = [];
  for (const part of parts) {
    const m = QUANTILE.exec(part);
    if (!m) return undefined;
    out.push({ quantile: m[1]!, interval: parseNumberOrNan(m[2]!), cumulative: parseNumberOrNan(m[3]!) });
  }
  return out;
}

export function parseEnvoyStatsText(text: string): EnvoyStats {
  const byName = new Map<string, EnvoyStatValue>();
  const unparsed: string[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/\r$/, '');
    if (line.trim() === '') continue;
    // Split on the LAST ": " — values never contain it, Istio's tag-encoded stat names might.
    const sep = line.lastIndexOf(': ');
    if (sep <= 0) {
      unparsed.push(line);
      continue;
    }
    const name = canonicalStatName(line.slice(0, sep).trim());
    const valueText = line.slice(sep + 2).trim();
    if (/^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(valueText)) {
      byName.set(name, { kind: 'scalar', value: Number(valueText), raw: valueText });
      continue;
    }
    const quantiles = parseHistogram(valueText);
    if (quantiles) byName.set(name, { kind: 'histogram', quantiles, raw: valueText });
    else unparsed.push(line);
  }
  return { byName, unparsed };
}

/** The scalar value of a stat, by either its plain or its `;` alt_stat_name spelling; undefined when absent. */
export function statValue(stats: EnvoyStats, name: string): number | undefined {
  const v = stats.byName.get(canonicalStatName(name));
  return v && v.kind === 'scalar' ? v.value : undefined;
}
