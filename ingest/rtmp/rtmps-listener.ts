// RTMPS: RTMP inside TLS on a port of its own, so the stream key does not
// cross the internet in clear text. Each decrypted connection is handed to the
// same RTMP handling (limits, deadline, key check) as the plain port.
//
// The door is kept like the plain port's: every TCP connection is counted
// against the RTMP connection caps (per pod and per client address) at
// accept, before any TLS, and must finish its TLS handshake within
// `handshakeTimeoutMs` of connecting, so sockets that never send a byte of
// TLS cannot hold more than one address's allowance, nor for long. (A
// `tls.Server` counts only its total, and applies per-address caps only to
// connections that have finished the handshake.)
//
// The first byte tells the protocols apart: a TLS ClientHello starts with
// 0x16 (a handshake record), RTMP's C0 is its version, 3. A client that
// speaks plain RTMP here (an rtmp:// URL for this port) is answered in RTMP:
// its handshake goes through and its connect is refused, before it sends its
// key, with a sentence saying to use rtmps://, which ffmpeg prints and OBS
// writes to its log. Anything else is closed, logged and counted.
//
// The certificate and key are files (in Kubernetes a mounted TLS Secret, e.g.
// from cert-manager). They are re-read every few seconds and, when they
// change, used for new connections without a restart; a pair that does not
// load is logged and the previous one stays in use.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from '../../common/log.ts';
import type { IngestMetrics } from '../metrics.ts';
import { RTMP_VERSION } from './handshake.ts';
import type { Refusal } from './refusal.ts';
import type { RtmpServer } from './rtmp-server.ts';
import { listenOn } from '../../common/listen.ts';

/** The first byte of every TLS ClientHello: a record of type handshake. */
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * At `connect`, so the client never sends its key in clear text (encoders send
 * it right after connect succeeds). The code is one that OBS's librtmp acts on
 * (it closes and logs the description as an error); ffmpeg prints any onStatus
 * error's description.
 */
export const PLAIN_RTMP_REFUSAL: Refusal = {
  at: 'connect',
  code: 'NetConnection.Connect.InvalidApp',
  reason: 'rtmps_required',
  description: 'This port takes RTMPS only: change the server URL from rtmp:// to rtmps:// (same host, port and path).',
};

export interface RtmpsOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  reloadMs: number;
  /** From TCP accept to a finished TLS handshake; a connection that takes longer is closed (the RTMP publish deadline starts after). */
  handshakeTimeoutMs: number;
  log: Logger;
  metrics: IngestMetrics;
  /** The plain port's server: its caps count this port's connections at TCP accept, and it speaks RTMP on them. */
  rtmp: Pick<RtmpServer, 'accept' | 'serve'>;
}

interface CertificatePair {
  cert: Buffer;
  key: Buffer;
  context: SecureContext;
}

export class RtmpsListener {
  private server: Server | undefined;
  private current: CertificatePair | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  /** Accepted sockets whose TLS handshake has not finished. */
  private readonly handshaking = new Set<Socket>();

  constructor(private readonly options: RtmpsOptions) {}

  /** Loads the certificate (a bad one fails the start with a clear error) and listens. */
  async listen(): Promise<number> {
    this.current = this.withContext(await this.readFiles());
    const server = createServer((socket) => this.onConnection(socket));
    server.on('error', (error) => this.options.log.error({ err: error.message }, 'RTMPS listener error'));
    this.server = server;
    const port = await listenOn(server, this.options.port, this.options.host);
    this.reloadTimer = setInterval(() => void this.reload(), this.options.reloadMs);
    this.reloadTimer.unref();
    return port;
  }

  /** Stops accepting connections and closes those still in their TLS handshake; decrypted ones are the RTMP server's. */
  stopListening(): void {
    clearInterval(this.reloadTimer);
    this.server?.close();
    for (const socket of this.handshaking) socket.destroy();
  }

