import { logger } from "../log.ts";
import type { ImageReference } from "../reference.ts";
import { ImageMetadataHandler } from "./image-metadata.ts";
import { parsePlatform } from "./oci-metadata.ts";
import { summarize, type ArchiveSummary } from "./summary.ts";
import { TarPassThrough } from "./tar-pass-through.ts";

/** Options of {@link ImageArchiveStream}. */
export interface ImageArchiveStreamOptions {
  /** Name to load the image as; without it the archive keeps its names. */
  reference?: ImageReference;
  /**
   * Largest metadata member (manifest.json, repositories, index.json, a
   * config) to read, in bytes. Default 16 MiB.
   */
  maxMetadataBytes?: number;
  /**
   * Platform to pick from a multi-platform OCI archive, as
   * `os/architecture[/variant]`. Default `linux/amd64`.
   */
  platform?: string;
}

/** Default of ImageArchiveStreamOptions.maxMetadataBytes: 16 MiB. */
export const defaultMaxMetadataBytes = 16 * 1024 * 1024;
const defaultPlatform = "linux/amd64";

/**
 * The tar stage: passes an uncompressed image archive through, rewriting
 * only its naming metadata so the image loads as `reference`.
 *
 * Every entry is forwarded as subarrays of the incoming chunks. The
 * exceptions are `manifest.json`, `repositories` and `index.json` when a
 * reference is given: each is replaced by an entry with the same name,
 * mode, mtime and owner and the rewritten body. Without a reference the
 * output is the input byte for byte, except that an OCI-only archive gets
 * a synthesized `manifest.json` before its end-of-archive marker, so that
 * Docker's classic image store can load it.
 *
 * Errors surface through the stream: ArchiveError for a damaged tar or
 * metadata, UsageError for a reference given to a multi-image archive.
 * Some are found only at the end of the archive, after most bytes have
 * been forwarded, so a consumer must abort (not close) its sink when the
 * stream errors.
 *
 * @example
 * ```ts
 * const archive = new ImageArchiveStream({
 *   reference: parseReference("team/tool:v2"),
 * });
 * await tar.pipeThrough(archive).pipeTo(engineStdin);
 * const { expectedReferences } = await archive.summary;
 * ```
 */
export class ImageArchiveStream extends TransformStream<
  Uint8Array,
  Uint8Array
> {
  /** Resolves after the stream flushed successfully; rejects if it errored. */
  readonly summary: Promise<ArchiveSummary>;

  constructor(options: ImageArchiveStreamOptions = {}) {
    const { promise, resolve, reject } =
      Promise.withResolvers<ArchiveSummary>();
    const handler = new ImageMetadataHandler({
      reference: options.reference,
      maxMetadataBytes: options.maxMetadataBytes ?? defaultMaxMetadataBytes,
      platform: parsePlatform(options.platform ?? defaultPlatform),
    });
    const tar = new TarPassThrough(handler);

    const fail = (error: unknown): never => {
      reject(error);
      throw error;
    };

    // `cancel` runs when the pipe is aborted from either side, but the DOM
    // typings this project builds with do not list it yet.
    const transformer: Transformer<Uint8Array, Uint8Array> & {
      cancel(reason: unknown): void;
    } = {
      async transform(chunk, controller) {
        try {
          await tar.write(chunk, (bytes) => controller.enqueue(bytes));
        } catch (error) {
          fail(error);
        }
      },
      flush() {
        try {
          tar.finish();
          if (tar.trailingNonZero) {
            logger.debug(
              "Ignoring non-zero bytes after the end-of-archive marker; " +
                "they are forwarded, and Docker does not read them",
            );
          }
          resolve(summarize(handler.collected(), options.reference));
        } catch (error) {
          fail(error);
        }
      },
      cancel(reason) {
        reject(reason);
      },
    };
    super(transformer);

    // Callers that await `summary` still get the rejection. Without this
    // handler, an unawaited summary of a failed stream would be an
    // unhandled rejection.
    promise.catch(() => {});
    this.summary = promise;
  }
}
