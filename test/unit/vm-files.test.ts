// The one table of files onboarding manages on a VM (src/vm/paths.ts): what the scripts, the VM adapter
// and the plan read from it must stay consistent.
import { describe, expect, it } from '@jest/globals';
import type { VmFiles } from '../../src/render/index.js';
import { MANAGED_FILES, VM_FILES, vmFile } from '../../src/vm/paths.js';

describe('VM_FILES', () => {
  it('names each file once: key, path, label and staged name', () => {
    for (const field of ['key', 'path', 'label', 'staged'] as const) {
      const values = VM_FILES.map((file) => file[field]);
      expect([field, new Set(values).size]).toEqual([field, values.length]);
    }
  });

  it('places every file istioctl renders exactly once, and nothing else comes from the render', () => {
    const rendered = VM_FILES.flatMap((file) => (file.rendered ? [file.rendered] : []));
    // Every key of the render's VmFiles, and no other (the compiler checks this object against the type).
    const everyRenderedFile: Record<keyof VmFiles, true> = {
      clusterEnv: true,
      meshYaml: true,
      hosts: true,
      rootCert: true,
      token: true,
    };
    expect([...rendered].sort()).toEqual(Object.keys(everyRenderedFile).sort());
  });

  it('gives the scripts the plain files, in table order, each with an owner and a mode', () => {
    expect(MANAGED_FILES.map((file) => file.key)).toEqual(
      VM_FILES.filter((file) => file.key !== 'hosts').map((file) => file.key),
    );
    for (const file of MANAGED_FILES)
      expect([file.key, file.owner, file.mode]).toEqual([
        file.key,
        expect.any(String),
        expect.stringMatching(/^0[0-7]{3}$/),
      ]);
  });

  it('keeps the token secret and restarting nothing, and marks cluster.env as sourced by root', () => {
    expect(vmFile('token')).toMatchObject({ secret: true, restarts: false });
    expect(VM_FILES.filter((file) => file.secret).map((file) => file.key)).toEqual(['token']);
    expect(VM_FILES.filter((file) => file.sourcedByRoot).map((file) => file.key)).toEqual(['clusterEnv']);
    expect(() => vmFile('nope' as never)).toThrow('no managed VM file nope');
  });
});
