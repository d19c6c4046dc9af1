// BTree<K, V>: a B+tree over 4 KiB arena pages with fixed-size, trivially copyable keys
// and values, ordered by Compare. One generic tree serves every index of the store: the
// page map ((ino, page index) -> data page), directory entries by cookie ((dir, cookie) ->
// entry slot) and by name hash ((dir, hash(name), slot), no value), the dedupe index.
//
// Node layout (format.hpp NodeHeader, then an array of entry slots; the entries are the
// slots [start, start + count), start + count <= the level's cap):
//   leaf   {K key; V value}[count], keys strictly increasing
//   inner  {K key; u32 child}[count] (count = children); entry 0's key is unused; for
//          i >= 1 key[i] is a lower bound of child i and above every key of child i - 1
// No sibling links: a Cursor keeps its path from the root, so a split or merge changes
// only the nodes on one path and their immediate siblings.
//
// Invariants (check(), run by Region::check through the TreeSpec):
//   every leaf at depth height - 1; keys ordered within the bounds the separators give;
//   a non-root leaf holds at least leaf_cap / 2 entries, a non-root inner node at least
//   inner_cap / 2 children, an inner root at least 2; count and nodes add up; every node is
//   an arena page used once. Hence a hard bound on memory per live entry whatever the
//   workload (btree_max_nodes): a tree of E entries uses at most about E / (leaf_cap / 2)
//   pages; erase rebalances (redistributes or merges) so the bound holds after any mix of
//   inserts and erases.
//
// Moving entries inside a node costs their bytes twice (the undo log copies what they
// overwrite), so a change moves the shorter side: a removal near the front moves the
// entries before it up and raises start, one near the back moves those after it down; an
// insert moves the entries before it down into the front gap or those after it up. A
// node whose back is full takes a back insert by moving everything down by half its
// front gap, so a queue-like tree (the cookie tree: appended at the back, removed from
// the front) moves each entry about once per half gap instead of once per removal. A
// split leaves the old node's half where it was and centres the fresh half in its slots
// (an append's fresh half starts at slot 0: appends keep going at the back), so that
// random inserts find room at either end (the name tree).
//
// Crash rules: every node change goes through the Tx: an insert into a node logs the
// shifted range and the new slot; a split copies into a fresh page (no undo) and logs the
// old node's count and start (and the parent's child word when the fresh page becomes
// the left node); a merge logs the receiving range and frees the emptied page (punched
// at commit). Nothing here writes outside a tx. Readers (find, lower_bound, Cursor) take no
// lock: the caller keeps them away from a tree while a tx changes it, and a Cursor is
// invalid after any change to its tree. Note that "changes it" means any change to the
// tree, not only to the reader's keys: a split or merge moves other keys between nodes,
// so a tree shared by all inodes (the page map) needs a lock of its own (readers shared
// while they walk it, txs that change it exclusive); a per-inode lock is not enough.
//
// Space: insert() checks first that the arena has a page for every split it may need
// and returns ENOSPC without changing anything when not. erase() never allocates.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>

#include "shm/persist/page_pool.hpp"
#include "shm/persist/region.hpp"
#include "shm/persist/tx.hpp"

namespace hostchanfs::shm::persist {

// The most nodes a tree of `entries` entries can use while its fill invariants hold.
constexpr std::uint64_t btree_max_nodes(std::uint64_t entries, std::uint32_t leaf_cap,
                                        std::uint32_t inner_cap) {
  if (entries == 0) return 0;
  std::uint64_t n = std::max<std::uint64_t>(1, entries / (leaf_cap / 2));
  std::uint64_t total = n;
  while (n > 1) {
    n = std::max<std::uint64_t>(1, n / (inner_cap / 2));
    total += n;
  }
  return total;
}

inline constexpr std::uint32_t kMaxTreeHeight = 40;

// A key or value type for which "no value" takes no room in a leaf.
struct Empty {
  friend constexpr bool operator==(Empty, Empty) { return true; }
};

template <class K, class V, class Compare = std::less<K>>
class BTree {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>);
  static_assert(alignof(K) <= 8 && alignof(V) <= 8);

