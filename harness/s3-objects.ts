// Reading back what the S3 test server holds.
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

export interface StoredObject {
  key: string;
  body: Buffer;
  contentType?: string;
  cacheControl?: string;
}

export async function getObject(client: S3Client, bucket: string, key: string): Promise<StoredObject | undefined> {
  try {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = Buffer.from(await out.Body!.transformToByteArray());
    return { key, body, ...(out.ContentType ? { contentType: out.ContentType } : {}), ...(out.CacheControl ? { cacheControl: out.CacheControl } : {}) };
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
    throw error;
  }
}

export async function headObject(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<{ contentType?: string; cacheControl?: string; size: number } | undefined> {
  try {
    const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return {
      size: out.ContentLength ?? 0,
      ...(out.ContentType ? { contentType: out.ContentType } : {}),
      ...(out.CacheControl ? { cacheControl: out.CacheControl } : {}),
    };
  } catch (error) {
    const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) return undefined;
    throw error;
  }
}

export async function listKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}
