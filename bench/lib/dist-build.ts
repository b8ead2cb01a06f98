// The build the benchmarks measure: the compiled `dist/`, as the container
// runs it (the Dockerfile's `npm run build`, then plain `node dist/bin/tteok.js`),
// not the TypeScript sources through tsx, whose loader compiles every module
// at start and adds its own frames to a CPU profile.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TteokBuild } from '../../harness/ingest-process.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** Every tteok process a benchmark starts runs from this build. */
export const BENCH_BUILD: TteokBuild = 'dist';

/**
 * Compiles the project into dist/ once, with the same command as `npm run
 * build` and `make build` (tsc -p tsconfig.build.json), run by the Node that
 * runs the benchmark.
 */
export function buildDist(): void {
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  if (!existsSync(join(ROOT, 'dist', 'bin', 'tteok.js'))) throw new Error('the build wrote no dist/bin/tteok.js (see tsconfig.build.json)');
}
