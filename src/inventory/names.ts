// Kubernetes naming rules (k8s.io/apimachinery validation) and address checks, each returning a
// message that says what is wrong and what to write instead, or undefined when the value is fine.

import { isIP } from 'node:net';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const HOSTNAME_LABEL = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/;

export function checkDns1123Label(value: string): string | undefined {
  if (value.length > 63) return `must be at most 63 characters (it has ${value.length})`;
  if (!DNS1123_LABEL.test(value)) {
    return (
      `must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a ` +
      `letter or digit (e.g. ${suggestName(value)})`
    );
  }
  return undefined;
}

export function checkDns1123Subdomain(value: string): string | undefined {
  if (value.length > 253) return `must be at most 253 characters (it has ${value.length})`;
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return (
      `must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ` +
      `ending with a letter or digit (e.g. ${suggestName(value)})`
    );
  }
  return undefined;
}

/** A lowercase, Kubernetes-safe spelling of `value`, for "e.g." hints. */
export function suggestName(value: string): string {
  const cleaned = value
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return cleaned === '' ? 'my-name' : cleaned;
}

/** Label or annotation key: optional DNS-1123 subdomain prefix + '/' + qualified name (≤ 63). */
export function checkQualifiedKey(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return `key '${key}' may contain at most one '/' (prefix/name)`;
  const name = parts[parts.length - 1]!;
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix === '' || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) {
      return `key '${key}': the prefix before '/' must be a lowercase DNS subdomain such as example.com`;
    }
  }
  if (name === '') return `key '${key}': the name part must not be empty`;
  if (name.length > 63) return `key '${key}': the name part must be at most 63 characters (it has ${name.length})`;
  if (!QUALIFIED_NAME.test(name)) {
    return (
      `key '${key}': the name part may contain only letters, digits, '-', '_' and '.', and ` +
      `must start and end with a letter or digit`
    );
  }
  return undefined;
}

export function checkLabelValue(value: string): string | undefined {
  if (value.length > 63) return `label value must be at most 63 characters (it has ${value.length})`;
  if (!LABEL_VALUE.test(value)) {
    return (
      `label value '${value}' may contain only letters, digits, '-', '_' and '.', and must ` +
      `start and end with a letter or digit (or be empty)`
    );
  }
  return undefined;
}

export function checkIp(value: string): string | undefined {
  return isIP(value) === 0 ? `'${value}' is not an IPv4 or IPv6 address (write e.g. 10.0.0.5 or fd00::5)` : undefined;
}

/** An SSH address: an IP address or an RFC 1123 host name. */
export function checkHost(value: string): string | undefined {
  if (isIP(value) !== 0) return undefined;
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  if (/^[0-9.]+$/.test(name)) return `'${value}' is not a valid IPv4 address`;
  const ok =
    name.length > 0 &&
    name.length <= 253 &&
    name.split('.').every((label) => label.length <= 63 && HOSTNAME_LABEL.test(label));
  return ok ? undefined : `'${value}' is neither an IP address nor a DNS host name (letters, digits, '-' and '.')`;
}
