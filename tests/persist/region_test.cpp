// attach() refuses a region it cannot trust, and says what is wrong in one line: each test
// damages a real region the way a bug or a hostile writer of the memfd could, then attaches.
#include <fcntl.h>
#include <unistd.h>

#include <functional>

#include <gtest/gtest.h>

#include "tests/persist/fixture.hpp"

namespace hostchanfs::shm::persist::testing {
namespace {

// A region with something in every part: entries in the trees, data pages, names, and a
// couple of free pages and slots on the stacks.
void populate(Region& r) {
  for (std::uint64_t k = 0; k < 40; ++k) {
    Op op{Op::kCompound, 0, k, k * 11, 0};
    ASSERT_TRUE(apply(r, op));
    op.kind = Op::kCreateFile;
    ASSERT_TRUE(apply(r, op));
  }
  for (std::uint64_t k = 0; k < 40; k += 3) ASSERT_TRUE(apply(r, Op{Op::kDeleteFile, 0, k, 0, 0}));
  SlotTable names(r, kNames);
  Tx tx(r);
  for (int i = 0; i < 5; ++i) {
    std::uint32_t s = *names.alloc(tx);
    NameSlot n{static_cast<std::uint64_t>(i), 1, {'n'}};
    tx.fresh(names.slot(s), &n, sizeof n);
  }
  names.free(tx, 0);
  names.free(tx, 3);
  tx.commit();
}

void expect_refused(const std::function<void(Region&)>& damage, const std::string& words,
                    std::errc code = static_cast<std::errc>(EUCLEAN)) {
  TestRegion r;
  ASSERT_NO_FATAL_FAILURE(populate(r.region()));
  ASSERT_TRUE(r->check(CheckLevel::kDeep));
  damage(r.region());
  auto attached = r.reattach();
  ASSERT_FALSE(attached) << "a damaged region was accepted (" << words << ")";
  EXPECT_EQ(attached.error().code, code) << attached.error().what;
  EXPECT_NE(attached.error().what.find(words), std::string::npos) << attached.error().what;
  EXPECT_EQ(attached.error().what.find('\n'), std::string::npos);
}

template <class T>
T* at(Region& r, std::uint64_t offset) {
  return reinterpret_cast<T*>(r.at(offset));
}
NodeHeader* root_of(Region& r, std::size_t tree) {
  return reinterpret_cast<NodeHeader*>(PagePool(r, 0).page(r.header().tree[tree].root));
}
// A node's entries begin at slot `start` of its payload.
template <class E>
E* node_entries(NodeHeader* n) {
  return reinterpret_cast<E*>(n + 1) + n->start;
}

TEST(Attach, APopulatedRegionAttachesAndChecksDeep) {
  TestRegion r;
  ASSERT_NO_FATAL_FAILURE(populate(r.region()));
  Snapshot before = snapshot(r.region());
  ASSERT_TRUE(r.reattach());
  EXPECT_EQ(snapshot(r.region()), before);
  auto deep = r->check(CheckLevel::kDeep);
  EXPECT_TRUE(deep) << deep.error().what;
}

TEST(Attach, RefusesAMemfdThatWasNeverFormatted) {
  UniqueFd fd(make_memfd("empty", 1 << 20).value());
  auto data = make_memfd("data", 1024 * kPage).value();
  auto r = Region::attach(std::move(fd), {data.get()}, test_schema());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, std::errc::protocol_error);
  EXPECT_NE(r.error().what.find("no magic"), std::string::npos) << r.error().what;
}

TEST(Attach, RefusesAnotherLayoutVersion) {
  TestRegion r;
  r.close();
  Schema s = test_schema();
  s.user_version = 8;
  auto a = Region::attach(r.dup_meta(), {r.data_fd()}, s);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().what.find("layout version 7, this program reads 8"), std::string::npos) << a.error().what;
}

TEST(Attach, RefusesASchemaThatDoesNotMatch) {
  TestRegion r;
  r.close();
  Schema s = test_schema();
  s.tables[0].slot_size = 264;
  auto a = Region::attach(r.dup_meta(), {r.data_fd()}, s);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().what.find("table names does not match"), std::string::npos) << a.error().what;
  s = test_schema();
  s.trees[kSmall] = tree_spec<std::uint32_t, std::uint64_t>("small", 4, 4);
  a = Region::attach(r.dup_meta(), {r.data_fd()}, s);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().what.find("tree small does not match"), std::string::npos) << a.error().what;
}

TEST(Attach, RefusesMissingOrShortFiles) {
  TestRegion r;
  r.close();
  auto a = Region::attach(r.dup_meta(), {}, r.schema());
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().what.find("uses 1 extra files, 0 were given"), std::string::npos) << a.error().what;
  auto small = make_memfd("data", kPage).value();
  a = Region::attach(r.dup_meta(), {small.get()}, r.schema());
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().what.find("file 1 is too small for pool data"), std::string::npos) << a.error().what;
}

