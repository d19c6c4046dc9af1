#include "shm/dedupe.hpp"

namespace hostchanfs::shm {

namespace S = persist::store;

std::optional<Outcome> Dedupe::find(const persist::Tx& /*held*/, const Request& req, Mutation op) const {
  const std::uint64_t id = req.id();
  if (id == 0) return std::nullopt;
  for (std::uint64_t i = 0; i < S::kDedupeSlots; ++i)
    if (sb_.dedupe_unique[i] == id && sb_.dedupe[i].op == static_cast<std::uint32_t>(op)) return sb_.dedupe[i];
  return std::nullopt;
}

void Dedupe::record(persist::Tx& tx, const Request& req, Mutation op, Ino ino, std::uint64_t generation,
                    std::uint64_t value) {
  const std::uint64_t id = req.id();
  if (id == 0) return;
  const std::uint64_t seq = sb_.dedupe_seq;
  const std::uint64_t i = seq % S::kDedupeSlots;
  tx.set(sb_.dedupe_unique[i], id);
  tx.set(sb_.dedupe[i], Outcome{static_cast<std::uint32_t>(op), 0, ino, generation, value});
  tx.set(sb_.dedupe_seq, seq + 1);
}

}  // namespace hostchanfs::shm
