import { ImageArchiveStream, type ArchiveSummary } from "./archive/index.ts";
import {
  createDecompressStream,
  isNativeZstdAvailable,
} from "./decompress/index.ts";
import {
  EngineError,
  ImgloadError,
  InterruptedError,
  UsageError,
} from "./errors.ts";
import { logger } from "./log.ts";
import { ProgressStream } from "./progress.ts";
import {
  normalizeReference,
  parseReference,
  type ImageReference,
} from "./reference.ts";
import { getRuntime } from "./runtime/index.ts";
import type { Runtime } from "./runtime/types.ts";
import { checkDaemon, createDockerLoadSink, inspectImage } from "./sink/docker.ts";
import { createFileSink, createStdoutSink } from "./sink/file.ts";
import type { Sink, SinkResult } from "./sink/types.ts";
import { DigestStream, parseSha256 } from "./source/digest.ts";
import { openSource, type Source } from "./source/index.ts";
import type { LoadedImage, LoadOptions, LoadResult } from "./types.ts";

const daemonCheckTimeoutMs = 5000;

/**
 * Streams an image archive from `options.source` into the image store (or
 * to `options.output`), renamed to `options.name` when given.
 *
 * The engine's stdin is ended cleanly only after the source reached its
 * end, the decoder and the tar stage finished without error, and the
 * digest matched. On any failure the engine process is killed instead, so
 * nothing is loaded.
 *
 * @example
 * ```ts
 * const result = await loadImage({
 *   source: "https://ci.example.com/artifacts/image.tar.zst",
 *   name: "localhost:5000/team/tool:v2",
 * });
 * console.log(result.references, result.imageId);
 * ```
 * @throws ImgloadError subclasses with an exit code for the CLI.
 */
export async function loadImage(
  options: LoadOptions,
  runtime: Runtime = getRuntime(),
): Promise<LoadResult> {
  // Validate everything the user typed before any byte moves.
  const reference = options.name ? parseReference(options.name) : undefined;
  const expectedSha256 =
    options.sha256 === undefined ? undefined : parseSha256(options.sha256);
  if (options.zstdDecoder === "native" && !isNativeZstdAvailable()) {
    throw new UsageError(
      `--zstd-decoder native is not available on ${runtime.name}`,
      { hint: "Use --zstd-decoder wasm or auto" },
    );
  }
  throwIfAborted(options.signal);

  // Ask the daemon first, so an unreachable one fails in seconds instead
  // of after a download.
  const engineCommand = options.engineCommand ?? "docker";
  if (options.output === undefined) {
    await checkDaemon(runtime, {
      command: engineCommand,
      timeoutMs: daemonCheckTimeoutMs,
    });
    throwIfAborted(options.signal);
  }

  const source = await openSource(runtime, options.source, {
    headers: options.headers ?? [],
    retries: options.retries ?? 8,
    retryDelayMs: options.retryDelayMs ?? 1000,
    timeoutMs: options.timeoutMs ?? 30_000,
    caCertPath: options.caCertPath,
    signal: options.signal,
  });
  logger.debug(`Reading ${source.display}`);

  const sink = await openSink(runtime, options, engineCommand, source);
  return await runPipeline({
    runtime,
    options,
    source,
    sink,
    reference,
    expectedSha256,
    engineCommand,
  });
}

interface PipelineContext {
  runtime: Runtime;
  options: LoadOptions;
  source: Source;
  sink: Sink;
  reference?: ImageReference;
  expectedSha256?: string;
  engineCommand: string;
}

