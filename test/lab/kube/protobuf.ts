// Decoding of the Kubernetes protobuf wire format for the few typed bodies kubectl sends as
// `application/vnd.kubernetes.protobuf` (kubectl create namespace|serviceaccount|configmap|token,
// kubectl auth can-i). Field numbers are those of k8s.io/api's generated.proto. Responses are JSON
// (kubectl accepts both), so only decoding is needed.

type FieldSpec =
  | { name: string; type: 'string' | 'bool' | 'int64' | 'bytes' }
  | { name: string; type: 'strings' }
  | { name: string; type: 'map' | 'bytesmap' }
  | { name: string; type: 'message'; schema: Schema; repeated?: boolean };
type Schema = Record<number, FieldSpec>;

const S = (name: string): FieldSpec => ({ name, type: 'string' });
const M = (name: string, schema: Schema, repeated = false): FieldSpec => ({ name, type: 'message', schema, repeated });

const OWNER_REF: Schema = {
  1: S('kind'),
  2: S('name'),
  3: S('uid'),
  5: S('apiVersion'),
  6: { name: 'controller', type: 'bool' },
  7: { name: 'blockOwnerDeletion', type: 'bool' },
};
const OBJECT_META: Schema = {
  1: S('name'),
  2: S('generateName'),
  3: S('namespace'),
  5: S('uid'),
  6: S('resourceVersion'),
  11: { name: 'labels', type: 'map' },
  12: { name: 'annotations', type: 'map' },
  13: M('ownerReferences', OWNER_REF, true),
  14: { name: 'finalizers', type: 'strings' },
};
const NAME_REF: Schema = { 1: S('name') };
const OBJECT_REF: Schema = { 1: S('kind'), 2: S('namespace'), 3: S('name'), 4: S('uid'), 5: S('apiVersion') };

const SCHEMAS: Record<string, Schema> = {
  Namespace: { 1: M('metadata', OBJECT_META), 2: M('spec', { 1: { name: 'finalizers', type: 'strings' } }) },
  ConfigMap: {
    1: M('metadata', OBJECT_META),
    2: { name: 'data', type: 'map' },
    3: { name: 'binaryData', type: 'bytesmap' },
    4: { name: 'immutable', type: 'bool' },
  },
  ServiceAccount: {
    1: M('metadata', OBJECT_META),
    2: M('secrets', OBJECT_REF, true),
    3: M('imagePullSecrets', NAME_REF, true),
    4: { name: 'automountServiceAccountToken', type: 'bool' },
  },
  TokenRequest: {
    1: M('metadata', OBJECT_META),
    2: M('spec', {
      1: { name: 'audiences', type: 'strings' },
      3: M('boundObjectRef', { 1: S('kind'), 2: S('apiVersion'), 3: S('name'), 4: S('uid') }),
      4: { name: 'expirationSeconds', type: 'int64' },
    }),
  },
  // k8s.io/api/authorization/v1 generated.proto: SelfSubjectRulesReviewSpec { optional string namespace = 1; }
  SelfSubjectRulesReview: {
    1: M('metadata', OBJECT_META),
    2: M('spec', { 1: S('namespace') }),
  },
  SelfSubjectAccessReview: {
    1: M('metadata', OBJECT_META),
    2: M('spec', {
      1: M('resourceAttributes', {
        1: S('namespace'),
        2: S('verb'),
        3: S('group'),
        4: S('version'),
        5: S('resource'),
        6: S('subresource'),
        7: S('name'),
      }),
      2: M('nonResourceAttributes', { 1: S('path'), 2: S('verb') }),
    }),
  },
};

interface RawField {
  num: number;
  wire: number;
  value: bigint | Buffer;
}

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++] as number;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
  throw new Error('varint too long');
}

function readFields(buf: Buffer): RawField[] {
  const out: RawField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const num = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      out.push({ num, wire, value: v });
      pos = p2;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      const end = p2 + Number(len);
      if (end > buf.length) throw new Error('truncated length-delimited field');
      out.push({ num, wire, value: buf.subarray(p2, end) });
      pos = end;
    } else if (wire === 1) {
      out.push({ num, wire, value: buf.subarray(pos, pos + 8) });
      pos += 8;
    } else if (wire === 5) {
      out.push({ num, wire, value: buf.subarray(pos, pos + 4) });
      pos += 4;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  for (const f of readFields(buf)) {
    const spec = schema[f.num];
    if (!spec) continue;
    switch (spec.type) {
      case 'string':
        obj[spec.name] = (f.value as Buffer).toString('utf8');
        break;
      case 'bytes':
        obj[spec.name] = (f.value as Buffer).toString('base64');
        break;
      case 'bool':
        obj[spec.name] = (f.value as bigint) !== 0n;
        break;
      case 'int64':
        obj[spec.name] = Number(f.value as bigint);
        break;
      case 'strings':
        obj[spec.name] = [...((obj[spec.name] as string[]) ?? []), (f.value as Buffer).toString('utf8')];
        break;
      case 'map':
      case 'bytesmap': {
        const entry = readFields(f.value as Buffer);
        const k = (entry.find((e) => e.num === 1)?.value as Buffer | undefined)?.toString('utf8') ?? '';
        const raw = entry.find((e) => e.num === 2)?.value as Buffer | undefined;
        const v = spec.type === 'map' ? (raw?.toString('utf8') ?? '') : (raw ?? Buffer.alloc(0)).toString('base64');
        obj[spec.name] = { ...((obj[spec.name] as Record<string, string>) ?? {}), [k]: v };
        break;
      }
      case 'message': {
        const m = decodeMessage(f.value as Buffer, spec.schema);
        obj[spec.name] = spec.repeated ? [...((obj[spec.name] as unknown[]) ?? []), m] : m;
        break;
      }
    }
  }
  return obj;
}

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

/** Decodes a `k8s\0`-enveloped protobuf body into the object's JSON form. Throws for kinds not known here. */
export function decodeKubeProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw new Error('protobuf body without the k8s envelope');
  const unknown = decodeMessage(body.subarray(4), {
    1: M('typeMeta', { 1: S('apiVersion'), 2: S('kind') }),
    2: { name: 'raw', type: 'bytes' },
  }) as { typeMeta?: { apiVersion?: string; kind?: string }; raw?: string };
  const kind = unknown.typeMeta?.kind ?? '';
  const schema = SCHEMAS[kind];
  if (!schema)
    throw new Error(`protobuf decoding of kind "${kind}" is not supported by the lab's API double; send JSON`);
  const obj = decodeMessage(Buffer.from(unknown.raw ?? '', 'base64'), schema);
  return { apiVersion: unknown.typeMeta?.apiVersion ?? '', kind, ...obj };
}
