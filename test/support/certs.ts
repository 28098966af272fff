import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A private CA and a server certificate it signed, as files and PEM. */
export interface TestCertificates {
  /** The CA certificate file to trust. */
  caPath: string;
  /** The server certificate, valid for 127.0.0.1, ::1 and localhost. */
  cert: string;
  key: string;
  /** Deletes the temporary directory. */
  remove(): void;
}

/**
 * Makes a CA and a leaf certificate for loopback with the openssl CLI, in
 * a new temporary directory. Both are valid for two days.
 */
export function createTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "imgload-certs-"));
  const path = (name: string) => join(dir, name);

  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-keyout",
    path("ca.key"),
    "-out",
    path("ca.pem"),
    "-subj",
    "/CN=imgload test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    path("leaf.key"),
    "-out",
    path("leaf.csr"),
    "-subj",
    "/CN=localhost",
  ]);
  writeFileSync(
    path("leaf.ext"),
    [
      "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
      "basicConstraints=CA:FALSE",
      "extendedKeyUsage=serverAuth",
    ].join("\n"),
  );
  openssl([
    "x509",
    "-req",
    "-days",
    "2",
    "-in",
    path("leaf.csr"),
    "-CA",
    path("ca.pem"),
    "-CAkey",
    path("ca.key"),
    "-CAcreateserial",
    "-extfile",
    path("leaf.ext"),
    "-out",
    path("leaf.pem"),
  ]);

  return {
    caPath: path("ca.pem"),
    cert: readFileSync(path("leaf.pem"), "utf8"),
    key: readFileSync(path("leaf.key"), "utf8"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function openssl(args: string[]): void {
  const result = Bun.spawnSync(["openssl", ...args], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) {
    throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`);
  }
}
