// ssh2 (inside node-ssh) reads __dirname and require at load time. In an ESM bundle made by ncc those
// CommonJS globals do not exist (vercel/ncc#749), so this module defines them before anything else loads.
// It must be the first import of every bundled entry point.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const globals = globalThis as Record<string, unknown>;
globals.__dirname ??= dirname(fileURLToPath(import.meta.url));
globals.__filename ??= fileURLToPath(import.meta.url);
globals.require ??= createRequire(import.meta.url);

export {};
