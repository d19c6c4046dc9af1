// RequestFuzzer: request lines for the controller, random and mutated from valid ones
// (bytes flipped, inserted, cut or repeated; a value swapped for another JSON type, a huge
// number, a string with NUL, a lone surrogate or invalid UTF-8; nesting). Seeded from
// $HOSTCHANFS_FUZZ_SEED when set (to replay a failure), else at random; the seed is
// printed by the tests that use it. Never a newline inside a line.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "mountctl/protocol.hpp"
#include "mountctl/spec.hpp"

namespace hostchanfs::testing {

class RequestFuzzer {
 public:
  // `base`: the only place a create may name (see safe_to_send).
  explicit RequestFuzzer(std::string base) : base_(std::move(base)), rng_(seed_) {
    using nlohmann::json;
    json spec{{"host_path", base_ + "/c"}, {"container_path", "/c"}, {"read_only", false}, {"size_bytes", 4096}};
    valid_ = {json{{"op", "ping"}},
              json{{"op", "list"}},
              json{{"op", "remove"}, {"host_path", base_ + "/nothing"}},
              json{{"op", "expose"}, {"host_path", base_ + "/nothing"}, {"pid", 1}, {"rootfs", "/"}},
              json{{"op", "create"}, {"spec", spec}, {"uid", 0}, {"gid", nullptr}, {"max_inodes", 0},
                   {"owner", {{"id", "fuzz"}, {"pid", nullptr}}}}};
  }

  std::uint64_t seed() const { return seed_; }

  std::string next() {
    std::string line;
    switch (pick(4)) {
      case 0: line = random_bytes(pick(300)); break;
      case 1: line = mutate_bytes(valid_[pick(valid_.size())].dump()); break;
      case 2: line = mutate_value(valid_[pick(valid_.size())]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); break;
      default: line = mutate_bytes(mutate_value(valid_[pick(valid_.size())]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)); break;
    }
    for (char& c : line) {
      if (c == '\n') c = ' ';
    }
    return line;
  }

  // Whether a real controller may be sent `line`: what it would act on must stay inside
  // `base` (a create that parses makes a channel; an expose that parses would enter a
  // process's mount namespace, so none is sent).
  bool safe_to_send(const std::string& line) {
    auto request = mountctl::parse_request(line);
    if (!request) return true;
    if (std::holds_alternative<mountctl::ExposeRequest>(request.value())) return false;
    if (auto* create = std::get_if<mountctl::CreateRequest>(&request.value())) {
      const std::string& host = create->spec.host_path;
      return creates_++ < 3 && !host.empty() && host.front() == '/' &&
             mountctl::path_is_within(mountctl::clean_path(host), base_) &&
             create->spec.size_bytes <= (1u << 20);
    }
    if (auto* remove = std::get_if<mountctl::RemoveRequest>(&request.value())) {
      return mountctl::path_is_within(remove->host_path, base_);
    }
    return true;
  }

 private:
  static std::uint64_t initial_seed() {
    const char* env = std::getenv("HOSTCHANFS_FUZZ_SEED");
    return env && *env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  }
  std::size_t pick(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

  std::string random_bytes(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<char>(pick(256));
    return s;
  }

  std::string mutate_bytes(std::string s) {
    for (std::size_t k = 0, n = 1 + pick(4); k < n; ++k) {
      std::size_t at = pick(s.size() + 1);
      switch (pick(4)) {
        case 0: if (at < s.size()) s[at] = static_cast<char>(pick(256)); break;
        case 1: s.insert(at, random_bytes(1 + pick(8))); break;
        case 2: s.erase(at, pick(16)); break;
        default: s.insert(at, s.substr(at, pick(32))); break;
      }
    }
    return s;
  }

  nlohmann::json odd_value() {
    using nlohmann::json;
    switch (pick(12)) {
      case 0: return nullptr;
      case 1: return pick(2) == 0;
      case 2: return -static_cast<std::int64_t>(pick(1000)) - 1;
      case 3: return std::uint64_t{18446744073709551615u};
      case 4: return 1e300;
      case 5: return std::string("a\0b", 3);
      case 6: return "\xed\xa0\x80";  // a lone surrogate, as UTF-8
      case 7: return "\xc3(";         // invalid UTF-8
      case 8: return json::array({1, "x", json::object()});
      case 9: return json::object({{"host_path", base_ + "/c"}});
      case 10: {
        json deep = json::array();
        for (std::size_t i = 0, n = pick(200); i < n; ++i) deep = json::array({deep});
        return deep;
      }
      default: return std::string(pick(2000), 'a') + "/../" + "\x1b[0m";
    }
  }

  nlohmann::json mutate_value(nlohmann::json j) {
    // A random member anywhere in the tree is replaced, removed, or gets a sibling.
    nlohmann::json* at = &j;
    while (at->is_object() && !at->empty() && pick(3) != 0) {
      auto it = at->begin();
      std::advance(it, static_cast<std::ptrdiff_t>(pick(at->size())));
      at = &*it;
    }
    if (at->is_object() && !at->empty() && pick(2) == 0) {
      auto it = at->begin();
      std::advance(it, static_cast<std::ptrdiff_t>(pick(at->size())));
      at->erase(it);
    } else if (at->is_object() && pick(2) == 0) {
      (*at)[pick(2) == 0 ? "op" : "x"] = odd_value();
    } else {
      *at = odd_value();
    }
    return j;
  }

  std::string base_;
  std::uint64_t seed_ = initial_seed();
  std::mt19937_64 rng_;
  std::vector<nlohmann::json> valid_;
  int creates_ = 0;
};

}  // namespace hostchanfs::testing
