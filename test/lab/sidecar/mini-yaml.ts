// A small YAML subset reader for the mesh config (`/etc/istio/config/mesh`), so the simulator
// needs no dependency: block maps, block sequences, plain/'single'/"double" scalars, empty flow
// collections ({} / []), flow collections that are valid JSON, literal blocks (| and |-), comments.
type Yaml = string | number | boolean | null | Yaml[] | { [k: string]: Yaml };

interface Line {
  indent: number;
  text: string;
}

function stripComment(s: string): string {
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || s[i - 1] === ' ')) return s.slice(0, i).trimEnd();
  }
  return s.trimEnd();
}

function scalar(raw: string): Yaml {
  const s = raw.trim();
  if (s === '' || s === '~' || s === 'null') return null;
  if (s.startsWith("'") && s.endsWith("'") && s.length >= 2) return s.slice(1, -1).replace(/''/g, "'");
  if (s.startsWith('"') && s.endsWith('"') && s.length >= 2) return JSON.parse(s) as string;
  if (s === '{}') return {};
  if (s === '[]') return [];
  if (s.startsWith('{') || s.startsWith('[')) {
    try {
      return JSON.parse(s) as Yaml;
    } catch {
      return s;
    }
  }
  if (s === 'true') return true;
  if (s === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  return s;
}

function splitKey(text: string): [string, string] | null {
  // key: value — key may be quoted
  const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^:'"][^:]*?)\s*:(?:\s+(.*)|$)/.exec(text);
  if (!m) return null;
  const key = scalar(m[1]!);
  return [String(key), m[2] ?? ''];
}

export function parseMiniYaml(source: string): Yaml {
  const rawLines = source.replace(/\r\n/g, '\n').split('\n');
  let pos = 0;

  function nextLine(): Line | null {
    while (pos < rawLines.length) {
      const raw = rawLines[pos]!;
      const text = stripComment(raw);
      if (text.trim() === '' || text.trim() === '---') {
        pos++;
        continue;
      }
      return { indent: raw.length - raw.trimStart().length, text: text.trim() };
    }
    return null;
  }

  function literalBlock(parentIndent: number, keep: boolean): string {
    const out: string[] = [];
    let blockIndent = -1;
    while (pos < rawLines.length) {
      const raw = rawLines[pos]!;
      if (raw.trim() === '') {
        out.push('');
        pos++;
        continue;
      }
      const ind = raw.length - raw.trimStart().length;
      if (ind <= parentIndent) break;
      if (blockIndent < 0) blockIndent = ind;
      out.push(raw.slice(blockIndent));
      pos++;
    }
    while (out.length && out[out.length - 1] === '') out.pop();
    return out.join('\n') + (keep ? '\n' : '');
  }

  function valueAfterKey(rest: string, indent: number): Yaml {
    if (rest === '|' || rest === '|-' || rest === '>' || rest === '>-')
      return literalBlock(indent, !rest.endsWith('-'));
    if (rest !== '') return scalar(rest);
    const next = nextLine();
    if (!next || next.indent < indent || (next.indent === indent && !next.text.startsWith('- '))) return null;
    if (next.indent === indent && next.text.startsWith('-')) return parseBlock(indent);
    if (next.indent <= indent) return null;
    return parseBlock(next.indent);
  }

  function parseBlock(indent: number): Yaml {
    const first = nextLine();
    if (!first) return null;
    if (first.text === '-' || first.text.startsWith('- ')) {
      const arr: Yaml[] = [];
      for (let guard = 0; guard < 100000; guard++) {
        const l = nextLine();
        if (!l || l.indent !== indent || !(l.text === '-' || l.text.startsWith('- '))) break;
        const item = l.text.slice(1).trim();
        pos++;
        const kv = item ? splitKey(item) : null;
        if (kv && !item.startsWith('"') && !item.startsWith("'")) {
          // map inside a sequence item: re-parse this line as a map at indent+2
          rawLines[pos - 1] = ' '.repeat(indent + 2) + item;
          pos--;
          arr.push(parseBlock(indent + 2));
        } else if (item) arr.push(scalar(item));
        else arr.push(valueAfterKey('', indent));
      }
      return arr;
    }
    const obj: Record<string, Yaml> = {};
    for (let guard = 0; guard < 100000; guard++) {
      const l = nextLine();
      if (!l || l.indent !== indent) break;
      const kv = splitKey(l.text);
      if (!kv) throw new Error(`mesh config: cannot parse line ${pos + 1}: ${l.text}`);
      pos++;
      obj[kv[0]] = valueAfterKey(kv[1], indent);
    }
    return obj;
  }

  const first = nextLine();
  if (!first) return {};
  return parseBlock(first.indent);
}
