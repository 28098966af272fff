import process from "node:process";

import { logger } from "./log.ts";

/** Options of `ProgressStream`. */
export interface ProgressOptions {
  /** Total bytes expected, when known; enables percent, bar and ETA. */
  total?: number;
  /** True for a terminal: one bar line redrawn in place. */
  interactive: boolean;
  /** False reports nothing, as with `--quiet` or `--json`. */
  enabled: boolean;
  /** What is being read, already redacted, such as the source URL. */
  label: string;
  /** Writes the bar on a terminal (default: standard error). */
  write?: (text: string) => void;
  /** Current time in ms (default: `performance.now`). */
  now?: () => number;
  /** Terminal width in columns (default: standard error's, else 80). */
  columns?: number;
}

/** Time between bar redraws on a terminal. */
const interactiveIntervalMs = 200;

/** Time between progress lines in a log, such as CI output. */
const plainIntervalMs = 5000;

/** The span of recent samples that the transfer rate is computed over. */
const rateWindowMs = 5000;

/** The minimum time between two samples kept by a RateMeter. */
const sampleSpacingMs = 100;

const barWidth = 20;

let activeBar: ProgressStream | undefined;

/**
 * Erases the progress bar currently drawn on the terminal, if any, so that
 * a log line can be written. The bar is drawn again with the next bytes.
 */
export function clearProgressLine(): void {
  activeBar?.clearLine();
}

/**
 * A pass-through stream that counts bytes and reports progress on standard
 * error: on a terminal a single bar line redrawn at most every 200 ms,
 * otherwise a log line at most every 5 s, and nothing when disabled.
 */
export class ProgressStream extends TransformStream<Uint8Array, Uint8Array> {
  #bytes = 0;
  #options: ProgressOptions;
  #now: () => number;
  #write: (text: string) => void;
  #meter = new RateMeter(rateWindowMs);
  #startedAt: number;
  #lastReportAt = Number.NEGATIVE_INFINITY;
  #drawn = false;
  #finished = false;

  constructor(options: ProgressOptions) {
    // The transformer runs before `this` exists, so it calls through hooks
    // that are set right after super().
    const hooks: { count?: (length: number) => void; finish?: () => void } = {};
    super({
      transform(chunk, controller) {
        hooks.count?.(chunk.length);
        controller.enqueue(chunk);
      },
      flush() {
        hooks.finish?.();
      },
    });
    hooks.count = (length) => this.#count(length);
    hooks.finish = () => this.finish();

    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#write = options.write ?? ((text) => process.stderr.write(text));
    this.#startedAt = this.#now();
    this.#meter.add(this.#startedAt, 0);
    // In a log, the first line comes after one interval, so a short
    // download prints only its summary.
    if (!options.interactive) this.#lastReportAt = this.#startedAt;
  }

