// Every input of action.yml, malformed, through the bundled action (dist/index.js) against a lab: the
// run fails naming that input, and neither the Kubernetes API nor any VM's sshd has seen a thing.
//
// The cases are generated from action.yml: an input without a malformed value here (and not on the
// short exemption list, with its reason) fails the first test, so a new input cannot skip the rule.
//
// The lab runs on real Istio. Its Kubernetes API records every request
// with its user. Counting only the action's: the action gets a kubeconfig that holds the `lab-restricted`
// user and nothing else (no admin credentials it could fall back to), so each request it can make is
// lab-restricted's or, without credentials, system:anonymous's; only those are counted. The real istiod
// reads and watches the API all along under its own identity (the lab kubeconfig's `lab` context, user
// `lab-admin`), and the control test below shows those requests exist and are left out. Each VM's
// sshd runs with LogLevel VERBOSE and logs every connection ("Connection from …"), authenticated or
// not. Two control runs with good inputs show that both counters do see the action.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { runAction, type ActionRun } from './action-harness.js';
import { controlRequest } from './control.js';
import type { LabState } from './state.js';
import { ADMIN_USER, RESTRICTED_USER } from './kube/auth.js';
import { upRealLab } from './real-lab.js';
import { downLab, REPO_ROOT } from './testing.js';
import { vmPath } from './vm/exec.js';

