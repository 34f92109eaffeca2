// How the inventory input names its source. Kept free of the parser's dependencies (yaml, ajv): the
// action's small entry (src/main.ts) uses it to say where the inventory comes from before it loads the rest.

/** The source name of an inventory given inline (in reports and annotations). */
export const INLINE_SOURCE = '<inline>';

/**
 * True when `input` is inline inventory text rather than a file path: it contains a newline, or
 * (after leading whitespace) starts with `{` (JSON) or `groups:`.
 */
export function isInlineInventory(input: string): boolean {
  const start = input.trimStart();
  return input.includes('\n') || start.startsWith('{') || start.startsWith('groups:');
}