  /** Bytes that have passed through so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Writes the final report: the finished bar and a line break on a
   * terminal, or a summary line in a log. Later calls do nothing, so it
   * can run both at the end of the stream and after a failure.
   */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (activeBar === this) activeBar = undefined;
    if (!this.#options.enabled) return;

    const now = this.#now();
    if (this.#options.interactive) {
      if (this.#drawn) this.#write(`${this.#barLine(now)}\n`);
      return;
    }

    const elapsedMs = now - this.#startedAt;
    const average = elapsedMs > 0 ? (this.#bytes * 1000) / elapsedMs : 0;
    logger.info(
      `${this.#options.label}: read ${formatBytes(this.#bytes)} in ` +
        `${formatDuration(elapsedMs / 1000)} (${formatRate(average)})`,
    );
  }

  /**
   * Stops reporting without a summary, for a load that failed: the error
   * message is then the last line. A drawn bar is ended with a line break.
   */
  abandon(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (activeBar === this) activeBar = undefined;
    if (this.#drawn) this.#write("\n");
  }

  /** Erases the bar from the terminal until the next redraw. */
  clearLine(): void {
    if (!this.#drawn || this.#finished) return;
    this.#write("\r\x1b[K");
    this.#drawn = false;
  }

  #count(length: number): void {
    this.#bytes += length;
    if (!this.#options.enabled || this.#finished) return;

    const now = this.#now();
    this.#meter.add(now, this.#bytes);
    const interval = this.#options.interactive
      ? interactiveIntervalMs
      : plainIntervalMs;
    if (now - this.#lastReportAt < interval) return;
    this.#lastReportAt = now;

    if (this.#options.interactive) {
      activeBar = this;
      this.#write(this.#barLine(now));
      this.#drawn = true;
    } else {
      logger.info(`${this.#options.label}: ${this.#status(now)}`);
    }
  }

  #status(now: number): string {
    return formatProgress({
      bytes: this.#bytes,
      total: this.#options.total,
      bytesPerSecond: this.#meter.rate(now),
    });
  }

  // Fits the line into the terminal, giving up the label first and the
  // bar next, because a wrapped line cannot be redrawn in place.
  #barLine(now: number): string {
    const columns = this.#options.columns ?? process.stderr.columns ?? 80;
    const width = columns - 1;
    const status = this.#status(now);
    const total = this.#options.total;

    let bar =
      total === undefined ? "" : `${formatBar(this.#bytes / total, barWidth)} `;
    if (bar.length + status.length > width) bar = "";
    const room = width - bar.length - status.length - 1;
    const label = truncateStart(this.#options.label, room);
    const line = label ? `${label} ${bar}${status}` : `${bar}${status}`;
    return `\r${line.slice(0, width)}\x1b[K`;
  }
}

/** What `formatProgress` shows. */
export interface ProgressState {
  bytes: number;
  total?: number;
  /** Recent transfer rate; 0 or less when unknown. */
  bytesPerSecond: number;
}

/**
 * Formats progress as `12.0 MiB of 100.0 MiB (12%), 4.0 MiB/s, ETA 22s`,
 * leaving out the parts that need a total or a rate when they are unknown.
 */
export function formatProgress(state: ProgressState): string {
  const { bytes, total, bytesPerSecond } = state;
  const parts: string[] = [];

  if (total !== undefined && total > 0) {
    const percent = Math.min(100, Math.floor((bytes / total) * 100));
    parts.push(`${formatBytes(bytes)} of ${formatBytes(total)} (${percent}%)`);
  } else {
    parts.push(formatBytes(bytes));
  }

  if (bytesPerSecond > 0) {
    parts.push(formatRate(bytesPerSecond));
    if (total !== undefined && total > bytes) {
      parts.push(`ETA ${formatDuration((total - bytes) / bytesPerSecond)}`);
    }
  }
  return parts.join(", ");
}

/**
 * Formats a byte count with binary units: `512 B`, `1.5 KiB`, `12.3 MiB`,
 * `1.2 GiB`.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;

  // Rounding 1023.96 KiB to one decimal gives "1024.0"; show 1.0 MiB.
  if (value.toFixed(1) === "1024.0" && unit < units.length - 1) {
    return `1.0 ${units[unit + 1]}`;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Formats a transfer rate, such as `4.0 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * Formats a duration in seconds as `42s`, `3m05s` or `1h02m`, rounding to
 * whole seconds. Returns `--` for an infinite or invalid duration.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";

  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (hours > 0) return `${hours}h${pad2(minutes)}m`;
  if (minutes > 0) return `${minutes}m${pad2(rest)}s`;
  return `${rest}s`;
}

/** Draws a bar such as `[#####.....]` for a fraction between 0 and 1. */
export function formatBar(fraction: number, width: number): string {
  const clamped = Math.min(1, Math.max(0, fraction));
  const filled = Math.floor(clamped * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

/**
 * Shortens `text` to at most `width` characters by cutting its start,
 * which keeps the file name at the end of a URL visible.
 */
export function truncateStart(text: string, width: number): string {
  if (text.length <= width) return text;
  if (width <= 3) return "";
  return `...${text.slice(text.length - (width - 3))}`;
}

/**
 * The transfer rate over a sliding window of samples, so that the rate
 * and ETA follow changes in speed instead of the whole-run average.
 */
export class RateMeter {
  #windowMs: number;
  #samples: Array<{ time: number; bytes: number }> = [];

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** Records that `bytes` had passed in total at time `time` (ms). */
  add(time: number, bytes: number): void {
    // Samples closer than the spacing replace the newest one, which bounds
    // the list to about windowMs / sampleSpacingMs entries.
    const samples = this.#samples;
    const previous = samples[samples.length - 2];
    if (previous !== undefined && time - previous.time < sampleSpacingMs) {
      samples[samples.length - 1] = { time, bytes };
    } else {
      samples.push({ time, bytes });
    }

    // Keep one sample older than the window as its left edge.
    while (
      samples.length > 2 &&
      (samples[1]?.time ?? time) <= time - this.#windowMs
    ) {
      samples.shift();
    }
  }

  /** Returns bytes per second over the window, or 0 before two samples. */
  rate(now: number): number {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    if (first === undefined || last === undefined) return 0;

    const elapsedMs = Math.max(now, last.time) - first.time;
    if (elapsedMs <= 0) return 0;
    return ((last.bytes - first.bytes) * 1000) / elapsedMs;
  }
}

function pad2(value: number): string {
  return String(value).padStart(2, "0");
}
