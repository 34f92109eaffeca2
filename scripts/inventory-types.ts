// TypeScript types for the inventory document, generated from inventory.schema.json (the one source:
// editors read it, the validator reads it, these types are made from it). `npm run inventory-types`
// writes src/inventory/schema-types.ts; test/unit/inventory.test.ts fails when that file is stale.
//
// Only the part of JSON Schema the inventory schema uses is understood (type, properties, required,
// additionalProperties, items, enum, const, oneOf, $ref to #/definitions); any other keyword that
// would change a type stops the generator instead of being ignored.
import { format, resolveConfig } from 'prettier';

export const INVENTORY_SCHEMA_FILE = 'inventory.schema.json';
export const INVENTORY_TYPES_FILE = 'src/inventory/schema-types.ts';

interface Schema {
  [keyword: string]: unknown;
  description?: string;
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  oneOf?: Schema[];
  $ref?: string;
  definitions?: Record<string, Schema>;
}

/** Keywords that constrain values but not their TypeScript type (the validator checks them). */
const VALUE_ONLY = new Set([
  '$schema',
  '$id',
  '$comment',
  'title',
  'description',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'default',
  'examples',
]);
const SHAPE = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'const',
  'oneOf',
  '$ref',
  'definitions',
]);

const WIDTH = 120;

const typeName = (definition: string): string => definition[0]!.toUpperCase() + definition.slice(1);

/** A JSDoc comment, wrapped to the repository's 120 columns (Prettier leaves comments as they are). */
function doc(description: string | undefined, indent: string): string {
  if (!description) return '';
  const text = description.replaceAll('*/', '*\\/').replace(/\s+/g, ' ').trim();
  if (indent.length + text.length + 7 <= WIDTH) return `${indent}/** ${text} */\n`;
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent.length + 3 + line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}\n`).join('')}${indent} */\n`;
}

function typeOf(schema: Schema, at: string, indent: string): string {
  for (const keyword of Object.keys(schema)) {
    if (!VALUE_ONLY.has(keyword) && !SHAPE.has(keyword)) {
      throw new Error(`${at}: the type generator does not understand the keyword ${keyword}`);
    }
  }
  if (schema.$ref !== undefined) {
    const match = /^#\/definitions\/([A-Za-z][A-Za-z0-9]*)$/.exec(schema.$ref);
    if (!match) throw new Error(`${at}: only references to #/definitions/NAME are understood`);
    return typeName(match[1]!);
  }
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum !== undefined) return schema.enum.map((value) => JSON.stringify(value)).join(' | ');
  if (schema.oneOf !== undefined) {
    return schema.oneOf.map((option, i) => typeOf(option, `${at}/oneOf/${i}`, indent)).join(' | ');
  }
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array': {
      if (!schema.items) throw new Error(`${at}: an array needs items`);
      const item = typeOf(schema.items, `${at}/items`, indent);
      return /^[A-Za-z0-9]+$/.test(item) ? `${item}[]` : `(${item})[]`;
    }
    case 'object':
      return objectType(schema, at, indent);
    default:
      throw new Error(`${at}: the type generator does not understand type ${JSON.stringify(schema.type)}`);
  }
}

function objectType(schema: Schema, at: string, indent: string): string {
  const extra = schema.additionalProperties;
  if (!schema.properties) {
    if (extra === false) return 'Record<string, never>';
    if (extra === true || extra === undefined) return 'Record<string, unknown>';
    return `Record<string, ${typeOf(extra, `${at}/additionalProperties`, indent)}>`;
  }
  if (extra !== false) throw new Error(`${at}: properties with additionalProperties are not understood`);
  const required = new Set(schema.required ?? []);
  const inner = `${indent}  `;
  const members = Object.entries(schema.properties).map(([name, property]) => {
    const key = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
    const type = typeOf(property, `${at}/properties/${name}`, inner);
    return `${doc(property.description, inner)}${inner}${key}${required.has(name) ? '' : '?'}: ${type};\n`;
  });
  return `{\n${members.join('')}${indent}}`;
}

function declaration(name: string, schema: Schema, at: string): string {
  const type = typeOf(schema, at, '');
  const isInterface = type.startsWith('{') && schema.$ref === undefined && schema.oneOf === undefined;
  return `${doc(schema.description, '')}${
    isInterface ? `export interface ${name} ${type}` : `export type ${name} = ${type};`
  }\n`;
}

/** The generated module, formatted as the repository's Prettier settings want it. */
export async function inventoryTypesSource(schema: Schema): Promise<string> {
  const { definitions = {}, ...root } = schema;
  const parts = [
    `// Generated from ${INVENTORY_SCHEMA_FILE} by \`npm run inventory-types\` (scripts/inventory-types.ts): do not edit.\n` +
      '// The inventory document as written, before defaults; src/inventory/types.ts is the model made from it.\n',
    declaration('InventoryDocument', root, '#'),
    ...Object.entries(definitions).map(([name, definition]) =>
      declaration(typeName(name), definition, `#/definitions/${name}`),
    ),
  ];
  const options = (await resolveConfig(INVENTORY_TYPES_FILE)) ?? {};
  return format(parts.join('\n'), { ...options, filepath: INVENTORY_TYPES_FILE });
}
