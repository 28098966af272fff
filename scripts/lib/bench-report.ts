/**
 * Statistics and Markdown formatting for the benchmark's results.
 */
import type { Measurement } from "./bench-measure.ts";

/** Median, minimum and maximum of a list of samples. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** A measured contender: its row id, label, command and runs. */
export interface ResultRow {
  id: string;
  label: string;
  command: string;
  runs: Measurement[];
}

/** The medians and spreads of a row's runs. */
export interface RowSummary {
  wall: Spread;
  cpu: Spread;
  rssMb: Spread;
}

/** One target with its verdict. */
export interface TargetCheck {
  description: string;
  /** undefined when the target is only reported, not judged. */
  met: boolean | undefined;
  measured: string;
}

/** Returns the median (mean of the middle two for even counts). */
export function spreadOf(samples: number[]): Spread {
  if (samples.length === 0) {
    return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1
      ? sorted[middle]!
      : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

/** Summarizes the runs of a row. */
export function summarize(row: ResultRow): RowSummary {
  return {
    wall: spreadOf(row.runs.map((run) => run.wallSeconds)),
    cpu: spreadOf(row.runs.map((run) => run.cpuSeconds)),
    rssMb: spreadOf(row.runs.map((run) => run.peakRssBytes / mebibyte)),
  };
}

const mebibyte = 1024 * 1024;

/**
 * Returns the median over runs of `row`'s wall time divided by
 * `baseline`'s in the same round. Rows run alternately, so this ratio
 * cancels a slow period of the machine that hits both rows of a round.
 */
export function pairedWallRatio(row: ResultRow, baseline: ResultRow): Spread {
  const count = Math.min(row.runs.length, baseline.runs.length);
  const ratios: number[] = [];
  for (let index = 0; index < count; index++) {
    ratios.push(
      row.runs[index]!.wallSeconds / baseline.runs[index]!.wallSeconds,
    );
  }
  return spreadOf(ratios);
}

/**
 * Formats rows as a Markdown table with medians, the wall-time range,
 * and ratios against `baseline` (the first row when not given): of the
 * medians, and the paired wall-time ratio of {@linkcode pairedWallRatio}.
 */
export function formatRowTable(
  rows: ResultRow[],
  baseline: ResultRow | undefined = rows[0],
): string {
  const base = baseline ? summarize(baseline) : undefined;
  const id = baseline?.id ?? "-";
  const header = [
    "#",
    "Contender",
    "Wall s",
    "Wall min-max",
    `× ${id}`,
    `× ${id} paired`,
    "CPU s",
    `× ${id}`,
    "Peak RSS MiB",
    `× ${id}`,
  ];
  const lines = rows.map((row) => {
    const summary = summarize(row);
    const paired = baseline ? pairedWallRatio(row, baseline) : undefined;
    return [
      row.id,
      row.label,
      fixed(summary.wall.median, 2),
      `${fixed(summary.wall.min, 2)}-${fixed(summary.wall.max, 2)}`,
      ratio(summary.wall.median, base?.wall.median),
      paired
        ? `${ratio(paired.median, 1)} (${fixed(paired.min, 2)}-${fixed(paired.max, 2)})`
        : "-",
      fixed(summary.cpu.median, 2),
      ratio(summary.cpu.median, base?.cpu.median),
      fixed(summary.rssMb.median, 0),
      ratio(summary.rssMb.median, base?.rssMb.median),
    ];
  });
  return markdownTable(header, lines, [0, 2, 3, 4, 5, 6, 7, 8, 9]);
}

/** Formats a Markdown table; `rightAligned` lists numeric columns. */
export function markdownTable(
  header: string[],
  rows: string[][],
  rightAligned: number[] = [],
): string {
  // A pipe inside a cell, as in a shell pipeline, would end the cell.
  const escape = (cells: string[]) =>
    cells.map((cell) => cell.replaceAll("|", "\\|"));
  header = escape(header);
  rows = rows.map(escape);
  const widths = header.map((cell, column) =>
    Math.max(3, cell.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const pad = (cell: string, column: number) =>
    rightAligned.includes(column)
      ? cell.padStart(widths[column]!)
      : cell.padEnd(widths[column]!);
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => pad(cell, column)).join(" | ")} |`;
  const rule = widths.map((width, column) =>
    rightAligned.includes(column)
      ? `${"-".repeat(width - 1)}:`
      : "-".repeat(width),
  );
  return [line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)].join(
    "\n",
  );
}

/** Formats targets as a list with PASS, MISS or INFO before each. */
export function formatTargets(targets: TargetCheck[]): string {
  const lines = targets.map((target) => {
    let verdict = "INFO";
    if (target.met === true) verdict = "PASS";
    if (target.met === false) verdict = "MISS";
    return `- ${verdict}: ${target.description} (measured ${target.measured})`;
  });
  return lines.join("\n");
}

/** Formats `value / base` as `1.23×`, or `-` when either is missing. */
export function ratio(value: number, base: number | undefined): string {
  if (base === undefined || !Number.isFinite(value) || base <= 0) return "-";
  return `${(value / base).toFixed(2)}×`;
}

/** Formats a number with `digits` decimals, or `-` when it is NaN. */
export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}
