export interface MachineRequirement {
  program: string;
  debianPackage: string;
  usedFor: string;
}
export const MACHINE_REQUIREMENTS: ReadonlyArray<MachineRequirement>;
export function findProgram(program: string): string | undefined;
export function missingRequirements(requirements?: ReadonlyArray<MachineRequirement>): MachineRequirement[];
export function installCommand(missing: ReadonlyArray<MachineRequirement>): string;
