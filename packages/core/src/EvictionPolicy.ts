/**
 * Pluggable eviction for {@link KeyedCache}: a policy decides **which** key leaves a full cache. It never
 * stores values and never decides **when** something leaves (capacity and time-to-live are the cache's
 * job), so a policy is a small, synchronous bookkeeping object a user can write in a few lines.
 *
 * Built in, each O(1) per operation (no scans):
 *
 * | policy   | victim                                              | structure                                |
 * | -------- | --------------------------------------------------- | ---------------------------------------- |
 * | `lru`    | least recently read or written                      | doubly linked list                       |
 * | `lfu`    | least frequently used; ties → least recently used   | frequency buckets, each a linked list    |
 * | `fifo`   | oldest insertion; reads and updates never reorder   | doubly linked list                       |
 *
 * **TTL.** The seed library's `TTL` policy ("evict after expiry") is not a victim-selection rule; it is
 * expire-after-write, which {@link KeyedCache} applies to every entry whatever the policy. The seed's
 * `CachePolicyTTL` therefore maps to `fifo` + `timeToLive`: with one TTL for every entry the oldest
 * insertion is also the first to expire, so a full cache drops the entry closest to expiry. `"ttl"` is
 * accepted as a config alias for exactly that.
 *
 * **LFU ageing.** Counts are halved (`f → max(1, ⌊f/2⌋)`) after `ageFactor × size` counted operations
 * (inserts, reads, updates; default factor 10, as Caffeine's TinyLFU resets after 10 × maximum size).
 * A halving pass walks the buckets once: O(size) work every ≥ 10 × size operations, O(1) amortised. When
 * two buckets fold into one, the keys of the lower old frequency come first (are evicted first), then
 * the others, each keeping its recency order. So a hot key from long ago loses its advantage and a new
 * entry cannot be starved forever.
 *
 * @since 0.1.0
 */

/**
 * Victim selection for a bounded cache. The cache calls exactly one hook per key event, always
 * synchronously and never re-entrantly:
 *
 * - `onInsert(key)` — a key that was absent is now held (after the cache made room for it);
 * - `onAccess(key)` — a held key was read (a hit);
 * - `onUpdate(key)` — a held key's value was replaced;
 * - `onRemove(key)` — a held key is gone, whatever the reason (evicted, expired, invalidated);
 * - `victim()` — the key to evict next, or `undefined` when empty. It must not change state: the cache
 *   removes the key and then calls `onRemove`.
 *
 * Updating a held key never calls `victim()`, so no policy can make an update evict another key.
 *
 * **Example** (a custom "evict the lexicographically largest key" policy, O(n) but legal)
 *
 * ```ts
 * const largestFirst = <K extends string>(): EvictionPolicy<K> => {
 *   const keys = new Set<K>()
 *   return {
 *     name: "largest-first",
 *     onInsert: (k) => void keys.add(k),
 *     onAccess: () => {},
 *     onUpdate: () => {},
 *     onRemove: (k) => void keys.delete(k),
 *     victim: () => [...keys].sort().at(-1),
 *     clear: () => keys.clear()
 *   }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface EvictionPolicy<in out K> {
  /** A short name for logs and `toJSON`. */
  readonly name: string
  onInsert(key: K): void
  onAccess(key: K): void
  onUpdate(key: K): void
  onRemove(key: K): void
  victim(): K | undefined
  /** Forget every key (the cache was cleared). */
  clear(): void
}

/**
 * Builds a fresh policy for one cache. Config takes a factory, not an instance, so two caches never share
 * bookkeeping.
 *
 * @since 0.1.0
 * @category models
 */
export type EvictionPolicyFactory = <K>() => EvictionPolicy<K>

/**
 * The names of the built-in policies, as accepted by cache config. `"ttl"` is FIFO (see the module doc).
 *
 * @since 0.1.0
 * @category models
 */
export type EvictionPolicyName = "lru" | "lfu" | "fifo" | "ttl"

// -----------------------------------------------------------------------------
// A doubly linked list of keys (shared by LRU, FIFO and each LFU bucket)
// -----------------------------------------------------------------------------

interface Node<K> {
  readonly key: K
  prev: Node<K> | undefined
  next: Node<K> | undefined
}

/** head = oldest, tail = newest. */
interface List<K> {
  head: Node<K> | undefined
  tail: Node<K> | undefined
}

const append = <K>(list: List<K>, node: Node<K>): void => {
  node.prev = list.tail
  node.next = undefined
  if (list.tail === undefined) list.head = node
  else list.tail.next = node
  list.tail = node
}

const unlink = <K>(list: List<K>, node: Node<K>): void => {
  if (node.prev === undefined) list.head = node.next
  else node.prev.next = node.next
  if (node.next === undefined) list.tail = node.prev
  else node.next.prev = node.prev
  node.prev = undefined
  node.next = undefined
}

const makeListPolicy = <K>(name: string, reorderOnTouch: boolean): EvictionPolicy<K> => {
  const nodes = new Map<K, Node<K>>()
  const list: List<K> = { head: undefined, tail: undefined }
  const touch = (key: K): void => {
    const node = nodes.get(key)
    if (node !== undefined && node !== list.tail) {
      unlink(list, node)
      append(list, node)
    }
  }
  const noop = (_key: K): void => {}
  return {
    name,
    onInsert(key) {
      if (nodes.has(key)) return touch(key)
      const node: Node<K> = { key, prev: undefined, next: undefined }
      nodes.set(key, node)
      append(list, node)
    },
    onAccess: reorderOnTouch ? touch : noop,
    onUpdate: reorderOnTouch ? touch : noop,
    onRemove(key) {
      const node = nodes.get(key)
      if (node === undefined) return
      nodes.delete(key)
      unlink(list, node)
    },
    victim: () => list.head?.key,
    clear() {
      nodes.clear()
      list.head = list.tail = undefined
    }
  }
}

