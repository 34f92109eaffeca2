import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { fillGeneratedSections } from '../../scripts/readme-sections.js';

const readme = readFileSync('README.md', 'utf8');

describe('README.md', () => {
  it('has its generated sections (RBAC, troubleshooting) in step with the code — run `npm run docs`', () => {
    expect(fillGeneratedSections(readme)).toBe(readme);
  });
  it('documents every input and output of action.yml', () => {
    const action = parse(readFileSync('action.yml', 'utf8')) as {
      inputs: Record<string, unknown>;
      outputs: Record<string, unknown>;
    };
    for (const name of [...Object.keys(action.inputs), ...Object.keys(action.outputs)]) {
      expect([name, readme.includes(`| \`${name}\` |`)]).toEqual([name, true]);
    }
  });
  it('gives the two set-up commands', () => {
    expect(readme).toContain('npm ci && npm run demo');
    expect(readme).toContain('npm test ');
  });
});
