// Faults of the lab for the verification checks
// (test/lab/action-checks.test.ts): each is a condition the real programs meet, not a switch in a double.
// - dns-capture-broken: the DNS rules `pilot-agent istio-iptables` installed (nat ISTIO_OUTPUT_DNS, udp/tcp
//   53 → the agent's DNS proxy on 15053; tools/istio-iptables/pkg/capture/run.go) are deleted in the VM's netns.
// - sidecar-crash-loop: the packaged Envoy bootstrap template is cut short; pilot-agent fails to render it and
//   exits ("failed to generate bootstrap config", pkg/istio-agent/agent.go), Istio's unit restarts it
//   (Restart=always, RestartSec=10 in tools/packaging/common/istio.service).
// - token-rejected: the VM must bootstrap again (its provisioned certificate gone) and its bootstrap token is
//   replaced by a real token of the group's ServiceAccount for the API server's audience (what `kubectl create
//   token` gives without --audience); istiod's TokenReview asks for istio-ca
//   (security/pkg/server/ca/authenticate/kubeauth/kube_jwt.go) and refuses it.
// - wrong-trust-domain: the mesh config (ConfigMap `istio`) says trustDomain corp.example and istiod is rolled
//   out with it: it signs for corp.example from now on; the VMs' certificates name cluster.local.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { run } from '../exec.js';
import type { ControlPlaneOptions } from '../control-plane.js';
import type { FaultDefinition, FaultTarget } from '../fault-types.js';
import type { KubeApiDouble } from '../kube/index.js';
import { API_AUDIENCE } from '../kube/tokens.js';
import { findVm, tryReadState, type LabState, type LabVmState } from '../state.js';
import { execInVm, vmPath } from '../vm/exec.js';

export interface CheckFaultsContext {
  options: Pick<ControlPlaneOptions, 'dir' | 'vms'>;
  kube: KubeApiDouble;
  istioNamespace: string;
  /** Changes the istiod Deployment / mesh config, then restarts istiod (a rollout). */
  rollOut: (change: () => void) => Promise<void>;
}

/** The trust domain `wrong-trust-domain` switches the mesh to. */
export const OTHER_TRUST_DOMAIN = 'corp.example';
const BOOTSTRAP_TEMPLATE = '/var/lib/istio/envoy/envoy_bootstrap_tmpl.json';
/**
 * The bootstrap token: the persistent copy onboard leaves, which its unit drop-in installs as pilot-agent's
 * /var/run/secrets/tokens/istio-token before every start, and that runtime file (/var/run is a symlink to
 * /run in the VM: named by its target, as the VM's root is reached from the host).
 */
const TOKEN_PATHS = ['/var/lib/istio/tokens/istio-token', '/run/secrets/tokens/istio-token'] as const;
/**
 * The certificate and key the agent renews with (PROV_CERT = OUTPUT_CERTS = ./etc/certs in istio-start.sh):
 * while they exist the agent authenticates with them and never shows istiod the token
 * (src/verify/provisioned-certificate.ts), so the token bites only on a VM that must bootstrap.
 */
const PROVISIONED_PAIR = ['/etc/certs/cert-chain.pem', '/etc/certs/key.pem'] as const;
/** Both iptables backends: `pilot-agent istio-iptables` picks the one it detects. */
const IPTABLES = ['iptables-legacy', 'iptables'] as const;

