// A YAML writer that produces the bytes gopkg.in/yaml.v2 (v2.4, via sigs.k8s.io/yaml.Marshal) would
// produce for the plain JSON-like values istioctl marshals: block mappings with keys sorted by
// yaml.v2's comparator, indentless block sequences inside mappings, `{}` / `[]` for empty
// collections, and yaml.v2's choice of scalar style (plain, single-quoted, double-quoted, literal)
// including its folding of long plain and quoted scalars at column 80.
//
// Only the subset istioctl's mesh.yaml needs is supported: string keys; values that are strings,
// numbers, booleans, null, arrays and plain objects.

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

const BEST_WIDTH = 80;
const BEST_INDENT = 2;

// ---------------------------------------------------------------------------------------------
// Key order: yaml.v2 keyList.Less for two string keys.

const isLetter = (c: string): boolean => /\p{L}/u.test(c);
const isDigit = (c: string): boolean => /\p{Nd}/u.test(c);
const digitValue = (c: string): number => c.codePointAt(0)! - 48;

/** yaml.v2's "natural" order for string map keys: non-letters before letters, digit runs by value. */
export function compareYamlV2Keys(a: string, b: string): number {
  if (a === b) return 0;
  return yamlV2KeyLess(a, b) ? -1 : yamlV2KeyLess(b, a) ? 1 : 0;
}

function yamlV2KeyLess(a: string, b: string): boolean {
  const ar = Array.from(a);
  const br = Array.from(b);
  for (let i = 0; i < ar.length && i < br.length; i++) {
    const ca = ar[i]!;
    const cb = br[i]!;
    if (ca === cb) continue;
    const al = isLetter(ca);
    const bl = isLetter(cb);
    if (al && bl) return ca.codePointAt(0)! < cb.codePointAt(0)!;
    if (al || bl) return bl;
    let an = 0;
    let bn = 0;
    if (ca === '0' || cb === '0') {
      for (let j = i - 1; j >= 0 && isDigit(ar[j]!); j--) {
        if (ar[j] !== '0') {
          an = 1;
          bn = 1;
          break;
        }
      }
    }
    let ai = i;
    for (; ai < ar.length && isDigit(ar[ai]!); ai++) an = an * 10 + digitValue(ar[ai]!);
    let bi = i;
    for (; bi < br.length && isDigit(br[bi]!); bi++) bn = bn * 10 + digitValue(br[bi]!);
    if (an !== bn) return an < bn;
    if (ai !== bi) return ai < bi;
    return ca.codePointAt(0)! < cb.codePointAt(0)!;
  }
  return ar.length < br.length;
}

// ---------------------------------------------------------------------------------------------
// Would yaml.v2 read this string back as something other than a string when written plain?

const YAML_V2_SPECIAL_WORDS = new Set([
  'y',
  'Y',
  'yes',
  'Yes',
  'YES',
  'true',
  'True',
  'TRUE',
  'on',
  'On',
  'ON',
  'n',
  'N',
  'no',
  'No',
  'NO',
  'false',
  'False',
  'FALSE',
  'off',
  'Off',
  'OFF',
  '',
  '~',
  'null',
  'Null',
  'NULL',
  '.nan',
  '.NaN',
  '.NAN',
  '.inf',
  '.Inf',
  '.INF',
  '+.inf',
  '+.Inf',
  '+.INF',
  '-.inf',
  '-.Inf',
  '-.INF',
]);
const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const GO_INT_BASE0 = /^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/;
const TIMESTAMP =
  /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?$/;
const BASE60_FLOAT = /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/;

