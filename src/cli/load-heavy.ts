// Loads src/cli/heavy.ts: bundled, the file run.js next to the CLI entry; from the sources (tsx, jest),
// the module itself. webpackIgnore keeps ncc from pulling it into the entry's bundle.
export type HeavyModule = typeof import('./heavy.js');

export async function loadHeavy(): Promise<HeavyModule> {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return (await import(/* webpackIgnore: true */ './heavy.js')) as HeavyModule;
  return (await import(/* webpackIgnore: true */ here.replace(/[^/]+$/, 'run.js'))) as HeavyModule;
}