 public:
  struct Leaf {
    K key;
    [[no_unique_address]] V value;
  };
  struct Inner {
    K key;
    std::uint32_t child;
  };
  static constexpr std::uint32_t kLeafMax = static_cast<std::uint32_t>(kNodePayload / sizeof(Leaf));
  static constexpr std::uint32_t kInnerMax = static_cast<std::uint32_t>(kNodePayload / sizeof(Inner));

  BTree(const Region& region, std::size_t index)
      : region_(&region), index_(index), d_(&region.header().tree[index]), arena_(region, 0) {
    if (index >= region.header().trees || d_->key_size != sizeof(K) || d_->value_size != sizeof(V) ||
        d_->leaf_cap > kLeafMax || d_->inner_cap > kInnerMax || d_->leaf_cap < 4 || d_->inner_cap < 4)
      fatal("tree " + std::to_string(index) + " does not hold these key and value types");
  }

  std::uint64_t size() const noexcept { return d_->count; }
  bool empty() const noexcept { return d_->count == 0; }
  std::uint32_t height() const noexcept { return d_->height; }
  std::uint64_t nodes() const noexcept { return d_->nodes; }
  std::uint32_t leaf_cap() const noexcept { return d_->leaf_cap; }
  std::uint32_t inner_cap() const noexcept { return d_->inner_cap; }
  std::uint64_t max_nodes() const noexcept { return btree_max_nodes(d_->count, d_->leaf_cap, d_->inner_cap); }

  // Log bytes one insert, erase or erase_range step may need at most: callers of a long
  // tx compare it with Tx::log_room() to know when to commit and begin the next.
  // Per level at most three nodes change (a node, its sibling, their parent), each logged
  // once whole at worst, plus counts, an allocation or a free; one level more for a root.
  std::size_t worst_log_bytes() const noexcept {
    const std::size_t node_bytes = std::max<std::size_t>(d_->leaf_cap * sizeof(Leaf), d_->inner_cap * sizeof(Inner));
    return (d_->height + 2) * (3 * Tx::record_bytes(node_bytes) + 12 * Tx::record_bytes(8) + 128);
  }

  // --- reading (no lock; see the crash rules above) ---
  struct Path {
    std::uint32_t levels = 0;
    std::uint32_t node[kMaxTreeHeight];
    std::uint32_t pos[kMaxTreeHeight];
  };

  class Cursor {
   public:
    bool valid() const noexcept { return valid_; }
    const K& key() const noexcept { return leaf()->key; }
    const V& value() const noexcept { return leaf()->value; }
    void next() {
      if (!valid_) return;
      if (++path_.pos[0] >= tree_->node(path_.node[0])->count) valid_ = tree_->next_leaf(path_);
    }

   private:
    friend class BTree;
    const Leaf* leaf() const noexcept { return &tree_->leaves(tree_->node(path_.node[0]))[path_.pos[0]]; }
    const BTree* tree_ = nullptr;
    Path path_{};
    bool valid_ = false;
  };

  std::optional<V> find(const K& key) const {
    if (d_->root == kNoNode) return std::nullopt;
    std::uint32_t id = d_->root;
    for (std::uint32_t level = d_->height - 1; level > 0; --level) id = inners(node(id))[child_index(node(id), key)].child;
    const NodeHeader* n = node(id);
    std::uint32_t pos = leaf_pos(n, key);
    if (pos == n->count || cmp_(key, leaves(n)[pos].key)) return std::nullopt;
    return leaves(n)[pos].value;
  }
  bool contains(const K& key) const { return find(key).has_value(); }