function resolvesToNonString(s: string): boolean {
  if (YAML_V2_SPECIAL_WORDS.has(s)) return true;
  const first = s[0]!;
  if (first === '.') return YAML_STYLE_FLOAT.test(s) || (/^\.[0-9]/.test(s) && !Number.isNaN(Number(s)));
  if (first === '+' || first === '-' || (first >= '0' && first <= '9')) {
    if (TIMESTAMP.test(s)) return true;
    const plain = s.replaceAll('_', '');
    if (GO_INT_BASE0.test(plain)) return true;
    if (YAML_STYLE_FLOAT.test(plain)) return true;
    if (/^-?0b[01]+$/.test(plain)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Scalar analysis (libyaml yaml_emitter_analyze_scalar, as ported in yaml.v2).

const isBreakChar = (c: string | undefined): boolean =>
  c === '\r' || c === '\n' || c === '\u0085' || c === '\u2028' || c === '\u2029';
const isBlank = (c: string | undefined): boolean => c === ' ' || c === '\t';

function isPrintable(c: string): boolean {
  const cp = c.codePointAt(0)!;
  return (
    cp === 0x0a ||
    (cp >= 0x20 && cp <= 0x7e) ||
    (cp >= 0xa0 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd && cp !== 0xfeff)
  );
}

interface ScalarAnalysis {
  multiline: boolean;
  blockPlainAllowed: boolean;
  singleQuotedAllowed: boolean;
  blockAllowed: boolean;
}

function analyzeScalar(value: string): ScalarAnalysis {
  const chars = Array.from(value);
  if (chars.length === 0) {
    return { multiline: false, blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: false };
  }
  let blockIndicators = false;
  let lineBreaks = false;
  let specialCharacters = false;
  let leadingSpace = false;
  let leadingBreak = false;
  let trailingSpace = false;
  let trailingBreak = false;
  let breakSpace = false;
  let spaceBreak = false;
  let previousSpace = false;
  let previousBreak = false;
  if (value.startsWith('---') || value.startsWith('...')) blockIndicators = true;
  let precededByWhitespace = true;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    const followedByWhitespace = i + 1 >= chars.length || isBlank(chars[i + 1]);
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(c)) blockIndicators = true;
      else if ((c === '?' || c === ':') && followedByWhitespace) blockIndicators = true;
      else if (c === '-' && followedByWhitespace) blockIndicators = true;
    } else if (c === ':' && followedByWhitespace) blockIndicators = true;
    else if (c === '#' && precededByWhitespace) blockIndicators = true;
    if (!isPrintable(c)) specialCharacters = true;
    if (isBreakChar(c)) lineBreaks = true;
    if (c === ' ') {
      if (i === 0) leadingSpace = true;
      if (i === chars.length - 1) trailingSpace = true;
      if (previousBreak) breakSpace = true;
      previousSpace = true;
      previousBreak = false;
    } else if (isBreakChar(c)) {
      if (i === 0) leadingBreak = true;
      if (i === chars.length - 1) trailingBreak = true;
      if (previousSpace) spaceBreak = true;
      previousSpace = false;
      previousBreak = true;
    } else {
      previousSpace = false;
      previousBreak = false;
    }
    precededByWhitespace = isBlank(c) || isBreakChar(c);
  }
  let blockPlainAllowed = true;
  let singleQuotedAllowed = true;
  let blockAllowed = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) blockPlainAllowed = false;
  if (trailingSpace) blockAllowed = false;
  if (breakSpace) blockPlainAllowed = singleQuotedAllowed = false;
  if (spaceBreak || specialCharacters) blockPlainAllowed = singleQuotedAllowed = blockAllowed = false;
  if (lineBreaks) blockPlainAllowed = false;
  if (blockIndicators) blockPlainAllowed = false;
  return { multiline: lineBreaks, blockPlainAllowed, singleQuotedAllowed, blockAllowed };
}

type ScalarStyle = 'plain' | 'single' | 'double' | 'literal';

/** yaml.v2 stringv + libyaml select_scalar_style, block context. */
function chooseStringStyle(value: string, simpleKey: boolean): ScalarStyle {
  let style: ScalarStyle;
  if (value.includes('\n')) style = 'literal';
  else if (!resolvesToNonString(value) && !BASE60_FLOAT.test(value)) style = 'plain';
  else style = 'double';
  const analysis = analyzeScalar(value);
  if (style === 'plain') {
    if (!analysis.blockPlainAllowed || (value.length === 0 && simpleKey)) style = 'single';
  }
  if (style === 'single' && !analysis.singleQuotedAllowed) style = 'double';
  if (style === 'literal' && (!analysis.blockAllowed || simpleKey)) style = 'double';
  return style;
}