const ACTION_INPUTS = Object.keys(
  (parseYaml(readFileSync(path.join(REPO_ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown> }).inputs,
);

/** Free-form inputs with no malformed value, each with the reason. */
const EXEMPT: Record<string, string> = {
  'report-path':
    'any path names a place for the report; it is written (folders created) at the end of the run, and a failure to write it fails the run then',
};

/** Inputs that must go with a malformed value for it to be malformed (e.g. a passphrase needs a protected key). */
type Case = { label: string; value: string; with?: Record<string, string>; names?: RegExp };

let protectedKey = '';
const DAMAGED_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\n${Buffer.from('not a key, just bytes in a PEM frame '.repeat(8)).toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;

const MALFORMED: Record<string, Case[]> = {
  inventory: [
    { label: 'inline YAML that does not parse', value: 'groups: [', names: /::error::inventory <inline> is invalid/ },
    { label: 'a file that is not there', value: 'missing-inventory.yaml', names: /::error::.*missing-inventory\.yaml/ },
  ],
  kubeconfig: [
    { label: 'YAML that does not parse', value: 'clusters: [' },
    { label: 'not a kubeconfig', value: 'hello' },
  ],
  context: [{ label: 'a context the kubeconfig lacks', value: 'no-such-context' }],
  'ssh-private-key': [
    { label: 'a valid PEM frame around garbage', value: DAMAGED_KEY },
    { label: 'missing in mode onboard', value: '' },
    { label: 'a public key', value: 'PUBLIC_KEY' },
  ],
  'ssh-private-key-passphrase': [
    { label: 'missing for a protected key', value: '', with: { 'ssh-private-key': 'PROTECTED_KEY' } },
    { label: 'wrong for a protected key', value: 'wrong horse', with: { 'ssh-private-key': 'PROTECTED_KEY' } },
  ],
  'ssh-known-hosts': [
    { label: 'a line without its key', value: '10.0.0.1 ssh-ed25519' },
    { label: 'missing without trust on first use', value: '' },
  ],
  'ssh-trust-on-first-use': [{ label: 'not a boolean', value: 'sometimes' }],
  'ssh-connect-timeout': [{ label: 'zero', value: '0' }],
  mode: [{ label: 'an unknown mode', value: 'deploy' }],
  groups: [{ label: 'a group the inventory lacks', value: 'no-such-group' }],
  'allowed-namespaces': [
    { label: 'not a namespace name', value: 'Bad_Namespace' },
    { label: "a list without the lab group's namespace", value: 'team-a,team-b' },
  ],
  'changed-groups-only': [{ label: 'not a boolean', value: 'yes please' }],
  'istio-version': [{ label: 'not a release', value: 'latest' }],
  'sidecar-package-url': [{ label: 'an unknown placeholder', value: 'https://example.com/{versoin}/x.deb' }],
  'sidecar-package-sha256': [{ label: 'too short', value: 'abc123' }],
  'sidecar-package-path': [{ label: 'a file that is not there', value: 'missing-istio-sidecar.deb' }],
  concurrency: [{ label: 'a word', value: 'ten' }],
  'max-unavailable': [{ label: 'over 100%', value: '120%' }],
  'failure-budget': [{ label: 'negative', value: '-1' }],
  'vm-timeout': [{ label: 'below the minimum', value: '5' }],
  shard: [{ label: 'index above count', value: '3/2' }],
  'peer-authentication': [{ label: 'an unknown policy', value: 'mtls' }],
  'verify-after-onboard': [{ label: 'not a boolean', value: 'maybe' }],
  verify: [{ label: 'not a boolean (deprecated name)', value: 'maybe' }],
  'verify-url': [{ label: 'not http(s)', value: 'ftp://mesh.example/x' }],
  'verify-client-image': [{ label: 'a space in it', value: 'curl image' }],
  'verify-requests': [{ label: 'zero', value: '0' }],
  'verify-ready-timeout': [{ label: 'a word', value: 'soon' }],
  'certificate-min-validity': [{ label: 'negative', value: '-5' }],
  'token-lifetime': [{ label: 'below the minimum', value: '60' }],
  'dns-servers': [{ label: 'a name instead of an address', value: 'dns.example.com' }],
  revision: [{ label: 'not a DNS-1123 label', value: 'Canary_1' }],
  'cluster-id': [{ label: 'a space in it', value: 'cluster 1' }],
  'east-west-address': [{ label: 'an IPv4 address out of range', value: '10.0.0.300' }],
};

let dir: string | undefined;
let state: LabState;
let entry: string;
/** The lab's kubeconfig cut down to the restricted user: the only credentials the action is given. */
let restrictedKubeconfig = '';

/** Users the action's requests arrive as: its kubeconfig's one user, or none (the API's anonymous user). */
const ACTION_USERS = new Set([RESTRICTED_USER, 'system:anonymous', '']);

type Kubeconfig = {
  users: { name: string }[];
  contexts: { name: string; context: { user: string } }[];
  'current-context': string;
};

beforeAll(async () => {
  ({ dir, state, entry } = await upRealLab('action-inputs', 1));
  const full = parseYaml(readFileSync(state.files.kubeconfig!, 'utf8')) as Kubeconfig;
  restrictedKubeconfig = stringifyYaml({
    ...full,
    users: full.users.filter((u) => u.name === RESTRICTED_USER),
    contexts: full.contexts.filter((c) => c.context.user === RESTRICTED_USER),
    'current-context': 'lab-restricted',
  });
  const keyFile = path.join(dir, 'protected key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse', '-C', '', '-f', keyFile]);
  protectedKey = readFileSync(keyFile, 'utf8');
}, 600_000);

afterAll(async () => {
  if (dir) await downLab(dir);
}, 120_000);

/** The API requests by each user since the lab started. */
async function kubeRequestsByUser(): Promise<Record<string, number>> {
  const reply = await controlRequest(state.files.controlSocket, { op: 'status' }, 10_000);
  if (!reply.ok) throw new Error(`lab status: ${reply.error}`);
  return (reply.result as { kubeRequestsByUser: Record<string, number> }).kubeRequestsByUser;
}

/** The action's API requests (by the users it can be), and connections every VM's sshd has logged. */
async function counters(): Promise<{ kubeRequests: number; sshConnections: number }> {
  const kubeRequests = Object.entries(await kubeRequestsByUser())
    .filter(([user]) => ACTION_USERS.has(user))
    .reduce((sum, [, count]) => sum + count, 0);
  let sshConnections = 0;
  for (const vm of state.vms) {
    const log = readFileSync(vmPath(state, vm, '/var/log/sshd-lab.log'), 'utf8');
    sshConnections += log.split('\n').filter((line) => line.includes('Connection from ')).length;
  }
  return { kubeRequests, sshConnections };
}

function resolveKey(value: string): string {
  if (value === 'PROTECTED_KEY') return protectedKey;
  if (value === 'PUBLIC_KEY')
    return execFileSync('ssh-keygen', ['-y', '-f', state.files.privateKey], { encoding: 'utf8' });
  return value;
}

function action(inputs: Record<string, string>): Promise<ActionRun> {
  const resolved = Object.fromEntries(Object.entries(inputs).map(([name, value]) => [name, resolveKey(value)]));
  return runAction(
    state,
    { kubeconfig: restrictedKubeconfig, context: 'lab-restricted', ...resolved },
    { entry, timeoutMs: 60_000 },
  );
}

describe('inputs of action.yml', () => {
  it('every input has a malformed case here or an exemption with its reason', () => {
    expect(ACTION_INPUTS.filter((name) => !(name in MALFORMED) && !(name in EXEMPT))).toEqual([]);
    // No stale entry: each names an input of action.yml, and nothing is both tested and exempt.
    expect([...Object.keys(MALFORMED), ...Object.keys(EXEMPT)].filter((name) => !ACTION_INPUTS.includes(name))).toEqual(
      [],
    );
    expect(Object.keys(EXEMPT).filter((name) => name in MALFORMED)).toEqual([]);
    for (const [name, reason] of Object.entries(EXEMPT)) expect([name, reason.length > 30]).toEqual([name, true]);
    expect(Object.keys(EXEMPT).length).toBeLessThanOrEqual(3);
  });

  const cases = ACTION_INPUTS.flatMap((name) => (MALFORMED[name] ?? []).map((c) => [name, c.label, c] as const));
  it.each(cases)('%s: %s fails naming it, before any API request or SSH connection', async (name, _label, c) => {
    const before = await counters();
    const run = await action({ ...c.with, [name]: c.value });
    const after = await counters();
    expect(run.code).not.toBe(0);
    expect(run.log).toMatch(c.names ?? new RegExp(`::error::input '${name}': `));
    // One error: the malformed input is the only one named.
    expect(run.log.match(/::error::/g)).toHaveLength(1);
    expect(run.log).not.toMatch(/bad inputs:/);
    expect(after).toEqual(before);
    expect(JSON.parse(run.outputs.result ?? '{}')).toMatchObject({ ok: false });
    // The secrets given are never shown.
    for (const secret of [protectedKey, readFileSync(state.files.privateKey, 'utf8')]) {
      for (const line of secret.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----')))
        expect(run.log).not.toContain(line);
    }
  });

  it('the damaged key of issue 21: exit 1 naming ssh-private-key, and the cluster untouched', async () => {
    const before = await counters();
    const run = await action({ 'ssh-private-key': DAMAGED_KEY });
    expect(run.code).toBe(1);
    expect(run.log).toContain(
      "::error::input 'ssh-private-key': cannot be parsed: the -----BEGIN … PRIVATE KEY----- block does not hold a valid key",
    );
    expect(await counters()).toEqual(before);
    expect(run.report).toBeUndefined();
  });

  // Controls: with good inputs the same counters move, so a zero above means something.
  it('control: a plan with good inputs reaches the API (as lab-restricted, which may not write: plan writes nothing, so it succeeds)', async () => {
    const before = await counters();
    const run = await action({ mode: 'plan' });
    const after = await counters();
    expect(after.kubeRequests).toBeGreaterThan(before.kubeRequests);
    // The real istiod's own requests are there, under its own identity, and not among the counted ones.
    const byUser = await kubeRequestsByUser();
    expect(byUser[ADMIN_USER] ?? 0).toBeGreaterThan(0);
    expect(ACTION_USERS.has(ADMIN_USER)).toBe(false);
    // (Before plan stopped waiting for the root cert of a namespace it does not create, this stopped at the
    // cluster stage on this fresh lab: action-plan-fresh.test.ts.)
    expect([run.code, run.report?.fatal]).toEqual([0, undefined]);
  });

  it('control: a plan as the admin logs in to the VM (SSH counted); an input plan does not read is named in a notice, not parsed', async () => {
    const before = await counters();
    const run = await action({
      kubeconfig: readFileSync(state.files.kubeconfig!, 'utf8'),
      context: 'lab',
      mode: 'plan',
      'verify-requests': 'many',
      'token-lifetime': '1',
    });
    const after = await counters();
    expect(after.sshConnections).toBeGreaterThan(before.sshConnections);
    expect(run.log).toContain(
      "::notice::input 'verify-requests' is ignored in mode 'plan' (that mode does not use it)",
    );
    expect(run.log).toContain("::notice::input 'token-lifetime' is ignored in mode 'plan' (that mode does not use it)");
    // (The logins to the first VMs are opened once the preflight passed. A plan on this fresh lab, where the
    // group's namespace does not exist yet, is action-plan-fresh.test.ts.)
    expect(run.report?.inputs).toMatchObject({ mode: 'plan', 'verify-requests': 'many' });
  });
});
