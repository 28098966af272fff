import type { createTarPacker, TarHeader } from "modern-tar";

/** One archive member: its header and its body as bytes or a stream factory. */
export interface TarMember {
  header: TarHeader;
  body?: Uint8Array | (() => ReadableStream<Uint8Array>);
}

type TarPackerController = ReturnType<typeof createTarPacker>["controller"];

/** Adds `member` to a modern-tar packer and writes its whole body. */
export async function addTarMember(
  controller: TarPackerController,
  member: TarMember,
): Promise<void> {
  const body = controller.add(member.header);
  if (member.body === undefined) {
    await body.close();
  } else if (member.body instanceof Uint8Array) {
    const writer = body.getWriter();
    await writer.write(member.body);
    await writer.close();
  } else {
    await member.body().pipeTo(body);
  }
}
