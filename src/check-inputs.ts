// The second half of checking the inputs, before the first Kubernetes request or SSH connection:
// what needs more than the text of an input. The SSH key is parsed as the SSH client will parse it,
// the kubeconfig is loaded and its context chosen (no request is sent), the groups are looked up in
// the inventory, and the package file is opened. Every bad input gives one error naming it.
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ClusterConfigError } from './cluster/errors.js';
import { KubeContextError, loadKubeConfig } from './cluster/credentials.js';
import type { Inventory } from './inventory/types.js';
import { SettingsError, type RunSettings } from './settings.js';
import { privateKeyProblem } from './vm/private-key.js';

export function checkInputs(
  settings: RunSettings,
  inventory: Inventory,
  options: { env: NodeJS.ProcessEnv; cwd: string },
): void {
  const errors: SettingsError[] = [];

  if (settings.ssh.privateKey.trim() !== '') {
    const problem = privateKeyProblem(settings.ssh.privateKey, settings.ssh.passphrase);
    if (problem) errors.push(new SettingsError(problem.input, problem.detail));
  }

  try {
    loadKubeConfig({
      ...(settings.kube.kubeconfig.trim() !== '' ? { kubeconfig: settings.kube.kubeconfig } : {}),
      ...(settings.kube.context ? { context: settings.kube.context } : {}),
      env: options.env,
    });
  } catch (error) {
    if (!(error instanceof ClusterConfigError)) throw error;
    // The messages name the source, line and contexts, never a credential (credentials.ts).
    errors.push(
      error instanceof KubeContextError
        ? new SettingsError('context', `${error.message}; give one of the kubeconfig's contexts`)
        : new SettingsError(
            'kubeconfig',
            /\bgive\b/.test(error.message)
              ? error.message
              : `${error.message}; give a kubeconfig (YAML with clusters, contexts and users, or base64 of it)`,
          ),
    );
  }

  const known = inventory.groups.map((group) => group.name);
  const unknown = settings.rollout.groups.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    errors.push(
      new SettingsError(
        'groups',
        `names ${unknown.map((name) => `'${name}'`).join(', ')}, not a group of the inventory ` +
          `${inventory.source}; its groups are ${known.join(', ')}`,
      ),
    );
  }

  const allowed = settings.rollout.allowedNamespaces;
  if (allowed.length > 0) {
    const outside = inventory.groups.filter((group) => !allowed.includes(group.namespace));
    if (outside.length > 0) {
      errors.push(
        new SettingsError(
          'allowed-namespaces',
          `lists ${allowed.join(', ')}, but the inventory ${inventory.source} puts ${outside
            .map((group) => `group '${group.name}' in namespace '${group.namespace}'`)
            .join(', ')}; add the namespace here (the workflow's owner decides) or move the group`,
        ),
      );
    }
  }

  const packagePath = settings.sidecarPackage.uploadPath;
  if (packagePath !== '') {
    const where = resolve(options.cwd, packagePath);
    let problem: string | undefined;
    try {
      if (!statSync(where).isFile()) problem = 'is not a file';
      else accessSync(where, constants.R_OK);
    } catch (error) {
      problem = `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
    }
    if (problem) {
      errors.push(
        new SettingsError(
          'sidecar-package-path',
          `'${packagePath}' ${problem}; give the path of an istio-sidecar .deb or .rpm on the runner`,
        ),
      );
    }
  }

  if (errors.length > 0) throw SettingsError.combine(errors);
}
