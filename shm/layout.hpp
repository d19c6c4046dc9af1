// The store's regions: formatting a fresh store into its two memfds, attaching to one
// (the layer recovers and checks it: magic, versions, geometry, every structure's own
// invariants, and the store's, store_check.hpp), and reading its usage without either.
// The records and their capacities are shm/persist/store_schema.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "shm/persist/region.hpp"
#include "shm/store.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::shm {

// A formatted or attached store's regions, before the parts wrap them. The data memfd
// goes first, so that it outlives the region that borrows it.
struct Regions {
  UniqueFd data;
  std::unique_ptr<persist::Region> meta;
};

// An error for people: the errno and one line that names what is wrong.
struct LayoutError {
  std::errc code;
  std::string what;
};
template <class T>
using Laid = outcome::result<T, LayoutError, outcome::policy::terminate>;

std::uint64_t meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes);
std::uint64_t default_max_inodes(std::uint64_t size_bytes);
// The inode limit these options give (the default for 0).
std::uint64_t inode_limit(const StoreOptions& opts);

// The store's schema (with its invariants as the check hook) for a quota and an inode
// limit; at attach the capacities are read from the region.
persist::Schema store_schema(std::uint64_t quota_pages, std::uint64_t max_inodes);

// Size both memfds and lay out a fresh store in them, with its root directory.
Laid<Regions> format_regions(const StoreOptions& opts, UniqueFd meta_fd, UniqueFd data_fd);
// Map a store that format_regions() made, recover and check it. EPROTO when it is not
// one (magic, version, sizes) or is only half made; EUCLEAN when it breaks an invariant.
Laid<Regions> attach_regions(UniqueFd meta_fd, UniqueFd data_fd);

}  // namespace hostchanfs::shm