/**
 * Least recently used: reads and updates move a key to the back; the victim is the front.
 *
 * @since 0.1.0
 * @category constructors
 */
export const lru = <K>(): EvictionPolicy<K> => makeListPolicy<K>("lru", true)

/**
 * First in, first out: only insertion order counts. Reads and updates never reorder, so an updated key
 * keeps its place in the queue.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fifo = <K>(): EvictionPolicy<K> => makeListPolicy<K>("fifo", false)

// -----------------------------------------------------------------------------
// LFU: frequency buckets (O(1) LFU, Shah–Mitra–Matani 2010) with periodic halving
// -----------------------------------------------------------------------------

interface Bucket<K> extends List<K> {
  freq: number
  prevBucket: Bucket<K> | undefined
  nextBucket: Bucket<K> | undefined
}

interface LfuNode<K> extends Node<K> {
  bucket: Bucket<K>
}

/**
 * Options of {@link lfu}.
 *
 * @since 0.1.0
 * @category models
 */
export interface LfuOptions {
  /**
   * Halve every count after `ageFactor × size` counted operations (inserts, reads and updates).
   * Default 10. `Infinity` turns ageing off (not recommended: old hot keys then starve new ones).
   */
  readonly ageFactor?: number | undefined
}

/**
 * Least frequently used, with ties broken by recency (least recently used goes first) and counts aged by
 * periodic halving so new entries are not starved (see the module doc). A new key starts at count 1; a
 * read or an update adds 1.
 *
 * @since 0.1.0
 * @category constructors
 */
export const lfu = <K>(options?: LfuOptions): EvictionPolicy<K> => {
  const ageFactor = options?.ageFactor ?? 10
  const nodes = new Map<K, LfuNode<K>>()
  // Buckets sorted by ascending frequency; `first` is the lowest.
  let first: Bucket<K> | undefined
  let ops = 0

  const newBucket = (freq: number, prev: Bucket<K> | undefined, next: Bucket<K> | undefined): Bucket<K> => {
    const b: Bucket<K> = { freq, head: undefined, tail: undefined, prevBucket: prev, nextBucket: next }
    if (prev === undefined) first = b
    else prev.nextBucket = b
    if (next !== undefined) next.prevBucket = b
    return b
  }
  const dropIfEmpty = (b: Bucket<K>): void => {
    if (b.head !== undefined) return
    if (b.prevBucket === undefined) first = b.nextBucket
    else b.prevBucket.nextBucket = b.nextBucket
    if (b.nextBucket !== undefined) b.nextBucket.prevBucket = b.prevBucket
  }
  const age = (): void => {
    let b = first
    let kept: Bucket<K> | undefined
    while (b !== undefined) {
      const next = b.nextBucket
      const freq = Math.max(1, b.freq >> 1)
      if (kept !== undefined && kept.freq === freq) {
        // Fold b into kept: b's keys (higher old frequency) go after kept's keys.
        for (let n = b.head as LfuNode<K> | undefined; n !== undefined; n = n.next as LfuNode<K> | undefined) {
          n.bucket = kept
        }
        if (b.head !== undefined) {
          if (kept.tail === undefined) kept.head = b.head
          else {
            kept.tail.next = b.head
            b.head.prev = kept.tail
          }
          kept.tail = b.tail
        }
        kept.nextBucket = next
        if (next !== undefined) next.prevBucket = kept
      } else {
        b.freq = freq
        kept = b
      }
      b = next
    }
  }
  const counted = (): void => {
    ops++
    if (ops >= ageFactor * nodes.size) {
      ops = 0
      age()
    }
  }
  const increment = (node: LfuNode<K>): void => {
    const from = node.bucket
    const freq = from.freq + 1
    let to = from.nextBucket
    if (to === undefined || to.freq !== freq) to = newBucket(freq, from, to)
    unlink(from, node)
    node.bucket = to
    append(to, node)
    dropIfEmpty(from)
  }
  const touch = (key: K): void => {
    const node = nodes.get(key)
    if (node === undefined) return
    increment(node)
    counted()
  }
  return {
    name: "lfu",
    onInsert(key) {
      if (nodes.has(key)) return touch(key)
      let b = first
      if (b === undefined || b.freq !== 1) b = newBucket(1, undefined, b)
      const node: LfuNode<K> = { key, prev: undefined, next: undefined, bucket: b }
      nodes.set(key, node)
      append(b, node)
      counted()
    },
    onAccess: touch,
    onUpdate: touch,
    onRemove(key) {
      const node = nodes.get(key)
      if (node === undefined) return
      nodes.delete(key)
      const b = node.bucket
      unlink(b, node)
      dropIfEmpty(b)
    },
    victim: () => first?.head?.key,
    clear() {
      nodes.clear()
      first = undefined
      ops = 0
    }
  }
}

/**
 * Resolves a config value (a built-in name or a custom factory) to a factory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromConfig = (policy: EvictionPolicyName | EvictionPolicyFactory): EvictionPolicyFactory => {
  if (typeof policy === "function") return policy
  switch (policy) {
    case "lru":
      return lru
    case "lfu":
      return lfu
    case "fifo":
    case "ttl":
      return fifo
  }
}
