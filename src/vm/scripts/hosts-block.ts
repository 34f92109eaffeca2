// The /etc/hosts managed block: the shell functions the apply/rollback/offboard scripts share
// (hosts-block.sh; a unit test runs them through the real `sh` on temp files) and the block's content.
import { readFileSync } from 'node:fs';
import { HOSTS_BEGIN_MARKER, HOSTS_END_MARKER } from '../paths.js';
import type { ShellPart } from './protocol.js';

/** The hosts-block functions (hosts-block.sh) with their values. */
export const HOSTS_FUNCTIONS: ShellPart = {
  values: { IVO_HOSTS_BEGIN: HOSTS_BEGIN_MARKER, IVO_HOSTS_END: HOSTS_END_MARKER },
  text: readFileSync(new URL('./hosts-block.sh', import.meta.url), 'utf8'),
};

/** Normalises istioctl's `hosts` file into block lines: no trailing blank lines, no marker lookalikes. */
export function hostsBlockContent(hostsFile: string): string {
  const lines = hostsFile
    .replace(/\r\n/g, '\n')
    .split('\n')
    .map((line) => line.replace(/\s+$/, ''));
  for (const line of lines) {
    if (line === HOSTS_BEGIN_MARKER || line === HOSTS_END_MARKER) {
      throw new Error(`the hosts entries contain the marker line "${line}"`);
    }
  }
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  while (lines.length > 0 && lines[0] === '') lines.shift();
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
