// Runs the unit suite with the system clock moved (Debian's faketime): 400 days ahead and one day back.
// A test that reads the machine's date where it should use its own clock fails here the day it is
// written, not weeks later in CI.
import { spawnSync } from 'node:child_process';
import { findProgram } from './requirements.mjs';

const SHIFTS = ['+400d', '-1d'];

if (!findProgram('faketime')) {
  process.stderr.write('test:dates: faketime is missing: run `npm run setup` as root (Debian package faketime)\n');
  process.exit(1);
}
for (const shift of SHIFTS) {
  process.stdout.write(`test:dates: the unit suite with the clock moved ${shift}\n`);
  const result = spawnSync('faketime', ['-f', shift, 'npm', 'run', '-s', 'test:unit', '--', '--silent'], {
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    process.stderr.write(`test:dates: the unit suite failed with the clock moved ${shift}\n`);
    process.exit(result.status ?? 1);
  }
}
