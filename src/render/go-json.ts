// JSON text exactly as Go's encoding/json writes it (json.Marshal): HTML-safe escaping of <, >, &,
// U+2028/U+2029, \b \f \n \r \t short escapes, other control characters as \u00XX, and map keys
// sorted by byte order. istioctl builds ISTIO_METAJSON_LABELS and ISTIO_META_POD_PORTS this way.

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function hex4(code: number): string {
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

/** A Go json.Marshal string literal, quotes included. */
export function goJsonString(value: string): string {
  let out = '"';
  for (const character of value) {
    const code = character.codePointAt(0)!;
    const short = SHORT_ESCAPES[character];
    if (short !== undefined) out += short;
    else if (code < 0x20 || character === '<' || character === '>' || character === '&') out += hex4(code);
    else if (code === 0x2028 || code === 0x2029) out += hex4(code);
    else if (code >= 0xd800 && code <= 0xdfff)
      out += '\\ufffd'; // lone surrogate = invalid UTF-8 in Go
    else out += character;
  }
  return `${out}"`;
}

/** Byte-order comparison of Go strings (UTF-8 byte order equals code point order). */
export function compareGoStrings(a: string, b: string): number {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return Buffer.compare(left, right);
}

/** json.Marshal of a map[string]string: keys in byte order. */
export function goJsonStringMap(map: Record<string, string>): string {
  const keys = Object.keys(map).sort(compareGoStrings);
  return `{${keys.map((key) => `${goJsonString(key)}:${goJsonString(map[key]!)}`).join(',')}}`;
}

/**
 * istio model.PodPort list as istioctl writes ISTIO_META_POD_PORTS: sorted by name,
 * `name` omitted when empty, `protocol` always present (it has no omitempty).
 */
export function goJsonPodPorts(ports: Record<string, number>): string {
  const names = Object.keys(ports).sort(compareGoStrings);
  const items = names.map((name) => {
    const namePart = name === '' ? '' : `"name":${goJsonString(name)},`;
    return `{${namePart}"containerPort":${ports[name]},"protocol":""}`;
  });
  return `[${items.join(',')}]`;
}
