// Lets `node --import ./test/lab/register-ts.mjs test/lab/cli.ts` run the lab's TypeScript directly (tsx).
import { register } from 'tsx/esm/api';

register();