  // The first entry with a key not less than `key`.
  Cursor lower_bound(const K& key) const {
    Cursor c;
    c.tree_ = this;
    if (d_->root == kNoNode) return c;
    descend(key, c.path_);
    c.valid_ = c.path_.pos[0] < node(c.path_.node[0])->count || next_leaf(c.path_);
    return c;
  }
  Cursor begin() const {
    Cursor c;
    c.tree_ = this;
    if (d_->root == kNoNode) return c;
    c.path_.levels = d_->height;
    leftmost(d_->root, d_->height - 1, c.path_);
    c.valid_ = true;
    return c;
  }

  // --- changing (inside a tx) ---
  // false when the key is there already (nothing changes). ENOSPC when the arena has no
  // page for a split (nothing changes either).
  Result<bool> insert(Tx& tx, const K& key, const V& value) {
    const Leaf entry{key, value};
    if (d_->root == kNoNode) {
      if (arena_available() < 1) return std::errc::no_space_on_device;
      std::uint32_t id = alloc_node(tx, 0, 1, 0);
      tx.fresh(leaves(node(id)), &entry, sizeof entry);
      tx.set(d_->root, id);
      tx.set(d_->height, std::uint32_t{1});
      tx.set(d_->count, std::uint64_t{1});
      return true;
    }
    Path path;
    descend(key, path);
    NodeHeader* leaf = node(path.node[0]);
    std::uint32_t pos = path.pos[0];
    if (pos < leaf->count && !cmp_(key, leaves(leaf)[pos].key)) return false;
    // Splits climb as long as the nodes are full; each takes a page, the root one more.
    std::uint64_t need = 0;
    for (std::uint32_t level = 0; level < d_->height; ++level) {
      if (node(path.node[level])->count < cap(level)) break;
      need += (level + 1 == d_->height) ? 2 : 1;
    }
    if (arena_available() < need) return std::errc::no_space_on_device;
    insert_entry<Leaf>(tx, path, 0, pos, entry);
    tx.set(d_->count, d_->count + 1);
    return true;
  }

  // Replace the value of an existing key; false when the key is absent.
  bool update(Tx& tx, const K& key, const V& value) {
    if (d_->root == kNoNode) return false;
    Path path;
    descend(key, path);
    NodeHeader* leaf = node(path.node[0]);
    std::uint32_t pos = path.pos[0];
    if (pos == leaf->count || cmp_(key, leaves(leaf)[pos].key)) return false;
    if constexpr (!std::is_empty_v<V>) tx.set(leaves(leaf)[pos].value, value);
    return true;
  }

  // The value that was there, or nullopt when the key was absent.
  std::optional<V> erase(Tx& tx, const K& key) {
    if (d_->root == kNoNode) return std::nullopt;
    Path path;
    descend(key, path);
    NodeHeader* leaf = node(path.node[0]);
    std::uint32_t pos = path.pos[0];
    if (pos == leaf->count || cmp_(key, leaves(leaf)[pos].key)) return std::nullopt;
    V old = leaves(leaf)[pos].value;
    remove_range<Leaf>(tx, leaf, pos, pos + 1);
    tx.set(d_->count, d_->count - 1);
    rebalance(tx, path, 0);
    return old;
  }

  // Log bytes on_erase may use per entry (e.g. a deferred free of the page it names).
  static constexpr std::size_t kEraseCallbackLog = 1024;

