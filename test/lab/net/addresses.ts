// Names and addresses of a lab (see test/lab/README.md "Addresses").
export const MAX_LABS = 64;
export const MAX_VMS = 200;
export const LAB_RUN_DIR = '/run/ivo-lab';

export function gatewayIP(k: number): string {
  return `10.233.${k}.1`;
}
export function subnet(k: number): string {
  return `10.233.${k}.0/24`;
}
export function bridgeName(k: number): string {
  return `ivo${k}br`;
}
export function vmNetns(k: number, i: number): string {
  return `ivo${k}vm${i}`;
}
export function vmHostVeth(k: number, i: number): string {
  return `ivo${k}v${i}`;
}
export function vmIP(k: number, i: number): string {
  return `10.233.${k}.${10 + i}`;
}
