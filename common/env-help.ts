// What the command line says about configuration: the variables a role reads,
// printed from the same rows its loader reads through (env-config.ts), and a
// warning for TTEOK_* names nothing reads (a misspelt variable is otherwise
// silently ignored and its default used).
import { closest, distance } from 'fastest-levenshtein';
import type { Env, EnvTable, EnvVar } from './env-config.ts';

export interface EnvSection {
  /** A heading, e.g. "With TTEOK_KEY_SOURCE=kubernetes". */
  title: string;
  tables: EnvTable[];
}

/** The distinct rows of some tables, first declaration of a name wins (a role's own row before a shared one). */
export function envRows(tables: EnvTable[]): EnvVar<unknown>[] {
  const rows = new Map<string, EnvVar<unknown>>();
  for (const table of tables) for (const row of Object.values(table)) if (!rows.has(row.name)) rows.set(row.name, row);
  return [...rows.values()];
}

/** The sections as `--help` prints them: each variable on one line with its default and range, its description below. */
export function formatEnvHelp(sections: EnvSection[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const section of sections) {
    const rows = envRows(section.tables).filter((row) => !seen.has(row.name));
    if (rows.length === 0) continue;
    out.push(`${section.title}:`);
    for (const row of rows) {
      seen.add(row.name);
      const range = row.rangeText === '' ? '' : `  [${row.rangeText}]`;
      out.push(`  ${row.name}  default: ${row.defaultText === '' ? '(empty)' : row.defaultText}${range}`, `      ${row.description}`);
    }
    out.push('');
  }
  return out.join('\n');
}

export interface UnknownName {
  name: string;
  /** The known name closest to it, when close enough to be a likely slip. */
  suggestion: string | undefined;
}

/** TTEOK_* names in the environment that are not in `known`, each with the closest known name. */
export function unknownNames(env: Env, known: ReadonlySet<string>): UnknownName[] {
  const candidates = [...known];
  return Object.keys(env)
    .filter((name) => name.startsWith('TTEOK_') && !known.has(name))
    .sort()
    .map((name) => {
      const nearest = candidates.length > 0 ? closest(name, candidates) : undefined;
      // A third of the name's letters after the prefix: a typo or two, not a different word.
      const close = nearest !== undefined && distance(name, nearest) <= Math.max(2, Math.floor((name.length - 'TTEOK_'.length) / 3));
      return { name, suggestion: close ? nearest : undefined };
    });
}

export function unknownNameMessage(u: UnknownName): string {
  return `unknown ${u.name}${u.suggestion ? `; did you mean ${u.suggestion}?` : ' (no tteok role reads it)'}`;
}
