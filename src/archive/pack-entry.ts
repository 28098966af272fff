import { packTar } from "modern-tar";
import type { TarHeader } from "./tar-header.ts";

const endMarkerBytes = 1024;
// The largest mode a ustar header holds: 7 octal digits.
const maxMode = 0o7777777;

/**
 * Encodes one regular-file entry (header, PAX header when a field needs
 * one, body and padding) with modern-tar. The header keeps the name, mode,
 * mtime, owner ids and names of `header`; the size is the body's.
 */
export async function packEntry(
  header: Pick<
    TarHeader,
    "name" | "mode" | "mtime" | "uid" | "gid" | "uname" | "gname"
  >,
  body: Uint8Array,
): Promise<Uint8Array> {
  // modern-tar has no public header encoder, so pack a one-entry archive
  // and cut off its end-of-archive marker.
  const archive = await packTar([
    {
      header: {
        name: header.name,
        type: "file",
        size: body.length,
        mode: header.mode & maxMode,
        mtime: new Date(header.mtime * 1000),
        uid: header.uid,
        gid: header.gid,
        uname: header.uname,
        gname: header.gname,
      },
      body,
    },
  ]);
  return archive.subarray(0, archive.length - endMarkerBytes);
}
