// The parts of the FUSE protocol that this machine's kernel speaks (Linux 6.18, protocol
// 7.4x) and Debian 12's <linux/fuse.h> (7.38) and libfuse 3.14 do not know. One place,
// so that each can go when the baseline headers have it. Values are the kernel's uapi
// (include/uapi/linux/fuse.h); the struct layouts are checked against their offsets.
#pragma once

#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace hostchanfs::fs::abi {

// --- INIT flags (bits 32..63 travel in flags2, shifted down by 32) ---------------------
inline constexpr std::uint64_t kPassthrough = 1ULL << 37;       // FUSE_PASSTHROUGH (7.40)
inline constexpr std::uint64_t kNoExportSupport = 1ULL << 38;   // FUSE_NO_EXPORT_SUPPORT
inline constexpr std::uint64_t kHasResend = 1ULL << 39;         // FUSE_HAS_RESEND (7.40)

// --- a resent request's unique id carries this bit (FUSE_UNIQUE_RESEND) ---------------
inline constexpr std::uint64_t kUniqueResend = 1ULL << 63;

// --- notifications (fuse_out_header.unique 0, error = the code) -----------------------
inline constexpr std::int32_t kNotifyResend = 7;  // FUSE_NOTIFY_RESEND, no payload (6.9)

// --- open flags in fuse_open_out.open_flags -------------------------------------------
inline constexpr std::uint32_t kFopenPassthrough = 1U << 7;  // FOPEN_PASSTHROUGH

// fuse_open_out as 7.40 has it: the padding became the backing id.
struct OpenOut {
  std::uint64_t fh;
  std::uint32_t open_flags;
  std::int32_t backing_id;
};
static_assert(sizeof(OpenOut) == sizeof(fuse_open_out));
static_assert(offsetof(OpenOut, backing_id) == 12);

// fuse_init_out as 7.40 has it: unused[0] became max_stack_depth.
struct InitOut {
  std::uint32_t major;
  std::uint32_t minor;
  std::uint32_t max_readahead;
  std::uint32_t flags;
  std::uint16_t max_background;
  std::uint16_t congestion_threshold;
  std::uint32_t max_write;
  std::uint32_t time_gran;
  std::uint16_t max_pages;
  std::uint16_t map_alignment;
  std::uint32_t flags2;
  std::uint32_t max_stack_depth;
  std::uint32_t unused[6];
};
static_assert(sizeof(InitOut) == sizeof(fuse_init_out));
static_assert(offsetof(InitOut, flags2) == 32);
static_assert(offsetof(InitOut, max_stack_depth) == 36);

// --- passthrough backing files (FUSE_DEV_IOC_BACKING_OPEN / _CLOSE, 6.9) ---------------
struct BackingMap {
  std::int32_t fd;
  std::uint32_t flags;
  std::uint64_t padding;
};
inline constexpr unsigned long kDevIocBackingOpen = _IOW(FUSE_DEV_IOC_MAGIC, 1, BackingMap);
inline constexpr unsigned long kDevIocBackingClose = _IOW(FUSE_DEV_IOC_MAGIC, 2, std::uint32_t);

// --- opcodes libfuse 3.14 does not dispatch -------------------------------------------
inline constexpr std::uint32_t kOpTmpfile = FUSE_TMPFILE;  // 51 (7.37): libfuse 3.14 has no handler

}  // namespace hostchanfs::fs::abi
