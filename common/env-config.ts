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
  return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}
