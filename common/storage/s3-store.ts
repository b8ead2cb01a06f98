// The S3 object store, for AWS and S3-compatible servers (SeaweedFS, MinIO,
// Cloudflare R2, ...). Retries are the uploader's job, so each call makes one
// attempt and gives up quickly on a dead endpoint. PUTs, the hot path, go
// through a small signed client (s3-put-client.ts); the rest through the AWS
// SDK, whose credentials both use.
//
// Both go over a bounded pool of keep-alive connections: a segment PUT every
// second or two per stream would otherwise pay a TCP (and TLS) handshake each
// time, and a backlog draining after an outage could open as many sockets as
// the SDK's default of 50.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { ObjectStore, PutOptions } from './object-store.ts';
import { S3PutClient } from './s3-put-client.ts';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  requestTimeoutMs: number;
  /**
   * Connections kept open to the endpoint at most (the ingest passes its
   * upload concurrency, so no upload waits for a socket). Default 8.
   */
  maxConnections?: number;
}

/** TTEOK_UPLOAD_CONCURRENCY's default: enough for a controller's deletes too. */
const DEFAULT_MAX_CONNECTIONS = 8;

export class S3Store implements ObjectStore {
  private readonly client: S3Client;
  private readonly putClient: S3PutClient;
  readonly description: string;

  constructor(private readonly options: S3StoreOptions) {
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new Error(`maxConnections must be a positive integer, not ${maxConnections}`);
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle,
      maxAttempts: 1,
      // Many S3-compatible servers reject the SDK's newer default checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: maxConnections }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: maxConnections }),
        connectionTimeout: Math.min(options.requestTimeoutMs, 3000),
        requestTimeout: options.requestTimeoutMs,
      }),
    });
    this.putClient = new S3PutClient({
      bucket: options.bucket,
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle,
      requestTimeoutMs: options.requestTimeoutMs,
      maxSockets: maxConnections,
      credentials: () => this.client.config.credentials(),
    });
    this.description = `s3://${options.bucket}${options.endpoint ? ` at ${options.endpoint}` : ` in ${options.region}`}`;
  }

  put(key: string, body: Uint8Array, options: PutOptions): Promise<void> {
    return this.putClient.put(key, body, options);
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: key }));
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return await out.Body!.transformToByteArray();
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
      throw error;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: `${prefix}/`, ContinuationToken: token }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length > 0) {
        await this.client.send(new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: keys, Quiet: true } }));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  destroy(): void {
    this.putClient.destroy();
    this.client.destroy();
  }
}
