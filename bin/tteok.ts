#!/usr/bin/env node
// tteok's one entry point: `tteok ingest`, `tteok gateway`, `tteok controller`,
// `tteok transcoder`, `tteok local`. One image, one binary; the role is chosen by the command.
//
// Exit codes: 0 stopped cleanly (or --help, --version), 1 a runtime failure
// (failed to start, or the shutdown failed), 2 a usage or configuration
// error (nothing was started), 130 a second SIGINT/SIGTERM cut the shutdown
// short.
import { parseArgs } from 'node:util';
import { ConfigError } from '../common/env-config.ts';
import { formatEnvHelp, unknownNameMessage, unknownNames } from '../common/env-help.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { packageVersion } from '../common/package-version.ts';
import { PROCESS_ENV } from '../common/shared-env.ts';
import { tuneHeapGrowth } from './heap-growth.ts';
import { isRoleName, knownNames, ROLES, type RoleName } from './roles.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

const USAGE = 'usage: tteok [--env-file <path>] <ingest|gateway|controller|transcoder|local> | tteok <role> --help | tteok --help | tteok --version';

const EXIT_CODES = [
  'Exit codes:',
  '  0    stopped cleanly (SIGTERM or Ctrl-C, then a finished shutdown), or --help, --version',
  '  1    runtime failure: could not start (a port in use, S3 unreachable, …) or the shutdown failed',
  '  2    usage or configuration error: an unknown command or option, a bad TTEOK_* value, a missing env file; nothing was started',
  '  130  a second Ctrl-C (or SIGTERM) during the shutdown: exited at once without waiting for it',
].join('\n');

function generalHelp(): string {
  const width = Math.max(...Object.keys(ROLES).map((r) => r.length));
  return [
    `tteok ${packageVersion()}: self-hosted live streaming on Kubernetes.`,
    '',
    USAGE,
    '',
    'Roles:',
    ...Object.entries(ROLES).map(([name, role]) => `  ${name.padEnd(width)}  ${role.summary}`),
    '',
    'Options:',
    '  --env-file <path>  load NAME=value lines from this file first (also TTEOK_ENV_FILE); variables already set win',
    '  -h, --help         this help; `tteok <role> --help` lists every variable the role reads, with default and range',
    '  -v, --version      the version',
    '',
    'Every part is configured with TTEOK_* environment variables; a TTEOK_* name no role reads is warned about at start.',
    '',
    EXIT_CODES,
    '',
  ].join('\n');
}

function roleHelp(name: RoleName): string {
  const role = ROLES[name];
  return [
    `tteok ${name}: ${role.summary}.`,
    '',
    `usage: tteok [--env-file <path>] ${name}`,
    '',
    'Environment variables (an unset or blank one takes its default):',
    '',
    formatEnvHelp(role.sections),
    EXIT_CODES,
    '',
  ].join('\n');
}

type Command = { kind: 'help'; role?: RoleName } | { kind: 'version' } | { kind: 'run'; role: RoleName; envFile: string | undefined };

function parseCommand(argv: string[]): Command {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      'env-file': { type: 'string' },
    },
  });
  if (positionals.length > 1) throw new UsageError(`one role at a time, got: ${positionals.join(' ')}`);
  const [name] = positionals;
  if (name !== undefined && !isRoleName(name)) throw new UsageError(`unknown role "${name}"`);
  if (values.version) return { kind: 'version' };
  if (values.help) return name === undefined ? { kind: 'help' } : { kind: 'help', role: name };
  if (name === undefined) throw new UsageError('no role given');
  return { kind: 'run', role: name, envFile: values['env-file'] };
}

class UsageError extends Error {}

function usageError(message: string): never {
  process.stderr.write(`tteok: ${message}\n${USAGE}\n`);
  process.exit(EXIT_USAGE);
}

/** --env-file, else TTEOK_ENV_FILE: loaded with Node's own parser; variables already in the environment win. */
function loadEnvFile(fromOption: string | undefined): string | undefined {
  const path = fromOption ?? PROCESS_ENV.envFile.read(process.env);
  if (path === undefined) return undefined;
  try {
    process.loadEnvFile(path);
  } catch (error) {
    throw new ConfigError(`the env file ${path} could not be loaded: ${(error as Error).message}`);
  }
  return path;
}

/** A started role: how to stop it, and what its stop may leave behind. */
interface Started {
  shutdown(): Promise<void>;
  /** Said when a second signal cuts the shutdown short. */
  leftBehind?: string;
  /** Printed for the person at the terminal once signals are handled. */
  banner?: string;
}

