// npm run inventory-types: regenerate src/inventory/schema-types.ts from inventory.schema.json.
import { readFileSync, writeFileSync } from 'node:fs';
import { INVENTORY_SCHEMA_FILE, INVENTORY_TYPES_FILE, inventoryTypesSource } from './inventory-types.js';

const before = readFileSync(INVENTORY_TYPES_FILE, { encoding: 'utf8', flag: 'a+' });
const after = await inventoryTypesSource(JSON.parse(readFileSync(INVENTORY_SCHEMA_FILE, 'utf8')));
writeFileSync(INVENTORY_TYPES_FILE, after);
console.log(before === after ? `${INVENTORY_TYPES_FILE} was up to date` : `${INVENTORY_TYPES_FILE} updated`);
