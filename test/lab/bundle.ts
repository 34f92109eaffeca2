// Bundles a lab TypeScript entry point into one ESM file that runs on plain Node (no node_modules), for
// code that runs inside the VMs (systemctl stand-in, workload app).
import { build } from 'esbuild';

export async function bundleForVm(entry: string, outfile: string): Promise<void> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    logLevel: 'error',
    legalComments: 'none',
    // CommonJS dependencies inside an ESM bundle still call require() for Node built-ins.
    banner: {
      js: "import { createRequire as __labCreateRequire } from 'node:module'; const require = __labCreateRequire(import.meta.url);",
    },
  });
}
