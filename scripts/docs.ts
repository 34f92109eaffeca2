// npm run docs: regenerate README.md's generated sections.
import { readFileSync, writeFileSync } from 'node:fs';
import { fillGeneratedSections } from './readme-sections.js';

const before = readFileSync('README.md', 'utf8');
const after = fillGeneratedSections(before);
writeFileSync('README.md', after);
console.log(before === after ? 'README.md was up to date' : 'README.md updated');
