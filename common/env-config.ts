// Reading configuration from environment variables, with defaults and clear
// errors. Every part of tteok is configured this way so that the Helm chart,
// `make run` and the tests all set the same names. A variable that is unset,
// empty or only blanks takes its default: a templating slip must not turn a
// port into 0.

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type Env = Record<string, string | undefined>;

/** The variable's trimmed value, or undefined when unset or blank. */
function present(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

export function envString(env: Env, name: string, fallback: string): string {
  return present(env, name) ?? fallback;
}

export function envOptional(env: Env, name: string): string | undefined {
  return present(env, name);
}

export function envInt(env: Env, name: string, fallback: number, min = -Infinity, max = Infinity): number {
  const text = present(env, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${text}"`);
  }
  return value;
}

export function envNumber(env: Env, name: string, fallback: number, min = -Infinity, max = Infinity): number {
  const text = present(env, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a number between ${min} and ${max}, got "${text}"`);
  }
  return value;
}

export function envBool(env: Env, name: string, fallback: boolean): boolean {
  const text = present(env, name);
  if (text === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off)$/i.test(text)) return false;
  throw new ConfigError(`${name} must be true or false, got "${text}"`);
}

export function envList(env: Env, name: string, fallback: string[]): string[] {
  const text = present(env, name);
  if (text === undefined) return fallback;
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

// ---------------------------------------------------------------------------
// Declarations. Each variable a role reads is declared once, as a row: its
// name, default, accepted range, how it is parsed and one line for people.
// The role's loader reads its values through the rows (readEnv) and
// `tteok <role> --help` prints the same rows, so the two cannot drift.

/** One environment variable: how it is read, and what --help says of it. */
export interface EnvVar<T> {
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /** The default as `--help` prints it. */
  readonly defaultText: string;
  /** The accepted values as `--help` prints them; '' for any text. */
  readonly rangeText: string;
  read(env: Env): T;
}

/** A default, or how to work it out from the other variables (e.g. `$AWS_REGION`). */
export type Fallback<T> = T | ((env: Env) => T);

/** What `--help` prints instead of the default's value, when that is computed or reads better in words. */
export interface Shown {
  defaultText?: string;
  rangeText?: string;
}

function fallbackValue<T>(fallback: Fallback<T>, env: Env): T {
  return typeof fallback === 'function' ? (fallback as (env: Env) => T)(env) : fallback;
}

function rangeText(min: number, max: number): string {
  if (min === -Infinity && max === Infinity) return '';
  if (max === Infinity) return `≥ ${min}`;
  if (min === -Infinity) return `≤ ${max}`;
  return `${min}–${max}`;
}

function shownDefault(value: unknown): string {
  if (value === '') return '(empty)';
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

function declare<T>(name: string, description: string, defaultText: string, range: string, read: (env: Env) => T, shown: Shown = {}): EnvVar<T> {
  return { name, description, defaultText: shown.defaultText ?? defaultText, rangeText: shown.rangeText ?? range, read };
}

/** Row constructors for the configuration tables (ingest/config.ts, gateway/config.ts, controller/config.ts). */
export const envVar = {
  string: (name: string, fallback: Fallback<string>, description: string, shown?: Shown): EnvVar<string> =>
    declare(
      name,
      description,
      typeof fallback === 'function' ? '' : shownDefault(fallback),
      '',
      (env) => envString(env, name, fallbackValue(fallback, env)),
      shown,
    ),
  /** Text with no default: undefined when unset or blank. */
  optional: (name: string, description: string, shown?: Shown): EnvVar<string | undefined> =>
    declare(name, description, '(unset)', '', (env) => envOptional(env, name), shown),
  /** One of a few words. */
  choice: <const C extends string>(name: string, fallback: C, choices: readonly C[], description: string, shown?: Shown): EnvVar<C> =>
    declare(
      name,
      description,
      fallback,
      choices.join(' | '),
      (env) => {
        const value = envString(env, name, fallback);
        if (!(choices as readonly string[]).includes(value)) {
          throw new ConfigError(`${name} must be ${choices.map((c) => `"${c}"`).join(' or ')}, got "${value}"`);
        }
        return value as C;
      },
      shown,
    ),
  int: (name: string, fallback: Fallback<number>, min: number, max: number, description: string, shown?: Shown): EnvVar<number> =>
    declare(
      name,
      description,
      typeof fallback === 'function' ? '' : shownDefault(fallback),
      rangeText(min, max),
      (env) => envInt(env, name, fallbackValue(fallback, env), min, max),
      shown,
    ),
  /** An integer with no default: undefined when unset or blank. */
  optionalInt: (name: string, min: number, max: number, description: string, shown?: Shown): EnvVar<number | undefined> =>
    declare(name, description, '(unset)', rangeText(min, max), (env) => (present(env, name) === undefined ? undefined : envInt(env, name, 0, min, max)), shown),
  number: (name: string, fallback: Fallback<number>, min: number, max: number, description: string, shown?: Shown): EnvVar<number> =>
    declare(
      name,
      description,
      typeof fallback === 'function' ? '' : shownDefault(fallback),
      rangeText(min, max),
      (env) => envNumber(env, name, fallbackValue(fallback, env), min, max),
      shown,
    ),
  optionalNumber: (name: string, min: number, max: number, description: string, shown?: Shown): EnvVar<number | undefined> =>
    declare(
      name,
      description,
      '(unset)',
      rangeText(min, max),
      (env) => (present(env, name) === undefined ? undefined : envNumber(env, name, 0, min, max)),
      shown,
    ),
  bool: (name: string, fallback: boolean, description: string, shown?: Shown): EnvVar<boolean> =>
    declare(name, description, String(fallback), 'true | false', (env) => envBool(env, name, fallback), shown),
  /** A comma-separated list. */
  list: (name: string, fallback: string[], description: string, shown?: Shown): EnvVar<string[]> =>
    declare(name, description, fallback.length === 0 ? '(empty)' : shownDefault(fallback), 'comma-separated', (env) => envList(env, name, fallback), shown),
  /** Anything else: the row brings its own parser (which throws ConfigError naming the variable). */
  custom: <T>(name: string, read: (env: Env) => T, description: string, shown: Required<Shown>): EnvVar<T> => declare(name, description, '', '', read, shown),
};

/** A table of rows: the loader's field name → the row. */
export type EnvTable = Record<string, EnvVar<unknown>>;
export type EnvValues<D extends EnvTable> = { [K in keyof D]: D[K] extends EnvVar<infer T> ? T : never };

/** Every row's value, read in the table's order (the first bad variable is the one reported). */
export function readEnv<D extends EnvTable>(table: D, env: Env): EnvValues<D> {
  const values: Record<string, unknown> = {};
  for (const [key, row] of Object.entries(table)) values[key] = row.read(env);
  return values as EnvValues<D>;
}
