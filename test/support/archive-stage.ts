/**
 * Runs the tar stage over bytes in chosen chunk sizes, for the archive
 * tests.
 */
import {
  ImageArchiveStream,
  type ArchiveSummary,
  type ImageArchiveStreamOptions,
} from "../../src/archive/index.ts";
import { parseReference } from "../../src/reference.ts";
import { readAll } from "./bytes.ts";
import {
  chunkedStream,
  splitTarEntries,
  type RawTarEntry,
} from "./fixtures.ts";

/** Options of {@link runStage}: the stage's own, with the reference as text. */
export interface StageOptions extends Omit<
  ImageArchiveStreamOptions,
  "reference"
> {
  reference?: string;
  /** Input chunk size, or a function of the chunk index. Default 64 KiB. */
  chunkSize?: number | ((index: number) => number);
}

/** The output of one run of the stage. */
export interface StageRun {
  output: Uint8Array;
  /** The output chunks as the stage enqueued them. */
  chunks: Uint8Array[];
  /** The input chunks as they were written. */
  inputChunks: Uint8Array[];
  summary: ArchiveSummary;
}

/** Pipes `tar` through an ImageArchiveStream and collects the result. */
export async function runStage(
  tar: Uint8Array,
  options: StageOptions = {},
): Promise<StageRun> {
  const { reference, chunkSize, ...rest } = options;
  const stage = new ImageArchiveStream({
    ...rest,
    reference: reference === undefined ? undefined : parseReference(reference),
  });

  const inputChunks: Uint8Array[] = [];
  const recorder = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      inputChunks.push(chunk);
      controller.enqueue(chunk);
    },
  });
  const chunks: Uint8Array[] = [];
  const collector = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      chunks.push(chunk);
      controller.enqueue(chunk);
    },
  });

  const output = await readAll(
    chunkedStream(tar, chunkSize ?? 64 * 1024)
      .pipeThrough(recorder)
      .pipeThrough(stage)
      .pipeThrough(collector),
  );
  return { output, chunks, inputChunks, summary: await stage.summary };
}

/**
 * Runs the stage and returns what it failed with; fails the test when it
 * succeeds. Also checks that `summary` rejects with the same error.
 */
export async function stageError(
  tar: Uint8Array,
  options: StageOptions = {},
): Promise<unknown> {
  const { reference, chunkSize, ...rest } = options;
  const stage = new ImageArchiveStream({
    ...rest,
    reference: reference === undefined ? undefined : parseReference(reference),
  });
  let streamError: unknown;
  try {
    await readAll(
      chunkedStream(tar, chunkSize ?? 64 * 1024).pipeThrough(stage),
    );
  } catch (error) {
    streamError = error;
  }
  if (streamError === undefined) {
    throw new Error("the tar stage succeeded where it should have failed");
  }
  const summaryError = await stage.summary.then(
    () => new Error("summary resolved after a stream error"),
    (error: unknown) => error,
  );
  if (summaryError !== streamError) {
    throw new Error("summary rejected with a different error than the stream");
  }
  return streamError;
}

/** Names of the members that the stage may rewrite. */
export const namingMembers = new Set([
  "manifest.json",
  "repositories",
  "index.json",
]);

/** Strips `./` from a member name, as the stage does to recognise it. */
export function memberPath(name: string): string {
  return name
    .split("/")
    .filter((part) => part !== "" && part !== ".")
    .join("/");
}

/** Returns the entry whose normalized name is `path`, parsed as JSON. */
export function memberJson(tar: Uint8Array, path: string): unknown {
  const entry = findEntry(tar, path);
  return JSON.parse(new TextDecoder().decode(entry.body));
}

/** Returns the entry whose normalized name is `path`. */
export function findEntry(tar: Uint8Array, path: string): RawTarEntry {
  const entry = splitTarEntries(tar).entries.find(
    (candidate) => memberPath(candidate.name) === path,
  );
  if (!entry) {
    throw new Error(`the archive has no member ${path}`);
  }
  return entry;
}

/** Returns the entries other than the naming members, as raw bytes. */
export function otherEntries(tar: Uint8Array): Array<[string, Uint8Array]> {
  return splitTarEntries(tar)
    .entries.filter((entry) => !namingMembers.has(memberPath(entry.name)))
    .map((entry) => [entry.name, entry.raw]);
}