// ---------------------------------------------------------------------------------------------
// Writer with libyaml's column/indention bookkeeping.

/** Writes a line break of a scalar's text as yaml.v2's emitter does (write_break). */
function writeBreak(w: Writer, c: string): void {
  if (c === '\n') w.newline();
  else {
    w.out += c;
    w.column = 0;
  }
  w.indention = true;
}

class Writer {
  out = '';
  column = 0;
  whitespace = true;
  indention = true;

  put(text: string): void {
    this.out += text;
    this.column += Array.from(text).length;
  }
  newline(): void {
    this.out += '\n';
    this.column = 0;
  }
  /** libyaml yaml_emitter_write_indent. */
  writeIndent(indent: number): void {
    if (!this.indention || this.column > indent || (this.column === indent && !this.whitespace)) this.newline();
    while (this.column < indent) this.put(' ');
    this.whitespace = true;
    this.indention = true;
  }
  /** libyaml yaml_emitter_write_indicator. */
  indicator(text: string, needWhitespace: boolean, isWhitespace: boolean, isIndention: boolean): void {
    if (needWhitespace && !this.whitespace) this.put(' ');
    this.put(text);
    this.whitespace = isWhitespace;
    this.indention = this.indention && isIndention;
  }
}

function escapeDoubleQuoted(c: string): string {
  switch (c) {
    case '\0':
      return '\\0';
    case '\x07':
      return '\\a';
    case '\b':
      return '\\b';
    case '\t':
      return '\\t';
    case '\n':
      return '\\n';
    case '\x0b':
      return '\\v';
    case '\f':
      return '\\f';
    case '\r':
      return '\\r';
    case '\x1b':
      return '\\e';
    case '"':
      return '\\"';
    case '\\':
      return '\\\\';
    case '\u0085':
      return '\\N';
    case '\u00a0':
      return '\\_';
    case '\u2028':
      return '\\L';
    case '\u2029':
      return '\\P';
  }
  const cp = c.codePointAt(0)!;
  const hex = cp.toString(16).toUpperCase();
  if (cp <= 0xff) return `\\x${hex.padStart(2, '0')}`;
  if (cp <= 0xffff) return `\\u${hex.padStart(4, '0')}`;
  return `\\U${hex.padStart(8, '0')}`;
}

function writeScalar(w: Writer, value: string, style: ScalarStyle, indent: number, allowBreaks: boolean): void {
  const chars = Array.from(value);
  switch (style) {
    case 'plain': {
      if (!w.whitespace) w.put(' ');
      let spaces = false;
      for (let i = 0; i < chars.length; i++) {
        const c = chars[i]!;
        if (c === ' ') {
          if (allowBreaks && !spaces && w.column > BEST_WIDTH && chars[i + 1] !== ' ') w.writeIndent(indent);
          else w.put(c);
          spaces = true;
        } else {
          w.put(c);
          spaces = false;
        }
        w.indention = false;
      }
      w.whitespace = false;
      w.indention = false;
      return;
    }
    case 'single': {
      w.indicator("'", true, false, false);
      let spaces = false;
      let breaks = false;
      for (let i = 0; i < chars.length; i++) {
        const c = chars[i]!;
        if (c === ' ') {
          if (
            allowBreaks &&
            !spaces &&
            w.column > BEST_WIDTH &&
            i !== 0 &&
            i !== chars.length - 1 &&
            chars[i + 1] !== ' '
          ) {
            w.writeIndent(indent);
          } else w.put(c);
          spaces = true;
        } else if (isBreakChar(c)) {
          if (!breaks && c === '\n') w.newline();
          writeBreak(w, c);
          breaks = true;
        } else {
          if (breaks) w.writeIndent(indent);
          w.put(c === "'" ? "''" : c);
          w.indention = false;
          spaces = false;
          breaks = false;
        }
      }
      w.indicator("'", false, false, false);
      return;
    }
    case 'double': {
      w.indicator('"', true, false, false);
      let spaces = false;
      for (let i = 0; i < chars.length; i++) {
        const c = chars[i]!;
        if (!isPrintable(c) || c === '\ufeff' || isBreakChar(c) || c === '"' || c === '\\') {
          w.put(escapeDoubleQuoted(c));
          spaces = false;
        } else if (c === ' ') {
          if (allowBreaks && !spaces && w.column > BEST_WIDTH && i !== 0 && i !== chars.length - 1) {
            w.writeIndent(indent);
            if (chars[i + 1] === ' ') w.put('\\');
          } else w.put(c);
          spaces = true;
        } else {
          w.put(c);
          spaces = false;
        }
      }
      w.indicator('"', false, false, false);
      return;
    }
    case 'literal': {
      let hints = '';
      if (chars[0] === ' ' || isBreakChar(chars[0])) hints += String(BEST_INDENT);
      const last = chars[chars.length - 1];
      if (!isBreakChar(last)) hints += '-';
      else if (chars.length === 1 || isBreakChar(chars[chars.length - 2])) hints += '+';
      w.indicator(`|${hints}`, true, false, false);
      w.newline();
      w.indention = true;
      w.whitespace = true;
      let breaks = true;
      for (const c of chars) {
        if (isBreakChar(c)) {
          writeBreak(w, c);
          breaks = true;
        } else {
          if (breaks) w.writeIndent(indent);
          w.put(c);
          w.indention = false;
          breaks = false;
        }
      }
      return;
    }
  }
}

