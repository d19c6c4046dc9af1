#include "shm/store_check.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "shm/directory.hpp"
#include "shm/inode_table.hpp"
#include "shm/page_map.hpp"
#include "shm/persist/store_schema.hpp"
#include "shm/tmpfs_rules.hpp"

namespace hostchanfs::shm {

namespace rec = persist::store;
using std::to_string;

namespace {

// What the entries and the page map say about one inode, to compare with its record.
struct Facts {
  std::uint64_t names = 0, subdirs = 0, entries = 0;
  std::uint64_t pages[3] = {0, 0, 0};  // per fork
};

std::string inode_text(Ino ino) { return "inode " + to_string(ino); }

bool known_type(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
      return true;
    default:
      return false;
  }
}

class Checker {
 public:
  Checker(const persist::Region& region, persist::CheckContext& ctx)
      : region_(region), ctx_(ctx), sb_(region.user_as<rec::Superblock>()), inodes_(region), dirs_(region),
        pages_(region), facts_(inodes_.slots().high_water()) {}

  void run() {
    limits();
    if (ctx_.ok()) page_map();
    if (ctx_.ok()) intents();
    if (ctx_.ok()) entries();
    if (ctx_.ok()) records();
  }

 private:
  void fail(std::string what) { ctx_.fail(std::move(what)); }

  void limits() {
    const persist::RegionHeader& h = region_.header();
    if (sb_.quota_pages != h.pool[rec::kDataPool].capacity)
      return fail("the superblock's quota of " + to_string(sb_.quota_pages) + " pages is not the data pool's " +
                  to_string(h.pool[rec::kDataPool].capacity));
    if (sb_.max_inodes + 1 != h.table[rec::kInodes].capacity || sb_.max_inodes != h.table[rec::kDirents].capacity)
      return fail("the superblock's limit of " + to_string(sb_.max_inodes) + " inodes does not match the tables");
    if (sb_.chunk_pages == 0) return fail("the superblock's chunk size is 0");
    const InodeRecord* root = inodes_.find(kRootIno);
    if (!root || !S_ISDIR(root->mode) || root->parent != kRootIno || root->nlink < 2)
      return fail("the root (inode 1) is missing or not a directory");
  }

  void page_map() {
    pages_.for_each([&](Ino ino, std::uint64_t fork, std::uint64_t index, std::uint32_t value) {
      if (!ctx_.ok()) return;
      const InodeRecord* r = inodes_.find(ino);
      auto where = [&] {  // made only on a problem: this runs for every page at attach
        return "page map: page " + to_string(index) + " of fork " + to_string(fork) + " of " + inode_text(ino);
      };
      if (!r) return fail(where() + ", which is free");
      const mode_t type = r->mode & S_IFMT;
      if (fork > rec::kSymlinkFork || (fork == rec::kFileFork && type != S_IFREG) ||
          (fork == rec::kSymlinkFork && (type != S_IFLNK || index != 0)) || (fork != rec::kFileFork && !is_written(value)))
        return fail(where() + " cannot exist for that inode");
      ctx_.use_page(rec::kDataPool, page_number(value), "the page map");
      ++facts_[InodeTable::slot_of(ino)].pages[fork];
    });
  }

  void intents() {
    for (std::uint32_t i = 0; i < rec::kIntents && ctx_.ok(); ++i) {
      const rec::Intent& in = sb_.intents[i];
      if (in.count > rec::kIntentPages) return fail("write intent " + to_string(i) + " holds too many pages");
      for (std::uint32_t k = 0; k < in.count; ++k) ctx_.use_page(rec::kDataPool, in.pages[k], "a write intent");
      intent_pages_ += in.count;
    }
  }

  void entries() {
    const persist::SlotTable& slots = dirs_.slots();
    rec::CookieTree by_cookie(region_, rec::kDirByCookie);
    rec::NameTree by_name(region_, rec::kDirByName);
    std::uint64_t live = 0;
    for (std::uint32_t slot = 0; slot < slots.high_water() && ctx_.ok(); ++slot) {
      if (!slots.live(slot)) continue;
      ++live;
      const DirentRecord& e = dirs_.entry(slot);
      const std::string_view name = name_of(e);
      auto where = [&] { return "entry '" + std::string(name) + "' of directory " + to_string(e.dir); };
      const InodeRecord* dir = inodes_.find(e.dir);
      const InodeRecord* target = inodes_.find(e.ino);
      if (e.name_len == 0 || name.find('/') != std::string_view::npos) return fail(where() + " has a bad name");
      if (!dir || !S_ISDIR(dir->mode) || dir->nlink == 0) return fail(where() + ": no such live directory");
      if (!target) return fail(where() + " names " + inode_text(e.ino) + ", which is free");
      if (type_of(e) != (target->mode & S_IFMT)) return fail(where() + " has another type than " + inode_text(e.ino));
      if (e.cookie < kFirstCookie || e.cookie >= dir->next_cookie) return fail(where() + " has a cookie out of range");
      if (by_cookie.find(rec::cookie_key(e.dir, e.cookie)) != slot) return fail(where() + " is not in the cookie index");
      if (!by_name.contains(rec::name_key(e.dir, rec::name_hash(region_, name), slot)))
        return fail(where() + " is not in the name index");
      ++facts_[InodeTable::slot_of(e.ino)].names;
      Facts& d = facts_[InodeTable::slot_of(e.dir)];
      ++d.entries;
      if (S_ISDIR(target->mode)) {
        ++d.subdirs;
        if (target->parent != e.dir) return fail(where() + " is a directory whose '..' is " + to_string(target->parent));
      }
    }
    if (ctx_.ok() && (by_cookie.size() != live || by_name.size() != live))
      fail("the directory indexes hold " + to_string(by_cookie.size()) + " and " + to_string(by_name.size()) +
           " keys for " + to_string(live) + " entries");
  }

