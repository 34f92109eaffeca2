// Entry point of the bundled action (dist/index.js).
import './shims/esm-cjs-globals.js';
import * as core from '@actions/core';
import { run } from './action.js';

run().catch((error: unknown) => core.setFailed(error instanceof Error ? error.message : String(error)));
