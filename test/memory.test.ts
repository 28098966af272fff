import { describe, expect, test } from "bun:test";

import {
  collectGarbage,
  GarbageCollectionPacer,
} from "../src/runtime/memory.ts";

describe("GarbageCollectionPacer", () => {
  test("collects once per interval", () => {
    let collections = 0;
    const pacer = new GarbageCollectionPacer(1000, () => collections++);

    pacer.count(999);
    expect(collections).toBe(0);
    pacer.count(1);
    expect(collections).toBe(1);
    pacer.count(600);
    pacer.count(600);
    expect(collections).toBe(2);
  });

  test("restarts the count after collecting", () => {
    let collections = 0;
    const pacer = new GarbageCollectionPacer(1000, () => collections++);

    pacer.count(1500);
    pacer.count(900);
    expect(collections).toBe(1);
  });
});

describe("collectGarbage", () => {
  test("runs on Bun without throwing", () => {
    expect(() => collectGarbage()).not.toThrow();
  });
});
