// google.protobuf.Duration as golang/protobuf's jsonpb reads and writes it: input is anything Go's
// time.ParseDuration accepts ("45s", "1m30s", "500ms"), output is seconds with 0, 3, 6 or 9
// fractional digits and an "s" suffix ("90s", "0.500s").

const UNIT_NANOS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  μs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_DURATION_NANOS = (1n << 63n) - 1n;

/** Go time.ParseDuration → nanoseconds, or undefined when Go would reject the text. */
export function parseGoDuration(text: string): bigint | undefined {
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest[0] === '-';
    rest = rest.slice(1);
  }
  if (rest === '0') return 0n;
  if (rest === '') return undefined;
  let total = 0n;
  const part = /^([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)/u;
  while (rest !== '') {
    const match = part.exec(rest);
    if (!match) return undefined;
    const [whole, intDigits = '', fracDigits] = match;
    if (intDigits === '' && (fracDigits === undefined || fracDigits === '')) return undefined;
    const unit = UNIT_NANOS[match[3]!]!;
    let value = BigInt(intDigits || '0') * unit;
    if (fracDigits) {
      // Go truncates the fractional part towards zero in nanoseconds.
      value += (BigInt(fracDigits) * unit) / 10n ** BigInt(fracDigits.length);
    }
    total += value;
    if (total > MAX_DURATION_NANOS) return undefined;
    rest = rest.slice(whole.length);
  }
  return negative ? -total : total;
}

/** jsonpb's text for a Duration of `nanos` nanoseconds. */
export function formatProtoDuration(nanos: bigint): string {
  const negative = nanos < 0n;
  const abs = negative ? -nanos : nanos;
  const seconds = abs / 1_000_000_000n;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, '0');
  let text = `${seconds}.${fraction}`;
  if (text.endsWith('000')) text = text.slice(0, -3);
  if (text.endsWith('000')) text = text.slice(0, -3);
  if (text.endsWith('.000')) text = text.slice(0, -4);
  return `${negative ? '-' : ''}${text}s`;
}
