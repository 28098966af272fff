import type { ZstdDecoderChoice } from "./decompress/index.ts";

export type { ZstdDecoderChoice };

/** Options of {@link loadImage}; only `source` is required. */
export interface LoadOptions {
  /** An http(s) URL, a file path, or `-` for standard input. */
  source: string;
  /** `NAME[:TAG]` to load the image as; without it the archive's own names are kept. */
  name?: string;
  /** Write the rewritten, uncompressed tar to this path (`-` for stdout) instead of loading it. */
  output?: string;
  /** The zstd decoder. Default `auto`: native where the runtime has one. */
  zstdDecoder?: ZstdDecoderChoice;
  /** Expected SHA-256 of the downloaded (compressed) bytes, 64 hex digits. */
  sha256?: string;
  /** Extra request headers for HTTP sources. */
  headers?: Array<[string, string]>;
  /** Consecutive failed attempts before an HTTP download gives up. Default 8. */
  retries?: number;
  /** First wait before a retry, in milliseconds, doubling up to 30 s. Default 1000. */
  retryDelayMs?: number;
  /** Stall timeout of an HTTP transfer, in milliseconds. Default 30000. */
  timeoutMs?: number;
  /** A PEM file of extra CA certificates to trust for https. */
  caCertPath?: string;
  /** Engine command to run `load` with. Default `docker`. */
  engineCommand?: string;
  /** Shows download progress on stderr. Default false. */
  progress?: boolean;
  /** Aborting stops the load; nothing is loaded. */
  signal?: AbortSignal;
}

/** One image that a load created or an `--output` archive carries. */
export interface LoadedImage {
  /** Its name, or undefined for an image the archive does not name. */
  reference?: string;
  /** Image ID as the engine reports it; with `--output`, the config digest. */
  id?: string;
}

/** The outcome of a load, as printed by the CLI. */
export interface LoadResult {
  /** The source as shown to users, secrets redacted. */
  source: string;
  /** References the image store now holds for this archive, or that `--output` carries. */
  references: string[];
  /** The first image's ID, as in `images`. */
  imageId?: string;
  /** Every image with its ID, in archive order. */
  images: LoadedImage[];
  /** The archive's own name and tag before any rename. */
  original?: { name: string; tag: string };
  /** The archive's top layer: the `repositories` value, else the last layer's diff_id. */
  topLayer?: string;
  /** SHA-256 of the downloaded bytes, when it was computed. */
  sha256?: string;
  /** Compressed bytes read from the source. */
  bytesRead: number;
  /** Archive format detected, and the zstd decoder used. */
  format?: string;
  decoder?: string;
  /** Path written with `--output`. */
  output?: string;
  /** Tags that the load took away from other images. */
  displaced: Array<{ reference: string; oldId: string }>;
}
