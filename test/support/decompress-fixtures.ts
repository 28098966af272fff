/**
 * Inputs for the decompression tests: generated data, compressed by the
 * real zstd, pzstd, gzip, xz, bzip2 and lz4 command-line tools.
 */

/**
 * Generates `size` bytes of data that compresses like a container layer:
 * 16 KiB segments that cycle through pseudo-random bytes, numbered text
 * lines and zeros. The same seed always yields the same bytes.
 */
export function makeData(size: number, seed = 1): Uint8Array {
  const data = new Uint8Array(size);
  const segment = 16 * 1024;
  const encoder = new TextEncoder();
  let state = seed >>> 0 || 1;

  for (let start = 0, index = 0; start < size; start += segment, index++) {
    const end = Math.min(start + segment, size);
    const kind = (index + seed) % 3;

    if (kind === 0) {
      for (let i = start; i < end; i++) {
        // xorshift32
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        data[i] = state & 0xff;
      }
    } else if (kind === 1) {
      let offset = start;
      for (let line = 0; offset < end; line++) {
        const text = encoder.encode(`layer ${index} line ${line} ok\n`);
        const part = text.subarray(0, end - offset);
        data.set(part, offset);
        offset += part.length;
      }
    }
  }
  return data;
}

/** Generates `size` bytes of text lines that never repeat exactly. */
export function makeText(size: number): Uint8Array {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `entry ${(i * 7919) % 100003} size ${i * 31} mode 0644\n`;
    lines.push(line);
    length += line.length;
  }
  return new TextEncoder().encode(lines.join("")).subarray(0, size);
}

/**
 * Runs a command with `input` on stdin and returns its stdout. Throws if
 * it exits with a status other than 0.
 */
export async function runTool(
  argv: readonly string[],
  input: Uint8Array,
): Promise<Uint8Array> {
  const child = Bun.spawn([...argv], {
    stdin: input,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [output, errors, status] = await Promise.all([
    new Response(child.stdout).bytes(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  if (status !== 0) {
    throw new Error(`${argv.join(" ")} exited with ${status}: ${errors}`);
  }
  return output;
}

/** Returns the exit status of a command that reads `input` on stdin. */
export async function toolStatus(
  argv: readonly string[],
  input: Uint8Array,
): Promise<number> {
  const child = Bun.spawn([...argv], {
    stdin: input,
    stdout: "ignore",
    stderr: "ignore",
  });
  return child.exited;
}

/** Joins byte arrays, as `cat a b` would. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

/** Returns a copy of `bytes` with the byte at `offset` XORed with `mask`. */
export function flipByte(
  bytes: Uint8Array,
  offset: number,
  mask = 0x55,
): Uint8Array {
  const copy = bytes.slice();
  copy[offset] = copy[offset]! ^ mask;
  return copy;
}

/** Returns the SHA-256 of `bytes` in hex. */
export function sha256(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** Creates a stream of `bytes` in chunks of `chunkSize`, pulled lazily. */
export function chunkedStream(
  bytes: Uint8Array,
  chunkSize: number,
): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (offset >= bytes.length) {
          controller.close();
          return;
        }
        // Copies, as a network source would hand out fresh buffers.
        controller.enqueue(bytes.slice(offset, offset + chunkSize));
        offset += chunkSize;
      },
    },
    { highWaterMark: 0 },
  );
}

/** The outcome of running bytes through a transform pair. */
export interface PipeResult {
  readonly output: Uint8Array;
  readonly chunks: readonly Uint8Array[];
  /** The stream error, if the pipe failed. */
  readonly error?: unknown;
}

/**
 * Pipes `input` in chunks of `chunkSize` through `transform` and collects
 * the output. A stream error is returned, not thrown, with the output that
 * came before it.
 */
export async function pipeBytes(
  input: Uint8Array,
  transform: ReadableWritablePair<Uint8Array, Uint8Array>,
  chunkSize = input.length || 1,
): Promise<PipeResult> {
  const chunks: Uint8Array[] = [];
  try {
    await chunkedStream(input, chunkSize)
      .pipeThrough(transform)
      .pipeTo(
        new WritableStream({
          write(chunk) {
            chunks.push(chunk);
          },
        }),
      );
    return { output: concat(...chunks), chunks };
  } catch (error) {
    return { output: concat(...chunks), chunks, error };
  }
}
