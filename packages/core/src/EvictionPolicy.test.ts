import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as EvictionPolicy from "./EvictionPolicy.ts"

// -----------------------------------------------------------------------------
// Reference models: obviously-correct, O(n), written from the policy definitions.
// -----------------------------------------------------------------------------

interface Model {
  insert(key: number): void
  access(key: number): void
  update(key: number): void
  remove(key: number): void
  victim(): number | undefined
}

const listModel = (reorder: boolean): Model => {
  let keys: Array<number> = [] // oldest first
  const touch = (k: number) => {
    if (!reorder) return
    keys = keys.filter((x) => x !== k)
    keys.push(k)
  }
  return {
    insert: (k) => void keys.push(k),
    access: touch,
    update: touch,
    remove: (k) => void (keys = keys.filter((x) => x !== k)),
    victim: () => keys[0]
  }
}

/** LFU: victim = min (count, last-touch stamp); every `factor × size` counted ops, halve and re-stamp in order. */
const lfuModel = (factor: number): Model => {
  const entries = new Map<number, { count: number; stamp: number }>()
  let seq = 0
  let ops = 0
  const order = () =>
    Array.from(entries.entries()).sort((a, b) => a[1].count - b[1].count || a[1].stamp - b[1].stamp)
  const counted = () => {
    ops++
    if (ops >= factor * entries.size) {
      ops = 0
      for (const [k, e] of order()) entries.set(k, { count: Math.max(1, e.count >> 1), stamp: seq++ })
    }
  }
  const touch = (k: number) => {
    const e = entries.get(k)!
    entries.set(k, { count: e.count + 1, stamp: seq++ })
    counted()
  }
  return {
    insert: (k) => {
      entries.set(k, { count: 1, stamp: seq++ })
      counted()
    },
    access: touch,
    update: touch,
    remove: (k) => void entries.delete(k),
    victim: () => order()[0]?.[0]
  }
}

type Op = { op: "insert" | "access" | "update" | "remove"; key: number }
const opArb: fc.Arbitrary<Op> = fc.record({
  op: fc.constantFrom("insert" as const, "access" as const, "update" as const, "remove" as const),
  key: fc.integer({ min: 0, max: 7 })
})

/** Drives a policy and its model with the same valid event sequence; victims must agree after every step. */
const agrees = (make: () => EvictionPolicy.EvictionPolicy<number>, model: () => Model) =>
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
      const policy = make()
      const m = model()
      const held = new Set<number>()
      for (const { key, op } of ops) {
        if (op === "insert") {
          if (held.has(key)) continue
          held.add(key)
          policy.onInsert(key)
          m.insert(key)
        } else {
          if (!held.has(key)) continue
          if (op === "remove") {
            held.delete(key)
            policy.onRemove(key)
            m.remove(key)
          } else if (op === "access") {
            policy.onAccess(key)
            m.access(key)
          } else {
            policy.onUpdate(key)
            m.update(key)
          }
        }
        if (policy.victim() !== m.victim()) return false
      }
      return true
    }),
    { numRuns: 300 }
  )

describe("EvictionPolicy", () => {
  describe("model-based (random insert/access/update/remove, same victim after every step)", () => {
    it("lru", () => agrees(EvictionPolicy.lru, () => listModel(true)))
    it("fifo", () => agrees(EvictionPolicy.fifo, () => listModel(false)))
    it("lfu (default ageing, factor 10)", () => agrees(() => EvictionPolicy.lfu(), () => lfuModel(10)))
    it("lfu (aggressive ageing, factor 1)", () =>
      agrees(() => EvictionPolicy.lfu({ ageFactor: 1 }), () => lfuModel(1)))
    it("lfu (no ageing)", () => agrees(() => EvictionPolicy.lfu({ ageFactor: Infinity }), () => lfuModel(Infinity)))
  })

  it("lru: a read moves the key to the back", () => {
    const p = EvictionPolicy.lru<string>()
    p.onInsert("a")
    p.onInsert("b")
    expect(p.victim()).toBe("a")
    p.onAccess("a")
    expect(p.victim()).toBe("b")
  })

  it("fifo never reorders on update or read", () => {
    const p = EvictionPolicy.fifo<string>()
    p.onInsert("a")
    p.onInsert("b")
    p.onUpdate("a")
    p.onAccess("a")
    expect(p.victim()).toBe("a")
  })

  it("lfu breaks ties by recency (least recently used of the least frequent goes first)", () => {
    const p = EvictionPolicy.lfu<string>({ ageFactor: Infinity })
    p.onInsert("a")
    p.onInsert("b")
    p.onAccess("a")
    p.onAccess("b") // both at 2; a was touched first
    expect(p.victim()).toBe("a")
    p.onAccess("a") // a: 3, b: 2
    expect(p.victim()).toBe("b")
  })

  it("seed defect: LFU never ages, so new entries starve — here old hot counts are halved away", () => {
    // Without ageing, "old" (read 1,000 times long ago) outranks any newcomer forever.
    const aged = EvictionPolicy.lfu<string>()
    const unaged = EvictionPolicy.lfu<string>({ ageFactor: Infinity })
    for (const p of [aged, unaged]) {
      p.onInsert("old")
      for (let i = 0; i < 1000; i++) p.onAccess("old")
      p.onInsert("new")
      // The newcomer becomes the popular one: read 100 times.
      for (let i = 0; i < 100; i++) p.onAccess("new")
    }
    expect(unaged.victim()).toBe("new") // the starvation the seed library had
    expect(aged.victim()).toBe("old") // counts were halved repeatedly; the stale hot key goes
  })

  it("built-in policies are O(1): 200k operations on 100k keys stay fast", () => {
    for (const make of [EvictionPolicy.lru, EvictionPolicy.fifo, () => EvictionPolicy.lfu<number>()]) {
      const p = make()
      const n = 100_000
      const start = performance.now()
      for (let i = 0; i < n; i++) p.onInsert(i)
      for (let i = 0; i < n; i++) {
        p.onAccess((i * 7919) % n)
        const v = p.victim()!
        p.onRemove(v)
        p.onInsert(n + i)
      }
      // An O(n) victim scan would take ~n²/2 = 5·10⁹ steps here; O(1) takes milliseconds.
      expect(performance.now() - start).toBeLessThan(2_000)
    }
  })

  it("fromConfig maps the seed's TTL policy to FIFO", () => {
    const p = EvictionPolicy.fromConfig("ttl")<string>()
    expect(p.name).toBe("fifo")
    expect(EvictionPolicy.fromConfig("lfu")<string>().name).toBe("lfu")
    expect(EvictionPolicy.fromConfig(EvictionPolicy.lru)<string>().name).toBe("lru")
  })
})
