// Names and addresses of a lab (see test/lab/README.md "Addresses").
export const MAX_LABS = 64;
export const MAX_VMS = 200;
export const LAB_RUN_DIR = '/run/ivo-lab';

export function gatewayIP(k: number): string {
  return `10.233.${k}.1`;
}
/** A second address on the bridge, for a second istiod revision (below every VM's .11 and up). */
export function extraIstiodIP(k: number): string {
  return `10.233.${k}.2`;
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

/**
 * Pods the lab's Pod runner starts ): slot s (0 ≤ s < MAX_PODS) is netns `ivo<k>p<s>`, host
 * veth `ivo<k>p<s>h`, address `10.233.<k>.<211+s>` — above every VM (.11–.210), below the mesh VIPs (.250+).
 */
export const MAX_PODS = 39;
export function podNetns(k: number, slot: number): string {
  return `ivo${k}p${slot}`;
}
export function podHostVeth(k: number, slot: number): string {
  return `ivo${k}p${slot}h`;
}
export function podIP(k: number, slot: number): string {
  return `10.233.${k}.${211 + slot}`;
}
