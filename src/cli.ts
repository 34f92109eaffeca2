// Entry point of the bundled command line (dist/cli/index.js): the same core as the action.
//   istio-vm-onboard render …                         files of one VM (or an inventory) offline, like istioctl
//   istio-vm-onboard onboard|plan|verify|offboard …   a run, with the action's inputs as --flags
//   istio-vm-onboard rbac                             the minimal RBAC the kubeconfig needs
import './shims/esm-cjs-globals.js';
import { readFileSync } from 'node:fs';
import { loadHeavy } from './cli/load-heavy.js';
import { runRenderCommand } from './commands/render.js';
import { renderMinimalRbacYaml } from './cluster/rbac.js';
import { TOOL_VERSION } from './version.js';

const USAGE = `istio-vm-onboard ${TOOL_VERSION} — bring VMs into an Istio mesh and prove they work there

Usage:
  istio-vm-onboard onboard  --inventory FILE [options]   onboard the VMs, then verify them
  istio-vm-onboard plan     --inventory FILE [options]   show what would change, touch nothing
  istio-vm-onboard verify   --inventory FILE [options]   run the checks only
  istio-vm-onboard offboard --inventory FILE [options]   remove the sidecar, files and WorkloadEntries
  istio-vm-onboard render   -f workloadgroup.yaml … -o DIR   offline, like istioctl x workload entry configure
  istio-vm-onboard rbac                                  print the minimal Role/ClusterRole YAML

Options (the action's inputs, as flags; INPUT_* environment variables work too):
  --kubeconfig FILE  --context NAME  --ssh-private-key FILE  --ssh-known-hosts FILE
  --groups a,b  --allowed-namespaces ns,…  --shard i/n  --concurrency N  --max-unavailable N|P%
  --failure-budget N|P%
  --peer-authentication strict|permissive|unchanged  --verify-after-onboard true|false  --verify-url URL
  --sidecar-package-url TEMPLATE  --sidecar-package-sha256 HEX  --istio-version X.Y.Z
  --dns-servers IP[:PORT],…  --east-west-address ADDR  --cluster-id ID  --revision REV
  --report-path FILE  --json (print the JSON report instead of the table)
Exit status: 0 all VMs ok, 1 a VM failed or the run could not start, 2 usage error.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'render':
      return runRenderCommand(rest, { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() });
    case 'onboard':
    case 'plan':
    case 'verify':
    case 'offboard': {
      // Loaded only for a run: the Kubernetes client and SSH are most of the code.
      const { runCliRun } = await loadHeavy();
      return runCliRun(command, rest, {
        stdout: process.stdout,
        stderr: process.stderr,
        env: process.env,
        readFile: (path) => readFileSync(path, 'utf8'),
      });
    }
    case 'rbac':
      process.stdout.write(renderMinimalRbacYaml());
      return 0;
    case '--version':
    case 'version':
      process.stdout.write(`${TOOL_VERSION}\n`);
      return 0;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
