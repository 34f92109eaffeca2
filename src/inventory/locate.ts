// Map a field path to its line and column in the YAML/JSON source (yaml's CST ranges + LineCounter).

import { isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { PathSegment } from './errors.js';

export interface SourcePosition {
  line: number;
  column: number;
}

function keyMatches(key: unknown, segment: PathSegment): boolean {
  if (isScalar(key)) return String(key.value) === String(segment);
  return false;
}

/**
 * Position of the value at `segments` (or of its key when `pointAtKey`). When the path does not
 * exist completely, the deepest existing node is used, so the line is still near the problem.
 */
export function locate(
  doc: Document,
  lineCounter: LineCounter,
  segments: readonly PathSegment[],
  pointAtKey = false,
): SourcePosition | undefined {
  let node: Node | null | undefined = doc.contents as Node | null;
  let offset: number | undefined = node?.range?.[0];
  for (let i = 0; i < segments.length && node; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && keyMatches(item.key, segment));
      if (!pair) break;
      const keyNode = pair.key as Node | null;
      const valueNode = pair.value as Node | null;
      if ((last && pointAtKey) || !valueNode?.range) {
        offset = keyNode?.range?.[0] ?? offset;
        break;
      }
      node = valueNode;
      offset = valueNode.range[0];
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | null | undefined;
      if (!item?.range) break;
      node = item;
      offset = item.range[0];
    } else break;
  }
  if (offset === undefined) return undefined;
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}
