// Wire formats shared by the sidecar simulator and the istiod double.
// - gRPC length-prefixed framing (1 byte compressed flag, 4 bytes big-endian length).
// - CreateCertificate: real protobuf (istio.v1.auth.IstioCertificateRequest/Response), hand-encoded.
// - ADS: the real gRPC path and framing, but each message is JSON (content-type application/grpc+json)
//   instead of protobuf Any-typed xDS resources — the lab's documented simplification.

export const CREATE_CERTIFICATE_PATH = '/istio.v1.auth.IstioCertificateService/CreateCertificate';
export const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

export const TYPE_CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const TYPE_LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const TYPE_NDS = 'type.googleapis.com/istio.networking.nds.v1.NameTable';
/** Health reports from the agent (Istio: a DiscoveryRequest of this type; error_detail when unhealthy). */
export const TYPE_HEALTH = 'istio.io/health';

export function grpcFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(0, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Splits a byte stream into gRPC messages. Max message size bounded (4 MiB, like gRPC's default). */
export class GrpcFrameReader {
  private buffered = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    const out: Buffer[] = [];
    while (this.buffered.length >= 5) {
      const len = this.buffered.readUInt32BE(1);
      if (len > 4 * 1024 * 1024) throw new Error(`grpc message too large: ${len}`);
      if (this.buffered.length < 5 + len) break;
      out.push(this.buffered.subarray(5, 5 + len));
      this.buffered = this.buffered.subarray(5 + len);
    }
    return out;
  }
}

// ---- minimal protobuf (varint + length-delimited) ----
function encodeVarint(value: number | bigint): Buffer {
  let v = BigInt(value);
  const bytes: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    bytes.push(b);
  } while (v > 0n);
  return Buffer.from(bytes);
}

function encodeStringField(field: number, value: string): Buffer {
  const data = Buffer.from(value, 'utf8');
  return Buffer.concat([encodeVarint((field << 3) | 2), encodeVarint(data.length), data]);
}

interface ProtoField {
  field: number;
  wire: number;
  varint?: bigint;
  bytes?: Buffer;
}

function decodeFields(buf: Buffer): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new Error('varint too long');
  };
  while (pos < buf.length) {
    const key = Number(readVarint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) fields.push({ field, wire, varint: readVarint() });
    else if (wire === 2) {
      const len = Number(readVarint());
      if (pos + len > buf.length) throw new Error('truncated field');
      fields.push({ field, wire, bytes: buf.subarray(pos, pos + len) });
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return fields;
}

export interface CertificateRequest {
  csr: string;
  validitySeconds: number;
}

export function encodeCertificateRequest(req: CertificateRequest): Buffer {
  return Buffer.concat([encodeStringField(1, req.csr), encodeVarint((2 << 3) | 0), encodeVarint(req.validitySeconds)]);
}

export function decodeCertificateRequest(buf: Buffer): CertificateRequest {
  const req: CertificateRequest = { csr: '', validitySeconds: 0 };
  for (const f of decodeFields(buf)) {
    if (f.field === 1 && f.bytes) req.csr = f.bytes.toString('utf8');
    if (f.field === 2 && f.varint !== undefined) req.validitySeconds = Number(f.varint);
  }
  return req;
}

export function encodeCertificateResponse(certChain: string[]): Buffer {
  return Buffer.concat(certChain.map((c) => encodeStringField(1, c)));
}

export function decodeCertificateResponse(buf: Buffer): string[] {
  return decodeFields(buf)
    .filter((f) => f.field === 1 && f.bytes)
    .map((f) => f.bytes!.toString('utf8'));
}

// ---- ADS (JSON payloads) ----
export interface XdsNode {
  id: string;
  cluster?: string;
  metadata: Record<string, unknown>;
}

export interface DiscoveryRequest {
  node?: XdsNode;
  type_url: string;
  version_info?: string;
  response_nonce?: string;
  resource_names?: string[];
  error_detail?: { code: number; message: string };
}

export interface MeshEndpoint {
  address: string;
  port: number;
}

/** A CDS resource as the lab sends it: Envoy cluster name plus what the simulator needs to route. */
export interface LabCluster {
  name: string; // outbound|PORT||HOST
  host: string; // echo.mesh-test.svc.cluster.local
  port: number;
  vip: string;
  endpoints: MeshEndpoint[];
  tls_mode: 'istio' | 'disabled';
}

/** An LDS resource: the inbound listener and its mTLS mode (STRICT: no plaintext filter chain). */
export interface LabListener {
  name: string; // virtualInbound, virtualOutbound, 0.0.0.0_8080 ...
  port: number;
  /** Only for virtualInbound: STRICT | PERMISSIVE | DISABLE, from PeerAuthentication. */
  mtls_mode?: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
}

export interface NameTable {
  table: Record<string, { ips: string[]; registry: string; shortname?: string; namespace?: string }>;
}

export interface DiscoveryResponse {
  version_info: string;
  type_url: string;
  nonce: string;
  resources: unknown[];
}

export function encodeJsonMessage(msg: unknown): Buffer {
  return grpcFrame(Buffer.from(JSON.stringify(msg), 'utf8'));
}