  void records() {
    const persist::SlotTable& slots = inodes_.slots();
    std::uint64_t pages = intent_pages_, inodes = 0;
    for (std::uint32_t slot = 0; slot < slots.high_water() && ctx_.ok(); ++slot) {
      if (!slots.live(slot)) continue;
      const Ino ino = InodeTable::ino_of(slot);
      const InodeRecord& r = slots.at<InodeRecord>(slot);
      const Facts& f = facts_[slot];
      auto who = [&] { return inode_text(ino); };
      const bool dir = S_ISDIR(r.mode), released = r.flags & rec::kChargeReleased;
      if (!known_type(r.mode)) return fail(who() + " has an unknown type");
      if (released && (r.nlink != 0 || r.opens != 0)) return fail(who() + " gave its charge back but has names or handles");
      const std::uint64_t want_names = !dir ? r.nlink : r.nlink == 0 || ino == kRootIno ? 0 : 1;
      if (f.names != want_names || (dir && r.nlink && r.nlink != 2 + f.subdirs))
        return fail(who() + " has nlink " + to_string(r.nlink) + " but " + to_string(f.names) + " names and " +
                    to_string(f.subdirs) + " subdirectories");
      if (dir && r.size != kEmptyDirSize + kBogoDirentSize * f.entries)
        return fail(who() + " has size " + to_string(r.size) + " for " + to_string(f.entries) + " entries");
      if (r.pages_held != f.pages[rec::kFileFork] + f.pages[rec::kSymlinkFork])
        return fail(who() + " holds " + to_string(r.pages_held) + " pages, the page map gives it " +
                    to_string(f.pages[rec::kFileFork] + f.pages[rec::kSymlinkFork]));
      if (r.xattr_len > r.xattr_bytes ||
          (!(r.flags & rec::kTrimAll) && f.pages[rec::kXattrFork] != pages_for(r.xattr_len)))
        return fail(who() + "'s xattrs take " + to_string(f.pages[rec::kXattrFork]) + " pages for " +
                    to_string(r.xattr_len) + " bytes charged as " + to_string(r.xattr_bytes));
      if (!work(ino, r, pages)) return;
      pages += r.pages_held + pages_for(r.xattr_bytes);
      if (!released) inodes += dir ? 1 : std::max<std::uint64_t>(r.nlink, 1);
    }
    if (!ctx_.ok()) return;
    if (sb_.pages_used != pages)
      return fail("pages_used is " + to_string(sb_.pages_used) + ", but the inodes and write intents hold " + to_string(pages));
    if (sb_.inodes_used != inodes)
      return fail("inodes_used is " + to_string(sb_.inodes_used) + ", but " + to_string(inodes) +
                  " inodes and hard links are charged");
  }

  // The work recorded in `r`, and what a fallocate in progress has reserved.
  bool work(Ino ino, const InodeRecord& r, std::uint64_t& pages) {
    const std::uint32_t flags = r.flags & (rec::kTrimAll | rec::kFilling);
    if (r.work_from == rec::kNoWork) {
      if (flags) fail(inode_text(ino) + " has work flags but no work");
      return ctx_.ok();
    }
    if (r.work_from >= r.work_to || flags == (rec::kTrimAll | rec::kFilling) ||
        ((flags & rec::kFilling) && !S_ISREG(r.mode))) {
      fail(inode_text(ino) + " has work it cannot have");
      return false;
    }
    if (flags & rec::kFilling) pages += (r.work_to - r.work_from) - pages_.count(ino, rec::kFileFork, r.work_from, r.work_to - 1);
    return true;
  }

  const persist::Region& region_;
  persist::CheckContext& ctx_;
  const rec::Superblock& sb_;
  InodeTable inodes_;
  Directory dirs_;
  PageMap pages_;
  std::vector<Facts> facts_;
  std::uint64_t intent_pages_ = 0;
};

}  // namespace

void check_store(const persist::Region& region, persist::CheckContext& ctx) { Checker(region, ctx).run(); }

}  // namespace hostchanfs::shm