  struct RangeErase {
    std::uint64_t erased = 0;
    bool done = false;  // false: entries of the range are left; commit, then call again
  };
  // Erase the entries with lo <= key < hi, at most `max_entries` of them, and fewer when
  // the tx's log runs short (worst_log_bytes). `on_erase(key, value)` sees each entry
  // before it goes (e.g. to free the data page it names); it must not change this tree
  // and may use up to kEraseCallbackLog bytes of the log per entry.
  template <class OnErase>
  RangeErase erase_range(Tx& tx, const K& lo, const K& hi, std::uint64_t max_entries, OnErase&& on_erase) {
    RangeErase r;
    for (;;) {
      if (d_->root == kNoNode) {
        r.done = true;
        return r;
      }
      Path path;
      descend(lo, path);
      if (path.pos[0] == node(path.node[0])->count && !next_leaf(path)) {
        r.done = true;
        return r;
      }
      NodeHeader* leaf = node(path.node[0]);
      Leaf* e = leaves(leaf);
      std::uint32_t a = path.pos[0];
      if (!cmp_(e[a].key, hi)) {
        r.done = true;
        return r;
      }
      const std::size_t room = worst_log_bytes() + kEraseCallbackLog;
      if (r.erased >= max_entries) return r;
      if (tx.log_room() < room) {
        if (r.erased == 0 && tx.log_used() == 0) fatal("the tx log is too small for one step of an erase_range");
        return r;
      }
      std::uint32_t b = a;
      while (b < leaf->count && r.erased + (b - a) < max_entries && cmp_(e[b].key, hi) &&
             (b == a || tx.log_room() >= room)) {
        on_erase(K(e[b].key), V(e[b].value));
        ++b;
      }
      remove_range<Leaf>(tx, leaf, a, b);
      tx.set(d_->count, d_->count - (b - a));
      r.erased += b - a;
      rebalance(tx, path, 0);
    }
  }

  // The checker TreeSpec::check points at (Region::check runs it).
  static void check(const Region& region, std::size_t index, CheckContext& ctx) {
    const TreeDesc& d = region.header().tree[index];
    BTree t(region, index);
    std::string name = "tree " + std::string(d.name, strnlen(d.name, kNameLen));
    if (d.root == kNoNode) {
      if (d.height != 0 || d.count != 0 || d.nodes != 0)
        ctx.fail(name + " has no root but a height, entries or nodes");
      return;
    }
    if (d.height == 0 || d.height > kMaxTreeHeight) return ctx.fail(name + " has height " + std::to_string(d.height));
    Walk w{t, ctx, name, 0, 0};
    w.visit(d.root, d.height - 1, nullptr, nullptr, true);
    if (!ctx.ok()) return;
    if (w.entries != d.count)
      return ctx.fail(name + " holds " + std::to_string(w.entries) + " entries, its count says " + std::to_string(d.count));
    if (w.nodes != d.nodes)
      return ctx.fail(name + " uses " + std::to_string(w.nodes) + " nodes, its count says " + std::to_string(d.nodes));
  }

 private:
  friend class Cursor;

  NodeHeader* node(std::uint32_t id) const noexcept { return reinterpret_cast<NodeHeader*>(arena_.page(id)); }
  static Leaf* leaves(const NodeHeader* n) noexcept { return entries<Leaf>(n); }
  static Inner* inners(const NodeHeader* n) noexcept { return entries<Inner>(n); }
  // Slot 0 of the payload; the entries begin at slot n->start.
  template <class E>
  static E* slots(const NodeHeader* n) noexcept {
    return reinterpret_cast<E*>(reinterpret_cast<std::byte*>(const_cast<NodeHeader*>(n)) + sizeof(NodeHeader));
  }
  template <class E>
  static E* entries(const NodeHeader* n) noexcept {
    return slots<E>(n) + n->start;
  }
  std::uint32_t cap(std::uint32_t level) const noexcept { return level ? d_->inner_cap : d_->leaf_cap; }
  std::uint32_t min_fill(std::uint32_t level) const noexcept { return cap(level) / 2; }
  std::uint64_t arena_available() const noexcept {
    return std::uint64_t{arena_.free_on_stack()} + arena_.capacity() - arena_.high_water();
  }

