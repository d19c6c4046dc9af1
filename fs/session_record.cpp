#include "fs/session_record.hpp"

#include <unistd.h>

#include <cstring>

namespace hostchanfs::fs {

namespace {

// pread/pwrite of exactly `len` bytes (a short count on a memfd means it is shorter:
// what is missing reads as zeros).
Result<void> read_at(int fd, void* out, std::size_t len, off_t at) {
  std::memset(out, 0, len);
  ssize_t n = ::pread(fd, out, len, at);
  if (n < 0) return last_errc();
  return success();
}

Result<void> write_at(int fd, const void* bytes, std::size_t len, off_t at) {
  ssize_t n = ::pwrite(fd, bytes, len, at);
  if (n < 0) return last_errc();
  if (static_cast<std::size_t>(n) != len) return std::errc::io_error;
  return success();
}

template <class Field>
Result<void> write_field(int fd, const Field& value, std::size_t offset) {
  return write_at(fd, &value, sizeof value, static_cast<off_t>(offset));
}

Result<std::string> read_message(int fd, std::uint32_t len, off_t at) {
  if (len == 0 || len > kMaxInitMessage) return std::string();
  std::string bytes(len, '\0');
  HC_TRYV(read_at(fd, bytes.data(), len, at));
  return bytes;
}

}  // namespace

Result<SessionRecord> read_session_record(int fd) {
  SessionRecord r;
  HC_TRYV(read_at(fd, &r.header, sizeof r.header, 0));
  HC_TRY(in, read_message(fd, r.header.init_in_len, kInitInOffset));
  HC_TRY(out, read_message(fd, r.header.init_out_len, kInitOutOffset));
  r.init_in = std::move(in);
  r.init_out = std::move(out);
  return r;
}

Result<std::uint64_t> begin_generation(int fd) {
  if (::ftruncate(fd, kSessionRecordSize) < 0) return last_errc();  // never shrinks: fixed size
  SessionHeader h;
  HC_TRYV(read_at(fd, &h, sizeof h, 0));
  std::uint64_t next = h.generation + 1;
  HC_TRYV(write_field(fd, std::int64_t{0}, offsetof(SessionHeader, daemon_pid)));
  HC_TRYV(write_field(fd, next, offsetof(SessionHeader, generation)));
  return next;
}

Result<void> record_daemon_pid(int fd, pid_t pid) {
  return write_field(fd, std::int64_t{pid}, offsetof(SessionHeader, daemon_pid));
}

Result<void> keep_init_message(int fd, bool reply, const void* bytes, std::size_t len) {
  if (len == 0 || len > kMaxInitMessage) return std::errc::message_size;
  HC_TRYV(write_at(fd, bytes, len, reply ? kInitOutOffset : kInitInOffset));
  auto n = static_cast<std::uint32_t>(len);
  return write_field(fd, n, reply ? offsetof(SessionHeader, init_out_len) : offsetof(SessionHeader, init_in_len));
}

}  // namespace hostchanfs::fs
