// The machine set-up's table: a missing program is found, named with its Debian package, and the one
// install command covers every missing package once.
import { describe, expect, it } from '@jest/globals';
import {
  MACHINE_REQUIREMENTS,
  findProgram,
  installCommand,
  missingRequirements,
} from '../../scripts/machine/requirements.mjs';

describe('machine requirements', () => {
  it('finds a program on PATH and reports one that is not installed', () => {
    expect(findProgram('sh')).toMatch(/\/sh$/);
    const wanted = [
      { program: 'sh', debianPackage: 'dash', usedFor: 'shell' },
      { program: 'ivo-no-such-program', debianPackage: 'ivo-pkg', usedFor: 'a test' },
      { program: 'ivo-no-such-program-2', debianPackage: 'ivo-pkg', usedFor: 'a test' },
    ];
    const missing = missingRequirements(wanted);
    expect(missing.map((r) => r.program)).toEqual(['ivo-no-such-program', 'ivo-no-such-program-2']);
    expect(installCommand(missing)).toBe('apt-get update && apt-get install -y --no-install-recommends ivo-pkg');
  });

  it('names a Debian package and a purpose for every program the lab needs', () => {
    for (const r of MACHINE_REQUIREMENTS) {
      expect(r.program).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(r.debianPackage).toMatch(/^[a-z0-9][a-z0-9.+-]*$/);
      expect(r.usedFor.length).toBeGreaterThan(5);
    }
    expect(MACHINE_REQUIREMENTS.map((r) => r.debianPackage)).toEqual(
      expect.arrayContaining(['openssh-server', 'sudo', 'iptables', 'faketime']),
    );
  });
});
