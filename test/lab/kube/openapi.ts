// OpenAPI v3 documents, as far as kubectl needs them: the root index (/openapi/v3) and one document
// per group-version whose PATCH operations carry x-kubernetes-group-version-kind and the
// `fieldValidation` parameter (kubectl then leaves validation to the server). No component schemas:
// kubectl falls back to its compiled-in types for strategic-merge patch metadata.
import { createHash } from 'node:crypto';
import type { ResourceType } from './resources.js';

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function servedGroupVersions(types: ResourceType[]): Array<{ group: string; version: string }> {
  const seen = new Map<string, { group: string; version: string }>();
  for (const t of types) for (const v of t.versions) seen.set(gvPath(t.group, v), { group: t.group, version: v });
  return [...seen.values()];
}

const QUERY = (name: string, type = 'string'): object => ({ name, in: 'query', schema: { type, uniqueItems: true } });

export function openApiGroupVersionDoc(types: ResourceType[], group: string, version: string): object | undefined {
  const inGv = types.filter((t) => t.group === group && t.versions.includes(version));
  if (!inGv.length) return undefined;
  const paths: Record<string, object> = {};
  for (const t of inGv) {
    if (!t.verbs.includes('patch')) {
      const collection = `/${gvPath(group, version)}/${t.resource}`;
      paths[collection] = {
        post: {
          operationId: `create${t.kind}`,
          parameters: [QUERY('dryRun'), QUERY('fieldManager'), QUERY('fieldValidation')],
          'x-kubernetes-action': 'post',
          'x-kubernetes-group-version-kind': { group, version, kind: t.kind },
          responses: { '201': { description: 'Created' } },
        },
      };
      continue;
    }
    const base = t.namespaced
      ? `/${gvPath(group, version)}/namespaces/{namespace}/${t.resource}`
      : `/${gvPath(group, version)}/${t.resource}`;
    const gvk = { group, version, kind: t.kind };
    paths[base] = {
      get: {
        operationId: `list${t.kind}`,
        'x-kubernetes-action': 'list',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
      post: {
        operationId: `create${t.kind}`,
        parameters: [QUERY('dryRun'), QUERY('fieldManager'), QUERY('fieldValidation')],
        'x-kubernetes-action': 'post',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '201': { description: 'Created' } },
      },
    };
    paths[`${base}/{name}`] = {
      get: {
        operationId: `read${t.kind}`,
        'x-kubernetes-action': 'get',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
      put: {
        operationId: `replace${t.kind}`,
        parameters: [QUERY('dryRun'), QUERY('fieldManager'), QUERY('fieldValidation')],
        'x-kubernetes-action': 'put',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
      patch: {
        operationId: `patch${t.kind}`,
        parameters: [QUERY('dryRun'), QUERY('fieldManager'), QUERY('fieldValidation'), QUERY('force', 'boolean')],
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
      delete: {
        operationId: `delete${t.kind}`,
        'x-kubernetes-action': 'delete',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}

export function openApiRoot(types: ResourceType[]): object {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const { group, version } of servedGroupVersions(types)) {
    const doc = JSON.stringify(openApiGroupVersionDoc(types, group, version));
    const hash = createHash('sha512').update(doc).digest('hex').slice(0, 128).toUpperCase();
    paths[gvPath(group, version)] = { serverRelativeURL: `/openapi/v3/${gvPath(group, version)}?hash=${hash}` };
  }
  return { paths };
}
