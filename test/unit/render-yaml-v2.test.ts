// The yaml.v2-compatible writer behind mesh.yaml: key order, scalar styles and folding.
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { compareYamlV2Keys, marshalYamlV2 } from '../../src/render/yaml-v2.js';
import { formatProtoDuration, parseGoDuration } from '../../src/render/go-duration.js';
import { goJsonString } from '../../src/render/go-json.js';

describe('yaml.v2 key order', () => {
  it('sorts a non-letter before a letter (ISTIO_META_* before ISTIO_METAJSON_*)', () => {
    expect(['ISTIO_METAJSON_LABELS', 'ISTIO_META_NETWORK'].sort(compareYamlV2Keys)).toEqual([
      'ISTIO_META_NETWORK',
      'ISTIO_METAJSON_LABELS',
    ]);
  });
  it('compares digit runs by value', () => {
    expect(['a10', 'a9', 'b', '10', '9'].sort(compareYamlV2Keys)).toEqual(['9', '10', 'a9', 'a10', 'b']);
  });
});

describe('yaml.v2 scalar styles', () => {
  it.each([
    ['plain', 'plain'],
    ['', '""'],
    ['true', '"true"'],
    ['yes', '"yes"'],
    ['8080', '"8080"'],
    ['10:30', '"10:30"'],
    ['{"a":"b"}', `'{"a":"b"}'`],
    ["it's", "it's"],
    ["'q'", `'''q'''`],
    [' lead', "' lead'"],
    ['tab\there', '"tab\\there"'],
    ['a: b', "'a: b'"],
  ])('%j → %s', (value, text) => {
    expect(marshalYamlV2({ k: value })).toBe(`k: ${text}\n`);
  });
  it('writes multi-line strings as literal blocks with chomping indicators', () => {
    expect(marshalYamlV2({ k: 'a\nb' })).toBe('k: |-\n  a\n  b\n');
    expect(marshalYamlV2({ k: 'a\nb\n' })).toBe('k: |\n  a\n  b\n');
    expect(marshalYamlV2({ k: { m: 'a\n\n' } })).toBe('k:\n  m: |+\n    a\n\n');
  });
  it('folds long plain scalars at spaces past column 80', () => {
    const words = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    const out = marshalYamlV2({ key: words });
    expect(out.split('\n').length).toBeGreaterThan(2);
    expect(out.split('\n')[1]!.startsWith('  word')).toBe(true);
  });
  it('writes numbers, booleans, null, empty collections and indentless sequences', () => {
    expect(marshalYamlV2({ a: 1, b: 0.5, c: true, d: null, e: {}, f: [], g: ['x', 'y'], h: [{ i: 1, j: 2 }] })).toBe(
      'a: 1\nb: 0.5\nc: true\nd: null\ne: {}\nf: []\ng:\n- x\n- "y"\nh:\n- i: 1\n  j: 2\n',
    );
  });
});

describe('protobuf Duration and Go JSON helpers', () => {
  it('reads Go durations and writes jsonpb seconds', () => {
    expect(formatProtoDuration(parseGoDuration('1m30s')!)).toBe('90s');
    expect(formatProtoDuration(parseGoDuration('1.5s')!)).toBe('1.500s');
    expect(formatProtoDuration(parseGoDuration('250us')!)).toBe('0.000250s');
    expect(parseGoDuration('5 s')).toBeUndefined();
    expect(parseGoDuration('')).toBeUndefined();
  });
  it('escapes like Go encoding/json', () => {
    expect(goJsonString('a<b>&"\\\n\u2028')).toBe('"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\u2028"');
  });
});

// sigs.k8s.io/yaml (yaml.v2) as used by kubectl is the reference implementation: compare when present.
const KUBECTL = '/usr/bin/kubectl';
describe('agreement with real yaml.v2 (kubectl -o yaml)', () => {
  const run = existsSync(KUBECTL) ? it : it.skip;
  run('writes the same bytes as kubectl for tricky values and keys', () => {
    const values = [
      'true',
      'on',
      '',
      ' a',
      'a ',
      '0x1F',
      '017',
      '08',
      '1e5',
      '.5',
      '- a',
      'a: b',
      'a #b',
      '#a',
      '{x}',
      "it's",
      'tab\there',
      'l1\nl2',
      'l1\nl2\n',
      '\nlead',
      '2001-12-14',
      '1:2:3',
      'ü ñ',
      '😀',
      '---',
      '@foo',
      '? x',
      '<<',
      'the quick brown fox jumps over the lazy dog and keeps running far far away from the hunter who chases it',
      "it's a long single quoted value 'with a leading quote' and many spaces so it must fold somewhere ok yes",
      'a long double quoted value because of a tab\there and spaces to be folded at the width of eighty chars ok',
      'word  double  spaces  all  along  the  way  to  make  sure  folding  handles  two  spaces  properly  yes',
      `${'x'.repeat(79)} y z`,
      'ctrl\x01char',
      'bom\ufeffx',
    ];
    const data: Record<string, string> = {};
    values.forEach((v, i) => (data[`k${i}`] = v));
    for (const k of [
      '10',
      '9',
      'a10',
      'a9',
      'a09',
      '_x',
      '.x',
      'X',
      'x',
      'a-b',
      'a.b',
      'ISTIO_META_X',
      'ISTIO_METAJSON',
    ])
      data[k] = 'v';
    const args = ['create', 'configmap', 'x', '--dry-run=client', '-o', 'yaml'];
    for (const [k, v] of Object.entries(data)) args.push(`--from-literal=${k}=${v}`);
    const real = execFileSync(KUBECTL, args, { encoding: 'utf8', timeout: 20000 }).replace(
      '  creationTimestamp: null\n',
      '',
    );
    expect(marshalYamlV2({ apiVersion: 'v1', data, kind: 'ConfigMap', metadata: { name: 'x' } })).toBe(real);
  });
});
