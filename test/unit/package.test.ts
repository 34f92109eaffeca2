// package.json tells one versioning story with the code, the changelog and the release workflow, and
// describes a package that installs with nothing but itself (the bundles in dist/ are self-contained).
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { TOOL_VERSION } from '../../src/version.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  version: string;
  private?: boolean;
  bin: Record<string, string>;
  files: string[];
  dependencies?: Record<string, string>;
};
const changelog = readFileSync('CHANGELOG.md', 'utf8');

describe('package.json', () => {
  it('has the version the tool reports, and CHANGELOG.md has a section for it', () => {
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(TOOL_VERSION).toBe(pkg.version);
    expect(changelog).toMatch(
      new RegExp(`^## \\[${pkg.version.replace(/\./g, '\\.')}\\] - \\d{4}-\\d{2}-\\d{2}$`, 'm'),
    );
    expect(changelog).toMatch(/^## \[Unreleased\]$/m);
  });
  it('is publishable, with the CLI as its bin and no run-time dependencies', () => {
    expect(pkg.private).toBeUndefined();
    expect(pkg.bin).toEqual({ 'istio-vm-onboard': 'dist/cli/index.js' });
    expect(pkg.files).toContain('dist/cli/');
    expect(pkg.dependencies ?? {}).toEqual({});
  });
});
