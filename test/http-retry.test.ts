import { describe, expect, test } from "bun:test";

import {
  backoffDelay,
  formatDelay,
  isCertificateError,
  isRetryableStatus,
  parseRetryAfter,
  sleep,
} from "../src/source/retry.ts";

describe("backoffDelay", () => {
  const middle = () => 0.5;

  test("first wait is the base", () => {
    expect(backoffDelay(1, 1000, 30_000, middle)).toBe(1000);
  });

  test("doubles per failure", () => {
    expect(backoffDelay(4, 1000, 30_000, middle)).toBe(8000);
  });

  test("caps at the maximum", () => {
    expect(backoffDelay(20, 1000, 30_000, middle)).toBe(30_000);
  });

  test("jitter stays within 20%", () => {
    expect(backoffDelay(1, 1000, 30_000, () => 0)).toBe(800);
    expect(backoffDelay(1, 1000, 30_000, () => 0.999_999)).toBe(1200);
  });

  test("jitter never exceeds the cap", () => {
    expect(backoffDelay(20, 1000, 30_000, () => 0.999_999)).toBe(30_000);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2025-03-01T12:00:00Z");

  test("reads delay seconds", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000);
  });

  test("reads an HTTP date", () => {
    const value = "Sat, 01 Mar 2025 12:00:30 GMT";

    expect(parseRetryAfter(value, now)).toBe(30_000);
  });

  test("past date means now", () => {
    expect(parseRetryAfter("Sat, 01 Mar 2025 11:00:00 GMT", now)).toBe(0);
  });

  test("invalid value is ignored", () => {
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-5", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe("isRetryableStatus", () => {
  for (const status of [408, 429, 500, 502, 503, 504]) {
    test(`${status} is retried`, () => {
      expect(isRetryableStatus(status)).toBe(true);
    });
  }
  for (const status of [400, 401, 403, 404, 410, 416]) {
    test(`${status} is final`, () => {
      expect(isRetryableStatus(status)).toBe(false);
    });
  }
});

describe("isCertificateError", () => {
  test("recognises certificate codes", () => {
    const error = Object.assign(new Error("x"), {
      code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    });

    expect(isCertificateError(error)).toBe(true);
  });

  test("ignores connection codes", () => {
    const error = Object.assign(new Error("x"), { code: "ECONNRESET" });

    expect(isCertificateError(error)).toBe(false);
  });
});

describe("formatDelay", () => {
  test("milliseconds below a second", () => {
    expect(formatDelay(250)).toBe("250 ms");
  });

  test("one decimal below ten seconds", () => {
    expect(formatDelay(1500)).toBe("1.5 s");
  });

  test("whole seconds above", () => {
    expect(formatDelay(30_000)).toBe("30 s");
  });
});

describe("sleep", () => {
  test("rejects when aborted", async () => {
    const controller = new AbortController();
    const sleeping = sleep(60_000, controller.signal);
    controller.abort(new Error("stop"));

    await expect(sleeping).rejects.toThrow("stop");
  });
});