  // The first leaf entry not less than key.
  std::uint32_t leaf_pos(const NodeHeader* n, const K& key) const {
    const Leaf* e = leaves(n);
    return static_cast<std::uint32_t>(
        std::lower_bound(e, e + n->count, key, [this](const Leaf& x, const K& k) { return cmp_(x.key, k); }) - e);
  }
  // The child whose range holds key: the last i with key[i] <= key (entry 0 for none).
  std::uint32_t child_index(const NodeHeader* n, const K& key) const {
    const Inner* e = inners(n);
    const Inner* it = std::upper_bound(e + 1, e + n->count, key, [this](const K& k, const Inner& x) { return cmp_(k, x.key); });
    return static_cast<std::uint32_t>(it - e) - 1;
  }
  void descend(const K& key, Path& path) const {
    if (d_->height == 0 || d_->height > kMaxTreeHeight) fatal("tree descent with height " + std::to_string(d_->height));
    path.levels = d_->height;
    std::uint32_t id = d_->root;
    for (std::uint32_t level = d_->height - 1; level > 0; --level) {
      const NodeHeader* n = node(id);
      std::uint32_t i = child_index(n, key);
      path.node[level] = id;
      path.pos[level] = i;
      id = inners(n)[i].child;
    }
    path.node[0] = id;
    path.pos[0] = leaf_pos(node(id), key);
  }
  void leftmost(std::uint32_t id, std::uint32_t level, Path& path) const {
    for (;; --level) {
      path.node[level] = id;
      path.pos[level] = 0;
      if (level == 0) return;
      id = inners(node(id))[0].child;
    }
  }
  // Move `path` to the first entry of the next leaf; false at the end of the tree.
  bool next_leaf(Path& path) const {
    std::uint32_t level = 1;
    while (level < path.levels && path.pos[level] + 1 >= node(path.node[level])->count) ++level;
    if (level >= path.levels) return false;
    ++path.pos[level];
    leftmost(inners(node(path.node[level]))[path.pos[level]].child, level - 1, path);
    return true;
  }

  std::uint32_t alloc_node(Tx& tx, std::uint32_t level, std::uint16_t count, std::uint32_t start) {
    auto page = arena_.alloc(tx);
    if (!page) fatal("tree arena exhausted after the space check");  // insert() checked
    NodeHeader h{kNodeMagic, count, static_cast<std::uint16_t>(start), static_cast<std::uint8_t>(level),
                 static_cast<std::uint8_t>(index_), 0, 0};
    tx.fresh(node(*page), &h, sizeof h);
    tx.set(d_->nodes, d_->nodes + 1);
    return *page;
  }
  void free_node(Tx& tx, std::uint32_t id) {
    arena_.free(tx, id);
    tx.set(d_->nodes, d_->nodes - 1);
  }
  void set_count(Tx& tx, NodeHeader* n, std::uint32_t count) {
    tx.set(n->count, static_cast<std::uint16_t>(count));
  }
  // count and start side by side: one logged write when both change.
  void set_shape(Tx& tx, NodeHeader* n, std::uint32_t count, std::uint32_t start) {
    if (start == n->start) return set_count(tx, n, count);
    const std::uint16_t shape[2] = {static_cast<std::uint16_t>(count), static_cast<std::uint16_t>(start)};
    tx.write(&n->count, shape, sizeof shape);
  }
  // Move the entries of n to slot 0 (before an append that needs the room at the back).
  template <class E>
  void close_gap(Tx& tx, NodeHeader* n) {
    if (n->start == 0) return;
    if (n->count) tx.move(slots<E>(n), entries<E>(n), n->count * sizeof(E));
    set_shape(tx, n, n->count, 0);
  }

  template <class E>
  void remove_range(Tx& tx, NodeHeader* n, std::uint32_t a, std::uint32_t b) {
    E* e = entries<E>(n);
    const std::uint32_t count = n->count, k = b - a;
    if (a < count - b) {  // fewer entries before the range: they move up
      if (a) tx.move(&e[k], &e[0], a * sizeof(E));
      set_shape(tx, n, count - k, n->start + k);
      return;
    }
    if (b < count) tx.move(&e[a], &e[b], (count - b) * sizeof(E));
    set_count(tx, n, count - k);
  }

