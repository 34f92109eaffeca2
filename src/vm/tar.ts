// A minimal POSIX ustar writer: the staged files go to the VM as ONE tar stream on the script's stdin
// (`tar -xf -`), so an upload is part of the same round trip as the script that uses it.

export interface TarEntry {
  name: string;
  data: Buffer;
  /** Octal permission bits, default 0o600. */
  mode?: number;
}

const BLOCK = 512;

export function createTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    if (!/^[A-Za-z0-9._-]{1,99}$/.test(entry.name))
      throw new Error(`tar: unsupported entry name ${JSON.stringify(entry.name)}`);
    parts.push(header(entry), entry.data);
    const padding = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
    if (padding) parts.push(Buffer.alloc(padding));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

function header(entry: TarEntry): Buffer {
  const block = Buffer.alloc(BLOCK);
  const put = (value: string, offset: number, length: number): void => {
    block.write(value, offset, length, 'latin1');
  };
  const octal = (value: number, length: number): string => `${value.toString(8).padStart(length - 1, '0')}\0`;
  put(entry.name, 0, 100);
  put(octal(entry.mode ?? 0o600, 8), 100, 8);
  put(octal(0, 8), 108, 8); // uid
  put(octal(0, 8), 116, 8); // gid
  put(octal(entry.data.length, 12), 124, 12);
  put(octal(0, 12), 136, 12); // mtime: fixed, the content is what matters
  put('        ', 148, 8); // checksum placeholder (spaces)
  put('0', 156, 1); // regular file
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  let sum = 0;
  for (const byte of block) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return block;
}
