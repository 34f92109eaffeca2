// The README sections that are generated from code, so the documentation cannot drift from what the
// action checks: the minimal RBAC and the troubleshooting table. `npm run docs` rewrites them; a
// unit test fails when README.md is out of date.
import { renderMinimalRbacYaml } from '../src/cluster/rbac.js';
import { renderHintsMarkdown } from '../src/verify/index.js';

export const GENERATED_SECTIONS: Record<string, () => string> = {
  rbac: () => `\`\`\`yaml\n${renderMinimalRbacYaml().trimEnd()}\n\`\`\``,
  hints: () => renderHintsMarkdown().trimEnd(),
};

export function fillGeneratedSections(readme: string): string {
  let result = readme;
  for (const [name, render] of Object.entries(GENERATED_SECTIONS)) {
    const pattern = new RegExp(
      `(<!-- BEGIN GENERATED: ${name} [^>]*-->\\n)[\\s\\S]*?(<!-- END GENERATED: ${name} -->)`,
    );
    if (!pattern.test(result)) throw new Error(`README.md has no generated section '${name}'`);
    result = result.replace(pattern, (_match, begin: string, end: string) => `${begin}${render()}\n${end}`);
  }
  return result;
}
