// The one error the RTMP protocol layer throws for input it will not accept.
// Its reason is a metric label, so it comes from this fixed list; the message
// is for the log line and may say more.
export type ProtocolErrorReason =
  | 'handshake'
  | 'chunk_stream'
  | 'chunk_size'
  | 'message_too_large'
  | 'buffer_limit'
  | 'message_type'
  | 'amf'
  | 'command'
  | 'too_many_commands'
  | 'preauth_bytes'
  /** A fault of ours while handling the connection: it closes that connection only. */
  | 'internal';

export class RtmpProtocolError extends Error {
  override name = 'RtmpProtocolError';
  constructor(
    readonly reason: ProtocolErrorReason,
    message: string,
  ) {
    super(message);
  }
}