  // Insert `entry` at `pos` of the node at `level` of `path`, splitting up the path.
  template <class E>
  void insert_entry(Tx& tx, const Path& path, std::uint32_t level, std::uint32_t pos, const E& entry) {
    NodeHeader* n = node(path.node[level]);
    E* e = entries<E>(n);
    const std::uint32_t count = n->count, start = n->start;
    if (count < cap(level)) {
      const bool back_room = start + count < cap(level), front_half = pos < count - pos;
      if (back_room && (start == 0 || !front_half)) {  // the entries after pos move up
        if (pos < count) tx.move(&e[pos + 1], &e[pos], (count - pos) * sizeof(E));
        tx.write(&e[pos], &entry, sizeof(E));
        set_count(tx, n, count + 1);
      } else if (front_half) {  // the entries before pos move down into the gap
        if (pos) tx.move(&e[-1], &e[0], pos * sizeof(E));
        tx.write(&e[static_cast<std::ptrdiff_t>(pos) - 1], &entry, sizeof(E));
        set_shape(tx, n, count + 1, start - 1);
      } else {  // the back is full: everything moves down by half the gap, leaving a slot at pos
        E* s0 = slots<E>(n) + start / 2;
        if (pos) tx.move(s0, e, pos * sizeof(E));
        tx.move(&s0[pos + 1], &e[pos], (count - pos) * sizeof(E));
        tx.write(&s0[pos], &entry, sizeof(E));
        set_shape(tx, n, count + 1, start / 2);
      }
      return;
    }
    // Split: count + 1 entries, the first s in one node, the rest in another (a full node
    // has no gap: start + count <= cap). The old node keeps the half the new entry is not
    // in, where it is, and a fresh one takes the other half and the entry, centred in its
    // slots; so nothing of the old node moves and both halves keep room for later inserts
    // near either end (the old node's right half keeps a front gap of s - 1 slots).
    const std::uint32_t s = (count + 1) / 2;
    // Where the fresh node's entries sit: an append (the cookie tree's) keeps going at the
    // back, so all its room goes there; any other insert leaves room at both ends.
    auto fresh_start = [&](std::uint32_t c) { return pos == count ? 0 : (cap(level) - c) / 2; };
    const std::uint32_t id = path.node[level];
    const std::uint32_t parent_pos = level + 1 < d_->height ? path.pos[level + 1] : 0;
    std::uint32_t left = id, right = id;
    if (pos < s) {  // a fresh left: e[0, pos), entry, e[pos, s - 1); the old node keeps e[s - 1, count)
      left = alloc_node(tx, level, static_cast<std::uint16_t>(s), fresh_start(s));
      E* l = entries<E>(node(left));
      if (pos) tx.fresh(l, e, pos * sizeof(E));
      tx.fresh(&l[pos], &entry, sizeof(E));
      if (pos < s - 1) tx.fresh(&l[pos + 1], &e[pos], (s - 1 - pos) * sizeof(E));
      set_shape(tx, n, count + 1 - s, start + s - 1);
    } else {  // the old node keeps e[0, s); a fresh right: e[s, pos), entry, e[pos, count)
      const std::uint32_t rc = count + 1 - s;
      right = alloc_node(tx, level, static_cast<std::uint16_t>(rc), fresh_start(rc));
      E* r = entries<E>(node(right));
      if (pos > s) tx.fresh(r, &e[s], (pos - s) * sizeof(E));
      tx.fresh(&r[pos - s], &entry, sizeof(E));
      if (pos < count) tx.fresh(&r[pos - s + 1], &e[pos], (count - pos) * sizeof(E));
      set_count(tx, n, s);
    }
    const K sep = entries<E>(node(right))[0].key;
    if (level + 1 == d_->height) {  // a new root above the two
      std::uint32_t root = alloc_node(tx, level + 1, 2, 0);
      const Inner two[2] = {{sep, left}, {sep, right}};
      tx.fresh(inners(node(root)), two, sizeof two);
      tx.set(d_->root, root);
      tx.set(d_->height, d_->height + 1);
      return;
    }
    // The parent's entry for the old node now names the left one; the right one follows.
    if (left != id) tx.set(inners(node(path.node[level + 1]))[parent_pos].child, left);
    insert_entry<Inner>(tx, path, level + 1, parent_pos + 1, Inner{sep, right});
  }