  private onConnection(socket: Socket): void {
    const { log, metrics, rtmp } = this.options;
    const accepted = rtmp.accept(socket);
    if (!accepted) return;
    const remote = socket.remoteAddress;
    let tls: TLSSocket | undefined;
    const timer = setTimeout(() => {
      log.info({ remote }, `RTMPS: no TLS handshake within ${this.options.handshakeTimeoutMs / 1000} s of connecting; closing the connection`);
      metrics.rtmpDeadlineCloses.inc({ stage: 'tls_handshake' });
      (tls ?? socket).destroy();
    }, this.options.handshakeTimeoutMs);
    timer.unref();
    this.handshaking.add(socket);
    const handshakeOver = () => {
      clearTimeout(timer);
      this.handshaking.delete(socket);
    };
    const onSocketError = (error: Error) => log.debug({ remote, err: error.message }, 'RTMPS socket error');
    socket.on('close', handshakeOver);
    socket.on('error', onSocketError);
    socket.once('data', (first: Buffer) => {
      // Put the bytes back for whoever reads the connection next (TLS or RTMP).
      socket.pause();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE_RECORD) {
        tls = this.startTls(socket, (secured) => {
          handshakeOver();
          rtmp.serve(secured, accepted);
        });
        return;
      }
      handshakeOver();
      socket.off('error', onSocketError);
      if (first[0] === RTMP_VERSION) {
        log.warn(
          { remote },
          'RTMPS: the client spoke plain RTMP to the RTMPS port (an rtmp:// URL instead of rtmps://); answering in RTMP and refusing its connect with a sentence saying so',
        );
        rtmp.serve(socket, accepted, PLAIN_RTMP_REFUSAL);
        socket.resume();
        return;
      }
      metrics.rtmpProtocolErrors.inc({ reason: 'tls' });
      log.warn({ remote, firstByte: first[0] }, 'RTMPS: the client sent neither TLS nor RTMP; closing the connection');
      socket.on('error', () => undefined);
      socket.destroy();
    });
  }

  /** The server side of a TLS handshake on an accepted socket, with the certificate in use now. */
  private startTls(socket: Socket, onSecure: (tls: TLSSocket) => void): TLSSocket {
    const { log, metrics } = this.options;
    const tls = new TLSSocket(socket, { isServer: true, secureContext: this.current!.context });
    let secure = false;
    tls.once('secure', () => {
      secure = true;
      onSecure(tls);
    });
    tls.on('error', (error: Error & { code?: string }) => {
      if (secure) return; // the RTMP connection reads its own socket's errors
      metrics.rtmpProtocolErrors.inc({ reason: 'tls' });
      log.warn({ remote: socket.remoteAddress, err: error.code ?? error.message }, 'RTMPS: TLS handshake failed; closing the connection');
      tls.destroy();
    });
    return tls;
  }

  private async readFiles(): Promise<{ cert: Buffer; key: Buffer }> {
    const [cert, key] = await Promise.all([readFile(this.options.certFile), readFile(this.options.keyFile)]);
    return { cert, key };
  }

  /** The pair's TLS context; throws unless the pair loads. Records when the certificate expires. */
  private withContext({ cert, key }: { cert: Buffer; key: Buffer }): CertificatePair {
    const context = createSecureContext({ cert, key });
    const notAfter = Date.parse(new X509Certificate(cert).validTo);
    if (Number.isFinite(notAfter)) this.options.metrics.rtmpsCertificateNotAfter.set(notAfter / 1000);
    return { cert, key, context };
  }

  private async reload(): Promise<void> {
    const { log } = this.options;
    let files: { cert: Buffer; key: Buffer };
    try {
      files = await this.readFiles();
    } catch (error) {
      log.error({ err: (error as Error).message }, 'RTMPS: cannot read the certificate or key; keeping the current one');
      return;
    }
    const current = this.current;
    if (current && files.cert.equals(current.cert) && files.key.equals(current.key)) return;
    try {
      this.current = this.withContext(files);
    } catch (error) {
      // Often a half-updated pair (new certificate, old key): the next read may match.
      log.error({ err: (error as Error).message }, 'RTMPS: the new certificate and key do not load; keeping the current ones');
      return;
    }
    log.info({ certFile: this.options.certFile }, 'RTMPS: certificate reloaded');
  }
}
