import type { ArgsDef } from "citty";

const width = 80;
const optionIndent = "        ";

/**
 * Renders the help of `imgload load` from its citty argument definitions,
 * wrapped to 80 columns. citty's own renderer pads every row to the
 * longest one, which wraps mid-word on an 80-column terminal.
 */
export function renderLoadHelp(
  version: string,
  args: ArgsDef,
  exitCodes: string,
): string {
  const lines = [
    `imgload ${version}: load container image archives from URLs into Docker`,
    "",
    "Usage: imgload load <url|file|-> [NAME[:TAG]] [options]",
    "",
    "Streams an image archive (zstd, gzip or tar) into docker load,",
    "renamed to NAME[:TAG]. Nothing is loaded unless every step succeeds.",
    "",
    "Arguments:",
  ];

  for (const [name, definition] of Object.entries(args)) {
    if (definition.type !== "positional") {
      continue;
    }
    lines.push(`  ${definition.valueHint ?? name.toUpperCase()}`);
    lines.push(...wrap(definition.description ?? "", optionIndent));
  }

  lines.push("", "Options:");
  for (const [name, definition] of Object.entries(args)) {
    if (definition.type === "positional") {
      continue;
    }
    const alias = "alias" in definition && definition.alias;
    const flag = alias ? `-${alias}, --${name}` : `    --${name}`;
    const value = definition.valueHint ? ` ${definition.valueHint}` : "";
    lines.push(`  ${flag}${value}`);
    let description = definition.description ?? "";
    if (definition.default !== undefined && definition.type !== "boolean") {
      description += ` (default: ${definition.default})`;
    }
    lines.push(...wrap(description, optionIndent));
  }
  lines.push("  -h, --help");
  lines.push(...wrap("Print this help", optionIndent));

  lines.push("", exitCodes, "");
  return lines.join("\n");
}

/** Renders `imgload --help`. */
export function renderMainHelp(version: string, exitCodes: string): string {
  return [
    `imgload ${version}: load container image archives from URLs into Docker`,
    "",
    "Usage: imgload load <url|file|-> [NAME[:TAG]] [options]",
    "       imgload --version",
    "       imgload --help",
    "",
    "Commands:",
    "  load    Stream an image archive into docker load, renamed to NAME[:TAG]",
    "",
    "Run imgload load --help for the options.",
    "",
    exitCodes,
    "",
  ].join("\n");
}

/** Wraps `text` into lines of at most 80 columns, each starting with `indent`. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) {
    lines.push(indent + line);
  }
  return lines;
}
