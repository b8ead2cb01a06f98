// RTMPS: RTMP inside TLS on a port of its own, so the stream key does not
// cross the internet in clear text. Each decrypted connection is handed to the
// same RTMP handling (caps, limits, deadline, key check) as the plain port.
//
// The certificate and key are files (in Kubernetes a mounted TLS Secret, e.g.
// from cert-manager). They are re-read every few seconds and, when they
// change, swapped in for new connections without a restart; a pair that does
// not load is logged and the previous one stays in use. A client speaking
// plain RTMP to this port fails the TLS handshake: its connection is closed,
// with a log line and tteok_ingest_rtmp_protocol_errors_total{reason="tls"}.
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { createSecureContext, createServer, type Server, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Logger } from '../../common/log.ts';
import type { IngestMetrics } from '../metrics.ts';
import { REFUSAL_SLOTS } from './connection-limits.ts';

export interface RtmpsOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  reloadMs: number;
  /** TLS handshakes that take longer are dropped (the RTMP publish deadline applies after). */
  handshakeTimeoutMs: number;
  /** Sockets at once, handshaking or not: the RTMP connection caps plus their refusal slots. */
  maxConnections: number;
  log: Logger;
  metrics: IngestMetrics;
  onConnection: (socket: Socket) => void;
}

interface CertificatePair {
  cert: Buffer;
  key: Buffer;
}

export class RtmpsListener {
  private server: Server | undefined;
  private current: CertificatePair | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RtmpsOptions) {}

  /** Loads the certificate (a bad one fails the start with a clear error) and listens. */
  async listen(): Promise<number> {
    const pair = await this.readPair();
    this.check(pair);
    this.current = pair;
    const { log, metrics } = this.options;
    const server = createServer({ cert: pair.cert, key: pair.key, handshakeTimeout: this.options.handshakeTimeoutMs });
    server.maxConnections = this.options.maxConnections + REFUSAL_SLOTS;
    server.on('secureConnection', (socket: TLSSocket) => this.options.onConnection(socket));
    server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
      metrics.rtmpProtocolErrors.inc({ reason: 'tls' });
      log.warn({ remote: socket.remoteAddress, err: error.code ?? error.message }, 'RTMPS: TLS handshake failed (plain RTMP on the RTMPS port?); closing the connection');
      socket.destroy();
    });
    server.on('error', (error) => log.error({ err: error.message }, 'RTMPS listener error'));
    this.server = server;
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : this.options.port);
      });
    });
    this.reloadTimer = setInterval(() => void this.reload(), this.options.reloadMs);
    this.reloadTimer.unref();
    return port;
  }

  stopListening(): void {
    clearInterval(this.reloadTimer);
    this.server?.close();
  }

  private async readPair(): Promise<CertificatePair> {
    const [cert, key] = await Promise.all([readFile(this.options.certFile), readFile(this.options.keyFile)]);
    return { cert, key };
  }

  /** Throws unless the pair makes a TLS context; records when the certificate expires. */
  private check(pair: CertificatePair): void {
    createSecureContext({ cert: pair.cert, key: pair.key });
    const notAfter = Date.parse(new X509Certificate(pair.cert).validTo);
    if (Number.isFinite(notAfter)) this.options.metrics.rtmpsCertificateNotAfter.set(notAfter / 1000);
  }

  private async reload(): Promise<void> {
    const { log } = this.options;
    let pair: CertificatePair;
    try {
      pair = await this.readPair();
    } catch (error) {
      log.error({ err: (error as Error).message }, 'RTMPS: cannot read the certificate or key; keeping the current one');
      return;
    }
    const current = this.current;
    if (current && pair.cert.equals(current.cert) && pair.key.equals(current.key)) return;
    try {
      this.check(pair);
      this.server?.setSecureContext({ cert: pair.cert, key: pair.key });
    } catch (error) {
      // Often a half-updated pair (new certificate, old key): the next read may match.
      log.error({ err: (error as Error).message }, 'RTMPS: the new certificate and key do not load; keeping the current ones');
      return;
    }
    this.current = pair;
    log.info({ certFile: this.options.certFile }, 'RTMPS: certificate reloaded');
  }
}
