// pilot-agent style log lines: `<RFC3339 micro>\t<level>\t[<scope>\t]<message>` on stdout.
function ts(): string {
  const d = new Date();
  return d.toISOString().replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}000Z`);
}

export type LogLevel = 'info' | 'warn' | 'error' | 'debug';

export function log(level: LogLevel, message: string, scope?: string): void {
  process.stdout.write(`${ts()}\t${level}\t${scope ? `${scope}\t` : ''}${message}\n`);
}