  // After an erase at `level`: restore the fill bounds up the path.
  void rebalance(Tx& tx, const Path& path, std::uint32_t level) {
    for (;; ++level) {
      std::uint32_t id = path.node[level];
      NodeHeader* n = node(id);
      if (level + 1 == d_->height) {  // the root
        if (level == 0 && n->count == 0) {
          free_node(tx, id);
          tx.set(d_->root, kNoNode);
          tx.set(d_->height, std::uint32_t{0});
        } else if (level > 0 && n->count == 1) {
          tx.set(d_->root, inners(n)[0].child);
          tx.set(d_->height, d_->height - 1);
          free_node(tx, id);
        }
        return;
      }
      if (n->count >= min_fill(level)) return;
      NodeHeader* parent = node(path.node[level + 1]);
      std::uint32_t pi = path.pos[level + 1];
      std::uint32_t ri = pi > 0 ? pi : 1;  // the right one of the pair, in the parent
      std::uint32_t left = inners(parent)[ri - 1].child, right = inners(parent)[ri].child;
      bool merged = level ? join<Inner>(tx, level, parent, ri, left, right)
                          : join<Leaf>(tx, level, parent, ri, left, right);
      if (!merged) return;
    }
  }

  // Merge the siblings left and right (= child ri of parent) when they fit in one node,
  // else share their entries evenly. true when merged (the parent lost a child).
  template <class E>
  bool join(Tx& tx, std::uint32_t level, NodeHeader* parent, std::uint32_t ri, std::uint32_t left,
            std::uint32_t right) {
    constexpr bool inner = std::is_same_v<E, Inner>;
    NodeHeader* ln = node(left);
    NodeHeader* rn = node(right);
    E* l = entries<E>(ln);
    E* r = entries<E>(rn);
    const std::uint32_t lc = ln->count, rc = rn->count, total = lc + rc;
    const K sep = inners(parent)[ri].key;
    if (total <= cap(level)) {
      if (ln->start + total > cap(level)) {
        close_gap<E>(tx, ln);
        l = entries<E>(ln);
      }
      tx.write(&l[lc], r, rc * sizeof(E));
      if constexpr (inner) tx.set(l[lc].key, sep);
      set_count(tx, ln, total);
      remove_range<Inner>(tx, parent, ri, ri + 1);
      free_node(tx, right);
      return true;
    }
    const std::uint32_t want_left = total / 2;
    if (lc < want_left) {  // from the front of right to the end of left
      const std::uint32_t k = want_left - lc;
      if (ln->start + want_left > cap(level)) {
        close_gap<E>(tx, ln);
        l = entries<E>(ln);
      }
      tx.write(&l[lc], r, k * sizeof(E));
      if constexpr (inner) tx.set(l[lc].key, sep);
      set_count(tx, ln, lc + k);
      set_shape(tx, rn, rc - k, rn->start + k);  // right's first k just leave
    } else {  // from the end of left to the front of right
      const std::uint32_t k = lc - want_left;
      if (rn->start >= k) {  // into right's gap
        tx.write(&r[-static_cast<std::ptrdiff_t>(k)], &l[lc - k], k * sizeof(E));
        set_shape(tx, rn, rc + k, rn->start - k);
      } else {
        E* s0 = slots<E>(rn);
        tx.move(&s0[k], r, rc * sizeof(E));
        tx.write(s0, &l[lc - k], k * sizeof(E));
        set_shape(tx, rn, rc + k, 0);
      }
      if constexpr (inner) tx.set(entries<E>(rn)[k].key, sep);
      set_count(tx, ln, lc - k);
    }
    const K new_sep = entries<E>(rn)[0].key;
    tx.set(inners(parent)[ri].key, new_sep);
    return false;
  }

