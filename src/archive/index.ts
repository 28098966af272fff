/**
 * The tar stage of imgload: a TransformStream that passes an uncompressed
 * image archive through and rewrites its naming metadata.
 */
export {
  ImageArchiveStream,
  defaultMaxMetadataBytes,
  type ImageArchiveStreamOptions,
} from "./rewrite-stream.ts";
export type { ArchiveImage, ArchiveSummary } from "./summary.ts";
