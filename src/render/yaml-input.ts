// Reading YAML the way istioctl does (sigs.k8s.io/yaml over yaml.v2 = YAML 1.1 scalars such as
// `yes`/`on` booleans), turned into plain JSON-like values. Timestamps stay strings, as in yaml.v2
// when decoding into interface{}.

import { parseDocument } from 'yaml';
import { RenderError } from './proxy-config.js';

export function parseYaml11(text: string, what: string): unknown {
  const doc = parseDocument(text, {
    version: '1.1',
    customTags: (tags) => tags.filter((tag) => typeof tag === 'string' || tag.tag !== 'tag:yaml.org,2002:timestamp'),
    uniqueKeys: false,
  });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new RenderError(`${what}: invalid YAML: ${first.message}`);
  }
  return doc.toJS({ maxAliasCount: 100 }) ?? null;
}