/** Go strconv.FormatFloat(f, 'g', -1, 64) with yaml.v2's .inf/.nan spellings. */
export function goFormatFloat(f: number): string {
  if (Number.isNaN(f)) return '.nan';
  if (f === Infinity) return '.inf';
  if (f === -Infinity) return '-.inf';
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  const [mantissa, expText] = f.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 21) {
    const sign = exp < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const digits = mantissa.replace('-', '').replace('.', '');
  const negative = f < 0 ? '-' : '';
  if (exp >= 0) {
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const frac = digits.slice(exp + 1);
    return `${negative}${intPart}${frac ? `.${frac}` : ''}`;
  }
  return `${negative}0.${'0'.repeat(-exp - 1)}${digits}`;
}

function scalarText(value: number | boolean | null): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  // sigs.k8s.io/yaml goes through JSON: Go writes integral float64 values below 1e21 without a
  // fraction, which yaml.v2 then reads back as an int.
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return BigInt(value).toString();
  return goFormatFloat(value);
}

function writeNode(w: Writer, value: YamlValue, indent: number, inMapping: boolean): void {
  if (Array.isArray(value)) {
    if (value.length === 0) {
      w.indicator('[', true, true, false);
      w.indicator(']', false, false, false);
      return;
    }
    // Block sequences directly inside a mapping value are indentless in yaml.v2.
    const seqIndent = inMapping && !w.indention ? indent : indent + BEST_INDENT;
    for (const item of value) {
      w.writeIndent(seqIndent);
      w.indicator('-', true, false, true);
      writeNode(w, item, seqIndent, false);
    }
    return;
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) {
      w.indicator('{', true, true, false);
      w.indicator('}', false, false, false);
      return;
    }
    const mapIndent = indent + BEST_INDENT;
    keys.sort(compareYamlV2Keys);
    for (const key of keys) {
      w.writeIndent(mapIndent);
      writeScalar(w, key, chooseStringStyle(key, true), mapIndent, false);
      w.indicator(':', false, false, false);
      const child = value[key]!;
      writeNode(w, child, mapIndent, true);
    }
    return;
  }
  if (typeof value === 'string') {
    writeScalar(w, value, chooseStringStyle(value, false), indent + BEST_INDENT, true);
    return;
  }
  const text = scalarText(value);
  writeScalar(w, text, 'plain', indent + BEST_INDENT, true);
}

/** The bytes of sigs.k8s.io/yaml.Marshal(value) for a JSON-like value. */
export function marshalYamlV2(value: YamlValue): string {
  const w = new Writer();
  // The document's top-level mapping sits at indent 0 (libyaml starts at indent -1).
  writeNode(w, value, -BEST_INDENT, false);
  if (w.column > 0 || !w.out.endsWith('\n')) w.newline();
  return w.out;
}
