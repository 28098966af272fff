import { describe, expect, test } from "bun:test";

import { ExitCode, SourceError, UsageError } from "../src/errors.ts";
import { DigestStream, parseSha256 } from "../src/source/digest.ts";
import { randomBytes, sha256Hex } from "./support/bytes.ts";

const data = randomBytes(300_000, 7);
const dataSha = sha256Hex(data);

/** Returns a stream of `bytes` in chunks of `size`. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + size));
      offset += size;
    },
  });
}

/** Returns a sink that records whether it was closed or aborted. */
function recordingSink() {
  const state = { bytes: 0, closed: false, aborted: undefined as unknown };
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      state.bytes += chunk.length;
    },
    close() {
      state.closed = true;
    },
    abort(reason) {
      state.aborted = reason;
    },
  });
  return { state, writable };
}

describe("parseSha256", () => {
  test("accepts lowercase hex", () => {
    expect(parseSha256(dataSha)).toBe(dataSha);
  });

  test("accepts uppercase and prefix", () => {
    expect(parseSha256(`sha256:${dataSha.toUpperCase()}`)).toBe(dataSha);
  });

  test("rejects a short value", () => {
    expect(() => parseSha256("abc123")).toThrow(UsageError);
  });

  test("rejects non-hex digits", () => {
    expect(() => parseSha256("z".repeat(64))).toThrow(UsageError);
  });
});

describe("DigestStream", () => {
  test("passes bytes and computes the digest", async () => {
    const digest = new DigestStream();
    const { state, writable } = recordingSink();

    await chunked(data, 10_000).pipeThrough(digest).pipeTo(writable);

    expect(await digest.digest).toBe(dataSha);
    expect(state.bytes).toBe(data.length);
    expect(state.closed).toBe(true);
  });

  test("matching expected digest closes", async () => {
    const digest = new DigestStream({ expected: `sha256:${dataSha}` });
    const { state, writable } = recordingSink();

    await chunked(data, 65_536).pipeThrough(digest).pipeTo(writable);

    expect(state.closed).toBe(true);
  });

  test("mismatch aborts the sink", async () => {
    const wrong = "0".repeat(64);
    const digest = new DigestStream({
      expected: wrong,
      label: "image.tar.zst",
    });
    const { state, writable } = recordingSink();

    const piping = chunked(data, 65_536).pipeThrough(digest).pipeTo(writable);
    const error = await piping.then(
      () => undefined,
      (reason: unknown) => reason,
    );

    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).exitCode).toBe(ExitCode.source);
    expect((error as Error).message).toContain(wrong);
    expect((error as Error).message).toContain(dataSha);
    expect((error as Error).message).toContain("image.tar.zst");
    expect(state.closed).toBe(false);
    expect(state.aborted).toBe(error);
    expect(await digest.digest).toBe(dataSha);
  });

  test("cancel rejects the digest", async () => {
    const digest = new DigestStream();
    const reading = chunked(data, 1000).pipeThrough(digest);
    const reader = reading.getReader();
    await reader.read();

    await reader.cancel(new Error("consumer gone"));

    await expect(digest.digest).rejects.toThrow("consumer gone");
  });

  test("invalid expected is a usage error", () => {
    expect(() => new DigestStream({ expected: "nope" })).toThrow(UsageError);
  });
});
