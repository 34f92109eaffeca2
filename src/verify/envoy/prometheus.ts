// Parser for the Prometheus text exposition format as Envoy serves it on `/stats/prometheus` (15090, and
// merged by pilot-agent on 15020): `# TYPE name kind` / `# HELP` lines, samples `name{label="value",...} value [ts]`
// with `{}` for no labels, label values escaped as `\\`, `\"`, `\n`. Pure; no I/O.

export interface PrometheusSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface PrometheusExposition {
  samples: PrometheusSample[];
  /** `# TYPE` declarations: metric name → counter | gauge | histogram | summary | untyped. */
  types: Map<string, string>;
  /** Lines that could not be parsed, with their 1-based line numbers (never fatal). */
  errors: { line: number; text: string; reason: string }[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(text: string): number | undefined {
  switch (text) {
    case '+Inf':
    case 'Inf':
      return Number.POSITIVE_INFINITY;
    case '-Inf':
      return Number.NEGATIVE_INFINITY;
    case 'NaN':
      return Number.NaN;
  }
  if (!/^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(text)) return undefined;
  return Number(text);
}

/** Parses `{a="x",b="y\"z"}` starting at `text[0] === '{'`; returns the labels and the index after `}`. */
function parseLabels(text: string): { labels: Record<string, string>; end: number } | string {
  const labels: Record<string, string> = {};
  let i = 1;
  const skipSpaces = () => {
    while (text[i] === ' ' || text[i] === '\t') i++;
  };
  for (;;) {
    skipSpaces();
    if (text[i] === '}') return { labels, end: i + 1 };
    const nameMatch = LABEL_NAME.exec(text.slice(i));
    if (!nameMatch) return `bad label name at column ${i + 1}`;
    const labelName = nameMatch[0];
    i += labelName.length;
    skipSpaces();
    if (text[i] !== '=') return `expected '=' after label ${labelName}`;
    i++;
    skipSpaces();
    if (text[i] !== '"') return `expected '"' to open the value of label ${labelName}`;
    i++;
    let value = '';
    for (;;) {
      const ch = text[i];
      if (ch === undefined) return `unterminated value of label ${labelName}`;
      if (ch === '"') {
        i++;
        break;
      }
      if (ch === '\\') {
        const next = text[i + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === undefined) return `unterminated escape in label ${labelName}`;
        else value += '\\' + next; // unknown escape: keep verbatim
        i += 2;
        continue;
      }
      value += ch;
      i++;
    }
    labels[labelName] = value;
    skipSpaces();
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '}') return { labels, end: i + 1 };
    return `expected ',' or '}' after label ${labelName}`;
  }
}

export function parsePrometheusText(text: string): PrometheusExposition {
  const samples: PrometheusSample[] = [];
  const types = new Map<string, string>();
  const errors: PrometheusExposition['errors'] = [];
  const lines = text.split('\n');
  lines.forEach((rawLine, index) => {
    const line = rawLine.replace(/\r$/, '').trim();
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      return; // HELP and plain comments carry nothing we need
    }
    const fail = (reason: string) => errors.push({ line: index + 1, text: line, reason });
    const nameMatch = METRIC_NAME.exec(line);
    if (!nameMatch) return fail('bad metric name');
    const name = nameMatch[0];
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const parsed = parseLabels(rest);
      if (typeof parsed === 'string') return fail(parsed);
      labels = parsed.labels;
      rest = rest.slice(parsed.end);
    }
    const fields = rest.trim().split(/\s+/);
    const value = fields[0] === undefined ? undefined : parseValue(fields[0]);
    if (value === undefined) return fail('bad or missing sample value');
    const sample: PrometheusSample = { name, labels, value };
    if (fields[1] !== undefined) {
      const ts = Number(fields[1]);
      if (!Number.isInteger(ts)) return fail('bad timestamp');
      sample.timestampMs = ts;
    }
    if (fields.length > 2) return fail('trailing text after the timestamp');
    samples.push(sample);
  });
  return { samples, types, errors };
}

/** Samples of metric `name` whose labels include every `filter` pair. */
export function selectSamples(
  exposition: PrometheusExposition,
  name: string,
  filter: Record<string, string> = {},
): PrometheusSample[] {
  return exposition.samples.filter(
    (s) => s.name === name && Object.entries(filter).every(([k, v]) => s.labels[k] === v),
  );
}

/** Sum of metric `name` over the series matching `filter`; 0 when no series matches. */
export function sumMetric(exposition: PrometheusExposition, name: string, filter: Record<string, string> = {}): number {
  return selectSamples(exposition, name, filter).reduce((acc, s) => acc + (Number.isFinite(s.value) ? s.value : 0), 0);
}