  struct Walk {
    const BTree& t;
    CheckContext& ctx;
    const std::string& name;
    std::uint64_t entries, nodes;
    bool ordered(const K& a, const K& b) const { return t.cmp_(a, b); }
    void visit(std::uint32_t id, std::uint32_t level, const K* lo, const K* hi, bool root) {
      ctx.use_page(0, id, name);
      if (!ctx.ok()) return;
      ++nodes;
      const NodeHeader* n = t.node(id);
      auto where = [&] { return name + ": node " + std::to_string(id); };  // only on a problem
      if (n->magic != kNodeMagic) return ctx.fail(where() + " is not a node (no magic)");
      if (n->level != level || n->tree != t.index_)
        return ctx.fail(where() + " is at level " + std::to_string(n->level) + " of tree " + std::to_string(n->tree) +
                        ", expected level " + std::to_string(level) + " of tree " + std::to_string(t.index_));
      std::uint32_t min = root ? (level ? 2 : 1) : t.min_fill(level);
      if (n->count < min || n->count > t.cap(level))
        return ctx.fail(where() + " (level " + std::to_string(level) + ") has " + std::to_string(n->count) +
                        " entries, outside [" + std::to_string(min) + ", " + std::to_string(t.cap(level)) + "]");
      if (n->start + n->count > t.cap(level))
        return ctx.fail(where() + " (level " + std::to_string(level) + ") holds entries in slots " +
                        std::to_string(n->start) + " to " + std::to_string(n->start + n->count - 1) +
                        ", past its cap of " + std::to_string(t.cap(level)));
      if (level == 0) {
        const Leaf* e = leaves(n);
        for (std::uint32_t i = 0; i < n->count; ++i) {
          if ((lo && ordered(e[i].key, *lo)) || (hi && !ordered(e[i].key, *hi)))
            return ctx.fail(where() + ": entry " + std::to_string(i) + " is outside the range its parents give");
          if (i && !ordered(e[i - 1].key, e[i].key))
            return ctx.fail(where() + ": entries " + std::to_string(i - 1) + " and " + std::to_string(i) + " are out of order");
        }
        entries += n->count;
        return;
      }
      const Inner* e = inners(n);
      for (std::uint32_t i = 1; i < n->count; ++i) {
        if ((lo && ordered(e[i].key, *lo)) || (hi && !ordered(e[i].key, *hi)))
          return ctx.fail(where() + ": separator " + std::to_string(i) + " is outside the range its parents give");
        if (i > 1 && !ordered(e[i - 1].key, e[i].key))
          return ctx.fail(where() + ": separators " + std::to_string(i - 1) + " and " + std::to_string(i) + " are out of order");
      }
      for (std::uint32_t i = 0; i < n->count && ctx.ok(); ++i) {
        if (e[i].child >= t.arena_.capacity()) return ctx.fail(where() + ": child " + std::to_string(i) + " is no arena page");
        visit(e[i].child, level - 1, i ? &e[i].key : lo, i + 1 < n->count ? &e[i + 1].key : hi, false);
      }
    }
  };

  const Region* region_;
  std::size_t index_;
  TreeDesc* d_;
  PagePool arena_;
  [[no_unique_address]] Compare cmp_{};
};

// The TreeSpec of a BTree<K, V, Compare>, for a Schema. leaf_cap / inner_cap below what a
// node holds give small, deep trees (the tests); 0 takes the most a node holds.
template <class K, class V, class Compare = std::less<K>>
TreeSpec tree_spec(std::string name, std::uint16_t leaf_cap = 0, std::uint16_t inner_cap = 0) {
  using T = BTree<K, V, Compare>;
  TreeSpec s;
  s.name = std::move(name);
  s.key_size = sizeof(K);
  s.value_size = sizeof(V);
  s.leaf_cap = static_cast<std::uint16_t>(leaf_cap ? std::min<std::uint32_t>(leaf_cap, T::kLeafMax) : T::kLeafMax);
  s.inner_cap = static_cast<std::uint16_t>(inner_cap ? std::min<std::uint32_t>(inner_cap, T::kInnerMax) : T::kInnerMax);
  s.check = &T::check;
  return s;
}

}  // namespace hostchanfs::shm::persist
