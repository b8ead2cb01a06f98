// Types for the parts of node-media-server v4 the ingest builds on. The
// package ships JavaScript with JSDoc only.
declare module 'node-media-server/src/session/rtmp_session.js' {
  import type { Socket } from 'node:net';

  interface AVPacket {
    codec_id: number;
    codec_type: number;
    flags: number;
    pts: number;
    dts: number;
    size: number;
    data: Buffer;
  }

  interface RtmpProtocol {
    streamApp: string;
    streamName: string;
    streamId: number;
    parserPacket: { header: { stream_id: number } };
    onPublish(invokeMessage: { streamName?: unknown; [k: string]: unknown }): void;
    onPlay(invokeMessage: { streamName?: unknown; [k: string]: unknown }): void;
    onDeleteStream(invokeMessage: unknown): void;
    sendStatusMessage(streamId: number, level: string, code: string, description: string): void;
  }

  class RtmpSession {
    constructor(socket: Socket);
    id: string;
    ip: string;
    socket: Socket;
    rtmp: RtmpProtocol;
    isPublisher: boolean;
    inBytes: number;
    streamApp: string;
    streamName: string;
    streamPath: string;
    run: () => void;
    onConnect: (req: { app: string; name: string; host: string; query: unknown }) => void;
    onPlay: () => void;
    onPush: () => void;
    onPacket: (packet: AVPacket) => void;
    onData: (data: Buffer) => void;
    onClose: () => void;
    onError: (error: Error) => void;
    close: () => void;
  }
  export = RtmpSession;
}

declare module 'node-media-server/src/core/logger.js' {
  const logger: { level: string; log: (message: string, level?: string) => void };
  export = logger;
}