async function start(role: RoleName, log: Logger): Promise<Started> {
  switch (role) {
    case 'ingest': {
      const { loadIngestConfig } = await import('../ingest/config.ts');
      const { startIngest } = await import('../ingest/ingest.ts');
      const config = loadIngestConfig();
      // TTEOK_KEY_SOURCE=kubernetes: keys checked against the SHA-256 the controller publishes on each LiveStream, fleet-wide claims on Leases.
      const kube = config.keySource === 'kubernetes' ? await (await import('../ingest/keys/kube-key-source.ts')).kubernetesIngestDeps(process.env, log) : {};
      const ingest = await startIngest(config, { log, ...kube });
      return { shutdown: () => ingest.shutdown(), leftBehind: uploadsLeftMessage(config.mediaDir) };
    }
    case 'gateway': {
      const { gatewayOptionsFrom, loadGatewayConfig } = await import('../gateway/config.ts');
      const { startGateway } = await import('../gateway/gateway.ts');
      const { createStreamView } = await import('../gateway/views/create-view.ts');
      const config = loadGatewayConfig();
      const view = await createStreamView(config, log);
      // The LL origin's holders: the claim Leases' pods (the one-machine mode has its own, bin/local-mode.ts).
      const ll = config.lowLatency;
      const holders =
        ll.enabled && config.view === 'kubernetes' ? (await import('../gateway/low-latency/lease-holders.ts')).createLeaseHolders(process.env, log) : undefined;
      const lowLatency = holders ? { holders, upstreamTimeoutMs: ll.upstreamTimeoutMs, originSecret: ll.originSecret } : undefined;
      const gateway = await startGateway({ ...gatewayOptionsFrom(config), view, lowLatency, log });
      return {
        async shutdown() {
          await gateway.close();
          await holders?.close();
          await view.close();
        },
      };
    }
    case 'controller': {
      const { loadControllerConfig } = await import('../controller/config.ts');
      const { startController } = await import('../controller/controller.ts');
      const controller = await startController(loadControllerConfig(), { log });
      return { shutdown: () => controller.shutdown() };
    }
    case 'transcoder': {
      const { loadTranscoderConfig } = await import('../transcoder/config.ts');
      const { startTranscoder } = await import('../transcoder/transcoder.ts');
      const transcoder = await startTranscoder(loadTranscoderConfig(), { log });
      return { shutdown: () => transcoder.close() };
    }
    case 'local': {
      const { startLocalMode } = await import('./local-mode.ts');
      const local = await startLocalMode(log);
      return { shutdown: () => local.shutdown(), leftBehind: uploadsLeftMessage(local.mediaDir), banner: local.banner };
    }
  }
}

function uploadsLeftMessage(mediaDir: string): string {
  return `uploads still waiting stay on the media volume (${mediaDir}); the next start uploads them first`;
}

/**
 * The first SIGTERM or SIGINT shuts down in order (the ingest waits for its
 * uploads); a second one exits at once, for the person at the terminal who
 * pressed Ctrl-C again because they will not wait. Installed before the role
 * starts: a signal that arrives while it starts (or just after it said it is
 * ready) shuts it down once started, instead of Node's default, a kill.
 */
function handleTermination(log: Logger): (started: Started) => void {
  let stopping: NodeJS.Signals | undefined;
  let role: Started | undefined;
  const shutdown = (started: Started, signal: NodeJS.Signals) => {
    log.info(`${signal}: shutting down${started.leftBehind ? ' (waiting for uploads; send it again to exit at once)' : ''}`);
    started.shutdown().then(
      () => process.exit(EXIT_OK),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(EXIT_FAILURE);
      },
    );
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) {
        const left = role?.leftBehind;
        log.warn(`${signal} again: exiting now without waiting for the shutdown${left ? `; ${left}` : ''}`);
        process.exit(EXIT_INTERRUPTED);
      }
      stopping = signal;
      if (role) shutdown(role, signal);
      else log.info(`${signal}: shutting down once started`);
    });
  }
  return (started) => {
    role = started;
    if (stopping) shutdown(started, stopping);
  };
}

async function main(): Promise<void> {
  let command: Command;
  try {
    command = parseCommand(process.argv.slice(2));
  } catch (error) {
    usageError((error as Error).message);
  }
  if (command.kind === 'version') {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  if (command.kind === 'help') {
    process.stdout.write(command.role ? roleHelp(command.role) : generalHelp());
    return;
  }
  let log: Logger | undefined;
  try {
    const envFile = loadEnvFile(command.envFile);
    // After the env file: it may set the log level.
    PROCESS_ENV.logLevel.read(process.env);
    log = createLogger(command.role);
    if (envFile) log.info({ envFile }, 'environment loaded from file');
    for (const unknown of unknownNames(process.env, knownNames())) log.warn(unknownNameMessage(unknown));
    const heapFlag = tuneHeapGrowth(command.role, process.execArgv);
    if (heapFlag) log.debug({ flag: heapFlag }, 'V8 heap growth set');
    const started = handleTermination(log);
    const role = await start(command.role, log);
    started(role);
    if (role.banner) process.stdout.write(role.banner);
  } catch (error) {
    log ??= createLogger(command.role, 'info');
    if (error instanceof ConfigError) {
      log.fatal(`configuration error: ${error.message}`);
      process.exit(EXIT_USAGE);
    }
    log.fatal({ err: error }, 'failed to start');
    process.exit(EXIT_FAILURE);
  }
}

await main();
