/**
 * Exit codes of the `imgload` command. Every failure maps to exactly one,
 * and the README and `--help` list them.
 */
export const ExitCode = {
  ok: 0,
  /** A bug in imgload. The message requests a report with `--debug` output. */
  internal: 1,
  /** Invalid arguments, an invalid reference, or a name for a multi-image archive. */
  usage: 2,
  /** The source: HTTP status, network, missing file, digest mismatch. */
  source: 3,
  /** The archive: unsupported or failed decompression, empty input, tar, metadata. */
  archive: 4,
  /** The image engine (docker load) or the `--output` file. */
  engine: 5,
  interruptedSigint: 130,
  interruptedSigterm: 143,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Names of the failure classes, as shown in `--json` output. */
export type ErrorKind =
  | "internal"
  | "usage"
  | "source"
  | "archive"
  | "engine"
  | "interrupted";

export interface ImgloadErrorOptions {
  /** What the user can do next; appended to the message after a space. */
  hint?: string;
  cause?: unknown;
}

/**
 * An expected failure with a one-line message for the user. The message
 * names what failed and on which value, and `hint` gives the next step.
 * Anything thrown that is not an ImgloadError is a bug (exit code 1).
 */
export class ImgloadError extends Error {
  readonly kind: ErrorKind;
  readonly exitCode: ExitCodeValue;
  readonly hint?: string;

  constructor(
    kind: ErrorKind,
    exitCode: ExitCodeValue,
    message: string,
    options: ImgloadErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.exitCode = exitCode;
    this.hint = options.hint;
  }

  /**
   * The message and hint as one line, as printed on stderr. (Not named
   * `line`: JavaScriptCore sets an own `line` property on every error.)
   */
  get displayMessage(): string {
    const text = this.hint ? `${this.message}. ${this.hint}` : this.message;
    return text.replace(/\s*\n\s*/g, " ");
  }
}

/** Invalid arguments or reference; exit code 2. */
export class UsageError extends ImgloadError {
  constructor(message: string, options?: ImgloadErrorOptions) {
    super("usage", ExitCode.usage, message, options);
  }
}

/** The source could not be read as requested; exit code 3. */
export class SourceError extends ImgloadError {
  constructor(message: string, options?: ImgloadErrorOptions) {
    super("source", ExitCode.source, message, options);
  }
}

/** The bytes are not a supported, intact image archive; exit code 4. */
export class ArchiveError extends ImgloadError {
  constructor(message: string, options?: ImgloadErrorOptions) {
    super("archive", ExitCode.archive, message, options);
  }
}

/** The engine or the output file failed; exit code 5. */
export class EngineError extends ImgloadError {
  constructor(message: string, options?: ImgloadErrorOptions) {
    super("engine", ExitCode.engine, message, options);
  }
}

/** SIGINT or SIGTERM arrived; exit code 130 or 143. */
export class InterruptedError extends ImgloadError {
  readonly signal: "SIGINT" | "SIGTERM";

  constructor(signal: "SIGINT" | "SIGTERM") {
    const code =
      signal === "SIGINT"
        ? ExitCode.interruptedSigint
        : ExitCode.interruptedSigterm;
    super("interrupted", code, `Interrupted by ${signal}`, {
      hint: "Nothing was loaded",
    });
    this.signal = signal;
  }
}
