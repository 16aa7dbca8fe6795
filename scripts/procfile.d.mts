export interface ProcfileEntry {
  name: string;
  command: string;
}
export function readProcfile(text: string): ProcfileEntry[];
export function defaultEntries(entries: ProcfileEntry[], env: Record<string, string | undefined>): ProcfileEntry[];
