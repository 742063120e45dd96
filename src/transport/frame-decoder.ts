import { decodePayload, FRAME_PREFIX_BYTES, FrameError } from './frame-codec.js';

export type DecodedItem =
  | { kind: 'message'; message: unknown }
  /** A well-framed payload whose content is garbage: the stream stays in step. */
  | { kind: 'bad-frame'; error: FrameError }
  /** A declared length over the limit: its bytes are skipped as they arrive, never buffered. */
  | { kind: 'oversized'; declaredBytes: number; error: FrameError };

/**
 * Splits a byte stream into frames. Accepts any chunking (one byte at a time works). A frame whose
 * declared length exceeds `maxMessageBytes` is reported at once and its bytes are discarded as they
 * arrive, so the connection stays usable without ever holding the oversized message.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private skipping = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Splits a whole chunk at once: every item it completes. */
  push(chunk: Uint8Array): DecodedItem[] {
    this.feed(chunk);
    const items: DecodedItem[] = [];
    for (let item = this.next(); item !== undefined; item = this.next()) items.push(item);
    return items;
  }

  /**
   * Takes bytes without decoding them; `next()` then yields the items one at a time, so a reader under
   * backpressure holds raw bytes (at most a chunk) rather than thousands of decoded items.
   */
  feed(chunk: Uint8Array): void {
    let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.skipping > 0) {
      const dropped = Math.min(this.skipping, data.byteLength);
      this.skipping -= dropped;
      data = data.subarray(dropped);
    }
    if (data.byteLength === 0) return;
    this.chunks.push(data);
    this.buffered += data.byteLength;
  }

  /** The next complete item, or undefined until more bytes are fed. */
  next(): DecodedItem | undefined {
    if (this.buffered < FRAME_PREFIX_BYTES) return undefined;
    const declared = this.peekLength();
    if (declared > this.maxMessageBytes) {
      this.consume(FRAME_PREFIX_BYTES);
      const dropped = Math.min(declared, this.buffered);
      this.consume(dropped);
      this.skipping = declared - dropped;
      return {
        kind: 'oversized',
        declaredBytes: declared,
        error: new FrameError(
          `message of ${declared} bytes exceeds maxMessageBytes (${this.maxMessageBytes})`,
        ),
      };
    }
    if (this.buffered < FRAME_PREFIX_BYTES + declared) return undefined;
    this.consume(FRAME_PREFIX_BYTES);
    const decoded = decodePayload(this.consume(declared));
    return decoded.ok
      ? { kind: 'message', message: decoded.message }
      : { kind: 'bad-frame', error: decoded.error };
  }

  private peekLength(): number {
    const head = this.chunks[0]!.byteLength >= FRAME_PREFIX_BYTES ? this.chunks[0]! : this.flatten();
    return head.readUInt32BE(0);
  }

  private flatten(): Buffer {
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all;
  }

  /** Removes and returns the next `n` buffered bytes. */
  private consume(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!.byteLength >= n ? this.chunks[0]! : this.flatten();
    const out = first.subarray(0, n);
    const rest = first.subarray(n);
    if (rest.byteLength > 0) this.chunks[0] = rest;
    else this.chunks.shift();
    this.buffered -= n;
    return out;
  }
}
