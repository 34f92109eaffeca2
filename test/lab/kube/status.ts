// metav1.Status objects exactly as kube-apiserver writes them for errors.
export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

export class KubeApiError extends Error {
  constructor(readonly status: StatusObject) {
    super(status.message);
    this.name = 'KubeApiError';
  }
  get code(): number {
    return this.status.code;
  }
}

/** How the API server names a resource in messages: `configmaps`, `workloadgroups.networking.istio.io`. */
export function qualifiedResource(group: string, resource: string): string {
  return group ? `${resource}.${group}` : resource;
}

function failure(code: number, reason: string, message: string, details?: StatusObject['details']): KubeApiError {
  const status: StatusObject = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
  if (details) status.details = details;
  return new KubeApiError(status);
}

function detailsFor(group: string, resource: string, name?: string): NonNullable<StatusObject['details']> {
  const d: NonNullable<StatusObject['details']> = {};
  if (name) d.name = name;
  if (group) d.group = group;
  d.kind = resource;
  return d;
}

export const errors = {
  notFound(group: string, resource: string, name: string): KubeApiError {
    return failure(
      404,
      'NotFound',
      `${qualifiedResource(group, resource)} "${name}" not found`,
      detailsFor(group, resource, name),
    );
  },
  alreadyExists(group: string, resource: string, name: string): KubeApiError {
    return failure(
      409,
      'AlreadyExists',
      `${qualifiedResource(group, resource)} "${name}" already exists`,
      detailsFor(group, resource, name),
    );
  },
  conflict(group: string, resource: string, name: string, why: string): KubeApiError {
    return failure(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualifiedResource(group, resource)} "${name}": ${why}`,
      detailsFor(group, resource, name),
    );
  },
  staleResourceVersion(group: string, resource: string, name: string): KubeApiError {
    return errors.conflict(
      group,
      resource,
      name,
      'the object has been modified; please apply your changes to the latest version and try again',
    );
  },
  applyConflict(
    group: string,
    resource: string,
    name: string,
    conflicts: Array<{ manager: string; field: string; version: string }>,
  ): KubeApiError {
    const lines = conflicts.map((c) => `conflict with "${c.manager}" using ${c.version}: ${c.field}`);
    const message =
      conflicts.length === 1
        ? `Apply failed with 1 conflict: ${lines[0]}`
        : `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
    return failure(409, 'Conflict', message, {
      ...detailsFor(group, resource, name),
      causes: conflicts.map((c) => ({
        reason: 'FieldManagerConflict',
        message: `conflict with "${c.manager}" using ${c.version}`,
        field: c.field,
      })),
    });
  },
  invalid(
    group: string,
    kind: string,
    name: string,
    causes: Array<{ field: string; message: string; reason?: string }>,
  ): KubeApiError {
    const list = causes.map((c) => `${c.field}: ${c.message}`);
    const message = `${kind}${group ? '.' + group : ''} "${name}" is invalid: ${list.length === 1 ? list[0] : '[' + list.join(', ') + ']'}`;
    return failure(422, 'Invalid', message, {
      name,
      ...(group ? { group } : {}),
      kind,
      causes: causes.map((c) => ({ reason: c.reason ?? 'FieldValueInvalid', message: c.message, field: c.field })),
    });
  },
  badRequest(message: string): KubeApiError {
    return failure(400, 'BadRequest', message);
  },
  unauthorized(): KubeApiError {
    return failure(401, 'Unauthorized', 'Unauthorized');
  },
  /**
   * RBAC's message: `configmaps "x" is forbidden: User "u" cannot get resource "configmaps" in API group "" in
   * the namespace "ns"`.
   */
  forbidden(
    user: string,
    attrs: { verb: string; group: string; resource: string; subresource?: string; namespace?: string; name?: string },
  ): KubeApiError {
    const res = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
    const subject = attrs.name
      ? `${qualifiedResource(attrs.group, attrs.resource)} "${attrs.name}"`
      : qualifiedResource(attrs.group, attrs.resource);
    const scope = attrs.namespace ? `in the namespace "${attrs.namespace}"` : 'at the cluster scope';
    const message = `${subject} is forbidden: User "${user}" cannot ${attrs.verb} resource "${res}" in API group "${attrs.group}" ${scope}`;
    return failure(403, 'Forbidden', message, detailsFor(attrs.group, attrs.resource, attrs.name));
  },
  forbiddenPath(user: string, verb: string, path: string): KubeApiError {
    return failure(403, 'Forbidden', `forbidden: User "${user}" cannot ${verb} path "${path}"`, {});
  },
  methodNotSupported(group: string, resource: string, verb: string): KubeApiError {
    return failure(
      405,
      'MethodNotAllowed',
      `${verb} is not supported on resources of kind "${qualifiedResource(group, resource)}"`,
      detailsFor(group, resource),
    );
  },
  notAcceptable(message: string): KubeApiError {
    return failure(406, 'NotAcceptable', message);
  },
  unsupportedMediaType(contentType: string): KubeApiError {
    return failure(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${contentType})`,
    );
  },
  gone(message: string): KubeApiError {
    return failure(410, 'Expired', message);
  },
  internal(message: string): KubeApiError {
    return failure(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
  },
  pathNotFound(): KubeApiError {
    return failure(404, 'NotFound', 'the server could not find the requested resource', {});
  },
};
