// Who pays for a channel's file data (`--charge`, the annotation io.hostchanfs.charge).
//   channel (default): the data lives in the store's memfds, written by the daemon, so it
//            is charged to the channel's own processes, never to a container.
//   writer:  regular files' data goes through FUSE passthrough to backing files on a
//            private kernel tmpfs (fs/passthrough.hpp): kernel speed, charged to whoever
//            writes it, as tmpfs is.
#pragma once

#include <optional>
#include <string_view>

namespace hostchanfs::fs {

enum class Charge { kChannel, kWriter };

constexpr std::string_view charge_name(Charge c) { return c == Charge::kWriter ? "writer" : "channel"; }

constexpr std::optional<Charge> parse_charge(std::string_view s) {
  if (s == "channel") return Charge::kChannel;
  if (s == "writer") return Charge::kWriter;
  return std::nullopt;
}

}  // namespace hostchanfs::fs
