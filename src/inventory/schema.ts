// The inventory's JSON Schema is /inventory.schema.json (repository root, published for editors): the
// validator reads that file as it is, and schema-types.ts is generated from it (`npm run inventory-types`).
import schema from '../../inventory.schema.json' with { type: 'json' };

export const INVENTORY_SCHEMA: Readonly<Record<string, unknown>> = schema;
