// Public surface of the inventory layer.
export { parseInventory, loadInventory } from './parse.js';
export { isInlineInventory, INLINE_SOURCE } from './source.js';
export { InventoryError, formatIssue, formatPath } from './errors.js';
export type { InventoryIssue, PathSegment } from './errors.js';
export { INVENTORY_SCHEMA } from './schema.js';
export * from './types.js';
