// The README sections that are generated from code, so the documentation cannot drift from what the
// action accepts and checks: the check table (from the checks' registry), the inputs table (from
// action.yml), the minimal RBAC and the troubleshooting table; and the check names report.schema.json
// allows. `npm run docs` rewrites them; unit tests fail when README.md or the schema is out of date.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { renderMinimalRbacYaml } from '../src/cluster/rbac.js';
import { CHECK_NAMES, renderChecksMarkdown, renderHintsMarkdown } from '../src/verify/index.js';

interface ActionInput {
  description: string;
  required?: boolean;
  default?: string;
  deprecationMessage?: string;
}

/** One markdown table cell: no line breaks, `|` escaped. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}

/** The inputs table, one row per input of action.yml in its order: name, default, description. */
export function renderInputsMarkdown(actionYaml: string = readFileSync('action.yml', 'utf8')): string {
  const action = parse(actionYaml) as { inputs: Record<string, ActionInput> };
  const rows = Object.entries(action.inputs).map(([name, input]) => {
    const fallback = input.required ? '(required)' : input.default ? `\`${cell(input.default)}\`` : "`''`";
    const deprecated = input.deprecationMessage ? ` **Deprecated:** ${cell(input.deprecationMessage)}` : '';
    return `| \`${name}\` | ${fallback} | ${cell(input.description)}${deprecated} |`;
  });
  return ['| input | default | what it does |', '| --- | --- | --- |', ...rows].join('\n');
}

export const GENERATED_SECTIONS: Record<string, () => string> = {
  checks: () => renderChecksMarkdown().trimEnd(),
  inputs: () => renderInputsMarkdown(),
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

/** report.schema.json with the check names of the registry as the only allowed `check.name` values. */
export function fillSchemaCheckNames(schema: string): string {
  const pattern = /("check": \{[\s\S]*?"name": \{ "enum": )\[[^\]]*\]/;
  if (!pattern.test(schema)) throw new Error('report.schema.json has no check name enum');
  return schema.replace(
    pattern,
    (_match, before: string) => `${before}${JSON.stringify(CHECK_NAMES).replace(/,/g, ', ')}`,
  );
}
