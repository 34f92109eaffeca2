// The post step's removal: only the action's run folder, never another path the job state might name.
import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeRunFolder, runFolderPath, runFolderToRemove } from '../../src/runner-files.js';

describe('the run folder', () => {
  it('is under RUNNER_TEMP (else the temporary folder) and is removed with its contents', async () => {
    const runnerTemp = mkdtempSync(path.join(os.tmpdir(), 'ivo runner temp '));
    try {
      const folder = runFolderPath({ RUNNER_TEMP: runnerTemp });
      expect(folder).toBe(path.join(runnerTemp, 'istio-vm-onboard'));
      expect(runFolderPath({})).toBe(path.join(os.tmpdir(), 'istio-vm-onboard'));
      mkdirSync(path.join(folder, 'compile-cache'), { recursive: true });
      writeFileSync(path.join(folder, 'compile-cache', 'entry'), 'x');
      expect(await removeRunFolder(folder)).toEqual({ removed: folder });
      expect(existsSync(folder)).toBe(false);
      expect(existsSync(runnerTemp)).toBe(true);
    } finally {
      rmSync(runnerTemp, { recursive: true, force: true });
    }
  });

  it('refuses what is not a run folder of this action, and nothing saved is not an error', async () => {
    const other = mkdtempSync(path.join(os.tmpdir(), 'ivo-not-ours-'));
    try {
      for (const saved of [other, `${other}/../${path.basename(other)}/istio-vm-onboard`, 'istio-vm-onboard', '/']) {
        expect(await removeRunFolder(saved)).toEqual({ skipped: expect.stringContaining('not a run folder') });
      }
      expect(existsSync(other)).toBe(true);
      expect(await removeRunFolder('')).toEqual({ skipped: expect.stringContaining('saved no run folder') });
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('for the post step: the saved folder, else the one made in RUNNER_TEMP on a runner, else none', async () => {
    const runnerTemp = mkdtempSync(path.join(os.tmpdir(), 'ivo runner temp '));
    try {
      const saved = path.join(runnerTemp, 'elsewhere', 'istio-vm-onboard');
      expect(runFolderToRemove(saved, { RUNNER_TEMP: runnerTemp })).toBe(saved);
      // the main step made the folder but was cancelled before it saved it (dist/run.js still loading)
      const made = runFolderPath({ RUNNER_TEMP: runnerTemp });
      mkdirSync(path.join(made, 'compile-cache'), { recursive: true });
      expect(await removeRunFolder(runFolderToRemove('', { RUNNER_TEMP: runnerTemp }))).toEqual({ removed: made });
      expect(existsSync(made)).toBe(false);
      // not on a runner: the shared temporary directory's istio-vm-onboard may be another run's
      expect(runFolderToRemove('', {})).toBe('');
      expect(runFolderToRemove('', { RUNNER_TEMP: '' })).toBe('');
    } finally {
      rmSync(runnerTemp, { recursive: true, force: true });
    }
  });
});