async function runPipeline(context: PipelineContext): Promise<LoadResult> {
  const { options, source, sink, reference } = context;

  // Assemble source -> digest -> progress -> decompress -> tar -> sink.
  let stream = source.stream;
  let digest: DigestStream | undefined;
  if (context.expectedSha256 !== undefined) {
    digest = new DigestStream({
      expected: context.expectedSha256,
      label: source.display,
    });
    stream = stream.pipeThrough(digest);
  }
  const progress = new ProgressStream({
    total: source.size,
    interactive: context.runtime.isTerminal(2),
    enabled: options.progress ?? false,
    label: source.display,
  });
  stream = stream.pipeThrough(progress);
  let format: string | undefined;
  let decoder: string | undefined;
  stream = stream.pipeThrough(
    createDecompressStream({
      zstdDecoder: options.zstdDecoder ?? "auto",
      onDetect: (info) => {
        format = info.format;
        decoder = info.decoder;
        logger.debug(
          `Detected ${info.format}${info.decoder ? ` (${info.decoder} decoder)` : ""}`,
        );
      },
    }),
  );
  const archive = new ImageArchiveStream({ reference });
  stream = stream.pipeThrough(archive);

  // Run it. Any stage's error aborts the sink, which kills the engine.
  let sinkResult: SinkResult;
  let summary: ArchiveSummary;
  try {
    await stream.pipeTo(sink.writable, { signal: options.signal });
    sinkResult = await sink.finish();
    summary = await archive.summary;
  } catch (error) {
    progress.abandon();
    await sink.abort(error);
    archive.summary.catch(() => {});
    throw toLoadError(error, options.signal);
  }
  progress.finish();

  // Report what landed, confirmed by the engine.
  const result: LoadResult = {
    source: source.display,
    references: summary.expectedReferences,
    original: summary.original,
    topLayer: summary.topLayer,
    sha256: digest ? await digest.digest : undefined,
    bytesRead: progress.bytes,
    format,
    decoder,
    displaced: sinkResult.displaced,
    images: [],
  };
  if (options.output !== undefined) {
    result.output = options.output;
    result.images = describeWritten(summary);
  } else {
    result.images = await confirmLoaded(context, summary, sinkResult);
  }
  result.imageId = result.images[0]?.id;
  return result;
}

/**
 * Describes the images in an archive written with `--output`: its
 * references, with the config digest as ID when the archive has one image.
 */
function describeWritten(summary: ArchiveSummary): LoadedImage[] {
  const id = summary.images.length === 1 ? summary.configDigest : undefined;
  if (summary.expectedReferences.length === 0) {
    return [{ id }];
  }
  return summary.expectedReferences.map((reference) => ({ reference, id }));
}

async function openSink(
  runtime: Runtime,
  options: LoadOptions,
  engineCommand: string,
  source: Source,
): Promise<Sink> {
  try {
    if (options.output === "-") {
      return createStdoutSink(runtime);
    }
    if (options.output !== undefined) {
      return await createFileSink(runtime, options.output);
    }
    return createDockerLoadSink(runtime, { command: engineCommand });
  } catch (error) {
    await source.stream.cancel(error).catch(() => {});
    throw error;
  }
}

/**
 * Checks that every expected reference exists and returns each with the
 * image ID the engine reports. The engine's `Loaded image` lines are not
 * enough, because Engine 20.10 prints none for an archive with only
 * `repositories`, so each reference is looked up with `image inspect`.
 */
async function confirmLoaded(
  context: PipelineContext,
  summary: ArchiveSummary,
  sinkResult: SinkResult,
): Promise<LoadedImage[]> {
  if (summary.expectedReferences.length === 0) {
    // RepoTags null and no name: the engine reports only the ID.
    const ids = sinkResult.loadedImageIds;
    const fallback = summary.configDigest ? [summary.configDigest] : [];
    return (ids.length > 0 ? ids : fallback).map((id) => ({ id }));
  }

  const announced = new Set(sinkResult.loadedReferences.map(normalizeReference));
  const images: LoadedImage[] = [];
  for (const reference of summary.expectedReferences) {
    const image = await inspectImage(context.runtime, reference, {
      command: context.engineCommand,
    });
    if (image === undefined) {
      const loaded = [
        ...sinkResult.loadedReferences,
        ...sinkResult.loadedImageIds,
      ];
      throw new EngineError(
        `${context.engineCommand} load finished but ${reference} does not exist; it loaded ${loaded.length ? loaded.join(", ") : "nothing it reported"}`,
        { hint: "Run with --debug and report the output" },
      );
    }
    if (!announced.has(normalizeReference(reference))) {
      logger.debug(`${reference} confirmed by image inspect`);
    }
    images.push({ reference, id: image.id });
  }
  return images;
}

/** Maps whatever ended the pipeline to the error to report. */
function toLoadError(error: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted) {
    const reason = signal.reason;
    if (reason instanceof ImgloadError) {
      return reason;
    }
    return new InterruptedError("SIGINT");
  }
  return error;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw toLoadError(signal.reason, signal);
  }
}

