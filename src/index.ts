/**
 * imgload as a library: stream an image archive from a URL, file or
 * stream into `docker load`, renamed, with nothing written to disk.
 *
 * @example
 * ```ts
 * import { loadImage } from "imgload";
 *
 * const result = await loadImage({
 *   source: "https://ci.example.com/artifacts/image.tar.zst",
 *   name: "team/tool:v1",
 * });
 * ```
 * @module
 */
export { loadImage } from "./load.ts";
export {
  formatReference,
  normalizeReference,
  parseReference,
  type ImageReference,
} from "./reference.ts";
export {
  ArchiveError,
  EngineError,
  ExitCode,
  ImgloadError,
  InterruptedError,
  SourceError,
  UsageError,
} from "./errors.ts";
export { ImageArchiveStream, type ArchiveSummary } from "./archive/index.ts";
export {
  createDecompressStream,
  ZstdDecompressionStream,
} from "./decompress/index.ts";
export type {
  LoadedImage,
  LoadOptions,
  LoadResult,
  ZstdDecoderChoice,
} from "./types.ts";
