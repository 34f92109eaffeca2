// npm run docs: regenerate README.md's generated sections and report.schema.json's check names.
import { readFileSync, writeFileSync } from 'node:fs';
import { fillGeneratedSections, fillSchemaCheckNames } from './readme-sections.js';

for (const [file, fill] of [
  ['README.md', fillGeneratedSections],
  ['report.schema.json', fillSchemaCheckNames],
] as const) {
  const before = readFileSync(file, 'utf8');
  const after = fill(before);
  writeFileSync(file, after);
  console.log(before === after ? `${file} was up to date` : `${file} updated`);
}
