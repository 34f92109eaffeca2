// A fault switch of the lab: `npm run lab -- fault NAME [--vm VM] --dir DIR` applies it inside the lab
// daemon, `heal NAME …` undoes it. Each lab part contributes its own definitions.

export interface FaultTarget {
  /** The VM the fault is aimed at, for VM-scoped faults. */
  vm?: string;
}

export interface FaultDefinition {
  name: string;
  /** `vm`: needs --vm (or applies to every VM when omitted); `lab`: the whole lab. */
  scope: 'vm' | 'lab';
  description: string;
  apply(target: FaultTarget): Promise<void>;
  heal(target: FaultTarget): Promise<void>;
}
