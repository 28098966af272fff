import { afterEach, describe, expect, test } from "bun:test";

import {
  addSecret,
  addUrlSecrets,
  clearSecrets,
  redact,
  redactText,
  redactUrl,
} from "../src/redact.ts";

afterEach(() => clearSecrets());

describe("redactUrl", () => {
  test("masks the password", () => {
    expect(redactUrl("https://user:pw@host/a/b")).toBe("https://***@host/a/b");
  });

  test("masks a token user name", () => {
    expect(redactUrl("https://ghp_token@host/x")).toBe("https://***@host/x");
  });

  test("masks the query string", () => {
    expect(redactUrl("https://host:8443/f.tar.zst?sig=abc&exp=1")).toBe(
      "https://host:8443/f.tar.zst?***",
    );
  });

  test("drops the fragment", () => {
    expect(redactUrl("http://host/f#frag")).toBe("http://host/f");
  });

  test("keeps a plain URL", () => {
    expect(redactUrl("http://127.0.0.1:8080/image.tar.zst")).toBe(
      "http://127.0.0.1:8080/image.tar.zst",
    );
  });

  test("masks an unparsable URL", () => {
    expect(redactUrl("http://u:p@[bad/x?s=1")).toBe("http://***@[bad/x?***");
  });
});

describe("redactText", () => {
  test("masks given values", () => {
    expect(redactText("token abcdef1 used", ["abcdef1"])).toBe(
      "token *** used",
    );
  });

  test("masks the longest value first", () => {
    expect(redactText("key abcdefgh", ["abcd", "abcdefgh"])).toBe("key ***");
  });

  test("masks URLs inside text", () => {
    const text = "GET https://u:secret@host/f?sig=1: failed";

    expect(redactText(text, [])).toBe("GET https://***@host/f?***: failed");
  });

  test("keeps sentence punctuation", () => {
    expect(redactText("see http://host/f?x=1.", [])).toBe(
      "see http://host/f?***.",
    );
  });
});

describe("secret registry", () => {
  test("masks a registered value", () => {
    addSecret("Bearer s3cr3t-token");

    expect(redact("header Bearer s3cr3t-token")).toBe("header ***");
  });

  test("masks the credentials part", () => {
    addSecret("Bearer s3cr3t-token");

    expect(redact("token s3cr3t-token")).toBe("token ***");
  });

  test("masks percent-encoded forms", () => {
    addSecret("p@ss/word!");

    expect(redact("p%40ss%2Fword!")).toBe("***");
  });

  test("ignores short values", () => {
    addSecret("abc");

    expect(redact("abc")).toBe("abc");
  });

  test("registers URL parts", () => {
    addUrlSecrets("https://deployer:hunter22@host/f?X-Sig=abcdef123456&e=1");

    expect(redact("user deployer")).toBe("user ***");
    expect(redact("pw hunter22")).toBe("pw ***");
    expect(redact("sig abcdef123456")).toBe("sig ***");
  });

  test("clearSecrets forgets values", () => {
    addSecret("forget-me-please");
    clearSecrets();

    expect(redact("forget-me-please")).toBe("forget-me-please");
  });
});