TEST(Attach, RefusesATruncatedRegion) {
  TestRegion r;
  r.close();
  ASSERT_EQ(::ftruncate(r.meta_fd(), 1 << 20), 0);
  auto a = Region::attach(r.dup_meta(), {r.data_fd()}, r.schema());
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().what.find("its header says"), std::string::npos) << a.error().what;
}

TEST(Attach, RefusesGeometryThatDoesNotAddUp) {
  expect_refused([](Region& r) { r.header().arena_offset += kPage; }, "geometry", std::errc::protocol_error);
}

TEST(Attach, RefusesAPageTwiceOnAFreeStack) {
  expect_refused(
      [](Region& r) {
        auto* stack = at<std::uint32_t>(r, r.header().pool[kData].stack_offset);
        ASSERT_GE(r.header().pool[kData].top, 2u);
        stack[1] = stack[0];
      },
      "on the free stack twice");
}

TEST(Attach, RefusesATreeNodeThatIsAlsoFree) {
  expect_refused(
      [](Region& r) {
        PoolDesc& arena = r.header().pool[0];
        at<std::uint32_t>(r, arena.stack_offset)[arena.top] = r.header().tree[kWide].root;
        ++arena.top;
      },
      "is also on the free stack");
}

TEST(Attach, RefusesALeakedPage) {
  expect_refused([](Region& r) { ++r.header().pool[0].high_water; }, "leaked");
}

TEST(Attach, RefusesANodeWithoutItsMagic) {
  expect_refused([](Region& r) { root_of(r, kWide)->magic = 0; }, "is not a node");
}

TEST(Attach, RefusesKeysOutOfOrder) {
  expect_refused(
      [](Region& r) {
        auto* e = node_entries<U64Tree::Leaf>(root_of(r, kFiles));  // a leaf root
        ASSERT_EQ(r.header().tree[kFiles].height, 1u);
        std::swap(e[0].key, e[1].key);
      },
      "out of order");
}

TEST(Attach, RefusesAnUnderfullNode) {
  expect_refused(
      [](Region& r) {
        // A non-root node of the deep tree loses all but one entry.
        auto* root = root_of(r, kSmall);
        ASSERT_GT(root->level, 0);
        auto* child = reinterpret_cast<NodeHeader*>(PagePool(r, 0).page(node_entries<U64Tree::Inner>(root)[0].child));
        child->count = 1;
      },
      "entries, outside [2, 4]");
}

TEST(Attach, RefusesEntriesPastTheCap) {
  expect_refused(
      [](Region& r) {
        auto* root = root_of(r, kSmall);  // an inner root of the deep tree (cap 4)
        root->start = static_cast<std::uint16_t>(4 - root->count + 1);
      },
      "past its cap of 4");
}

TEST(Attach, RefusesADataPageOwnedTwice) {
  expect_refused(
      [](Region& r) {
        auto* e = node_entries<FileTree::Leaf>(root_of(r, kFiles));
        e[1].value = e[0].value;
      },
      "is used twice");
}

TEST(Attach, RefusesASlotCountThatDoesNotAddUp) {
  expect_refused([](Region& r) { ++r.header().table[kNames].live; }, "its count says");
}

TEST(Attach, RefusesASlotBothLiveAndFree) {
  expect_refused(
      [](Region& r) {
        auto* gen_live = at<std::uint64_t>(r, r.header().table[kNames].gen_live_offset);
        gen_live[0] |= 1;  // slot 0 was freed: it is on the stack
      },
      "is live and on the free stack");
}

// A damage that leaves one record in the log, as a dead tx would (`state` its word).
std::function<void(Region&)> log_one_record(std::function<LogRecord(const Region&)> record, std::uint64_t state) {
  return [=](Region& r) {
    auto* log = at<LogHeader>(r, r.header().log_offset);
    *reinterpret_cast<LogRecord*>(log + 1) = record(r);
    log->state = state;
  };
}

TEST(Attach, RefusesALogRecordOutOfBounds) {
  expect_refused(log_one_record([](const Region& r) { return LogRecord{r.header().region_size - 4, 64, RecordKind::kBytes, 0}; }, 1),
                 "undo log record 1 of 1: restores bytes beyond the region");
}

TEST(Attach, RefusesALogRecordOfNoKnownKind) {
  expect_refused(log_one_record([](const Region&) { return LogRecord{0, 8, static_cast<RecordKind>(9), 0}; }, 1),
                 "unknown kind 9");
}

TEST(Attach, RefusesAPunchOutsideEveryPool) {
  // A commit's punch of the header page.
  expect_refused(log_one_record([](const Region&) { return LogRecord{0, kPage, RecordKind::kCommitPunch, 0}; }, 1 | kCommitted),
                 "punches outside every pool");
}

}  // namespace
}  // namespace hostchanfs::shm::persist::testing
