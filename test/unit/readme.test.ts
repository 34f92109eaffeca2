import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { fillGeneratedSections, fillSchemaCheckNames, renderInputsMarkdown } from '../../scripts/readme-sections.js';

const readme = readFileSync('README.md', 'utf8');
const headings = readme
  .replace(/```[\s\S]*?```/g, '')
  .split('\n')
  .filter((line) => line.startsWith('## '))
  .map((line) => line.slice(3));

describe('README.md', () => {
  it('has its generated sections (checks, inputs, RBAC, troubleshooting) in step with the code — run `npm run docs`', () => {
    expect(fillGeneratedSections(readme)).toBe(readme);
  });
  it("report.schema.json allows exactly the registry's check names — run `npm run docs`", () => {
    const schema = readFileSync('report.schema.json', 'utf8');
    expect(fillSchemaCheckNames(schema)).toBe(schema);
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
  it('puts what users need first and the development notes last', () => {
    const order = ['Quick start', 'Inputs', 'Outputs', 'Inventory', 'RBAC the kubeconfig needs', 'Troubleshooting'];
    const positions = order.map((heading) => headings.indexOf(heading));
    expect(positions.every((position) => position >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(headings.at(-1)).toBe('Development');
  });
  it('shows the quick-start workflow exactly as docs/examples/quick-start.yml has it', () => {
    const example = readFileSync('docs/examples/quick-start.yml', 'utf8');
    expect(readme).toContain(`\`\`\`yaml\n${example}\`\`\``);
  });
  it("points editors at the inventory schema's published, versioned URL (its $id)", () => {
    const schema = JSON.parse(readFileSync('inventory.schema.json', 'utf8')) as { $id: string };
    expect(schema.$id).toMatch(
      /^https:\/\/raw\.githubusercontent\.com\/[\w.-]+\/istio-vm-onboard\/v\d+\/inventory\.schema\.json$/,
    );
    expect(readme).toContain(`# yaml-language-server: $schema=${schema.$id}`);
  });
  it('tells how to turn on debug logging', () => {
    expect(readme).toContain('ACTIONS_STEP_DEBUG');
  });
  it('gives the two set-up commands', () => {
    expect(readme).toContain('npm ci && npm run demo');
    expect(readme).toContain('npm test ');
  });
});

describe('the generated inputs table', () => {
  it('marks required inputs, quotes defaults, escapes pipes and names deprecations', () => {
    const table = renderInputsMarkdown(
      [
        'inputs:',
        '  a: { description: "needed", required: true }',
        '  b: { description: "x|y", default: "1" }',
        '  c: { description: "old", default: "", deprecationMessage: "use b" }',
      ].join('\n'),
    );
    expect(table.split('\n').slice(2)).toEqual([
      '| `a` | (required) | needed |',
      '| `b` | `1` | x\\|y |',
      "| `c` | `''` | old **Deprecated:** use b |",
    ]);
  });
});