export function checkFaults(ctx: CheckFaultsContext): FaultDefinition[] {
  const state = (): LabState => {
    const s = tryReadState(ctx.options.dir);
    if (!s) throw new Error(`no lab state in ${ctx.options.dir}`);
    return s;
  };
  const targets = (t: FaultTarget): LabVmState[] => {
    const s = state();
    return t.vm ? [findVm(s, t.vm)] : ctx.options.vms.map((v) => findVm(s, v.name));
  };
  const inVm = async (vm: LabVmState, script: string): Promise<void> => {
    const r = await execInVm(state(), vm, script, { timeoutMs: 60_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`${vm.name}: \`${script}\` exited ${r.code}: ${r.stderr.trim()}`);
  };

  // dns-capture-broken: the removed rules, per VM, to put back in order.
  const removedDnsRules = new Map<string, { iptables: string; rules: string[][] }[]>();
  const iptables = (vm: LabVmState, bin: string, args: string[]) =>
    run(['ip', 'netns', 'exec', vm.netns, bin, '-w', '5', '-t', 'nat', ...args], {
      allowFailure: true,
      timeoutMs: 15_000,
    });

  // sidecar-crash-loop / token-rejected: the VM's original file content (kept in memory, never on disk).
  const templates = new Map<string, Buffer>();
  const tokens = new Map<string, Map<string, Buffer>>();

  // wrong-trust-domain: the mesh config text before.
  let meshBefore: string | undefined;
  const meshConfigMap = () => ctx.kube.store.mustGet('configmaps', ctx.istioNamespace, 'istio');
  const setMeshText = (text: string) => {
    const cm = meshConfigMap();
    ctx.kube.store.update('configmaps', { ...cm, data: { ...(cm.data as Record<string, string>), mesh: text } });
  };

  return [
    {
      name: 'dns-capture-broken',
      scope: 'vm',
      description:
        "istio-iptables' DNS capture rules (nat ISTIO_OUTPUT_DNS, port 53 → the agent's DNS proxy on 15053) are deleted in the VM's netns; heal puts them back",
      async apply(t) {
        for (const vm of targets(t)) {
          if (removedDnsRules.has(vm.name)) continue;
          const removed: { iptables: string; rules: string[][] }[] = [];
          for (const bin of IPTABLES) {
            const listed = await iptables(vm, bin, ['-S', 'ISTIO_OUTPUT_DNS']);
            if (listed.code !== 0) continue;
            const rules = listed.stdout
              .split('\n')
              .filter((l) => l.startsWith('-A ISTIO_OUTPUT_DNS ') && /--to-ports 15053\b/.test(l))
              .map((l) => l.split(/\s+/).slice(2));
            for (const rule of rules) {
              const r = await iptables(vm, bin, ['-D', 'ISTIO_OUTPUT_DNS', ...rule]);
              if (r.code !== 0) throw new Error(`${vm.name}: ${bin} -D ISTIO_OUTPUT_DNS: ${r.stderr.trim()}`);
            }
            if (rules.length) removed.push({ iptables: bin, rules });
          }
          if (!removed.length)
            throw new Error(`${vm.name}: no DNS capture rule (ISTIO_OUTPUT_DNS → 15053): is its sidecar running?`);
          removedDnsRules.set(vm.name, removed);
        }
      },
      async heal(t) {
        for (const vm of targets(t)) {
          for (const { iptables: bin, rules } of removedDnsRules.get(vm.name) ?? []) {
            for (const rule of rules) {
              // A sidecar restarted meanwhile re-created them: add only what is missing.
              if ((await iptables(vm, bin, ['-C', 'ISTIO_OUTPUT_DNS', ...rule])).code === 0) continue;
              const r = await iptables(vm, bin, ['-A', 'ISTIO_OUTPUT_DNS', ...rule]);
              if (r.code !== 0) throw new Error(`${vm.name}: ${bin} -A ISTIO_OUTPUT_DNS: ${r.stderr.trim()}`);
            }
          }
          removedDnsRules.delete(vm.name);
        }
      },
    },
    {
      name: 'sidecar-crash-loop',
      scope: 'vm',
      description: `${BOOTSTRAP_TEMPLATE} is cut short and the sidecar restarted: pilot-agent cannot render Envoy's bootstrap and exits, the unit restarts it every 10 s; heal restores the file and restarts the unit`,
      async apply(t) {
        for (const vm of targets(t)) {
          if (templates.has(vm.name)) continue;
          const file = vmPath(state(), vm, BOOTSTRAP_TEMPLATE);
          const original = readFileSync(file);
          templates.set(vm.name, original);
          writeFileSync(file, original.subarray(0, 200));
          await inVm(vm, 'systemctl restart istio');
        }
      },
      async heal(t) {
        for (const vm of targets(t)) {
          const original = templates.get(vm.name);
          if (!original) continue;
          writeFileSync(vmPath(state(), vm, BOOTSTRAP_TEMPLATE), original);
          templates.delete(vm.name);
          await inVm(vm, 'systemctl restart istio');
        }
      },
    },
    {
      name: 'token-rejected',
      scope: 'vm',
      description:
        "the VM must bootstrap again (its provisioned /etc/certs/cert-chain.pem and key.pem gone, as on a new VM) and its bootstrap token (/var/lib/istio/tokens/istio-token and /var/run/secrets/tokens/istio-token) is a token of its ServiceAccount for the API server's audience, not istio-ca: istiod's TokenReview refuses it at the next sidecar start; heal puts the original files back",
      async apply(t) {
        for (const vm of targets(t)) {
          if (tokens.has(vm.name)) continue;
          const files = TOKEN_PATHS.map((p) => vmPath(state(), vm, p)).filter((f) => existsSync(f));
          if (!files.length) throw new Error(`${vm.name}: no bootstrap token (${TOKEN_PATHS.join(', ')})`);
          const originals = new Map(files.map((f) => [f, readFileSync(f)]));
          const payload = originals.get(files[0]!)!.toString().split('.')[1] ?? '';
          const claims = JSON.parse(Buffer.from(payload, 'base64url').toString() || '{}') as {
            'kubernetes.io'?: { namespace?: string; serviceaccount?: { name?: string } };
          };
          const ns = claims['kubernetes.io']?.namespace;
          const sa = claims['kubernetes.io']?.serviceaccount?.name;
          if (!ns || !sa) throw new Error(`${vm.name}: ${files[0]} is not a ServiceAccount token`);
          const wrong = ctx.kube.issueServiceAccountToken(ns, sa, [API_AUDIENCE], 3600);
          const pair = PROVISIONED_PAIR.map((p) => vmPath(state(), vm, p)).filter((f) => existsSync(f));
          for (const f of pair) originals.set(f, readFileSync(f));
          tokens.set(vm.name, originals);
          for (const f of files) writeFileSync(f, wrong.token);
          for (const f of pair) rmSync(f);
        }
      },
      async heal(t) {
        for (const vm of targets(t)) {
          for (const [file, original] of tokens.get(vm.name) ?? []) writeFileSync(file, original);
          tokens.delete(vm.name);
        }
      },
    },
    {
      name: 'wrong-trust-domain',
      scope: 'lab',
      description: `mesh config (ConfigMap istio) trustDomain ${OTHER_TRUST_DOMAIN} and the real istiod rolled out with it: it signs for ${OTHER_TRUST_DOMAIN}, the running VMs keep their cluster.local certificates; heal restores the mesh config and rolls out again`,
      async apply() {
        if (meshBefore !== undefined) return;
        const text = String((meshConfigMap().data as Record<string, string>).mesh ?? '');
        const mesh = (parseYaml(text) ?? {}) as Record<string, unknown>;
        meshBefore = text;
        await ctx.rollOut(() => setMeshText(toYaml({ ...mesh, trustDomain: OTHER_TRUST_DOMAIN })));
      },
      async heal() {
        if (meshBefore === undefined) return;
        const text = meshBefore;
        meshBefore = undefined;
        await ctx.rollOut(() => setMeshText(text));
      },
    },
  ];
}
