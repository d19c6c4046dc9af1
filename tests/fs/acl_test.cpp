// POSIX ACLs against kernel tmpfs (issue 16): the same setfacl/getfacl steps on both, the
// same `getfacl` output, modes, xattr names, and what another uid may do. Runs in both
// charge modes (tests/fs/CMakeLists.txt: `writer.` re-runs). The rules themselves:
// shm/acl.hpp, tests/shm/acl_test.cpp and acl_store_test.cpp.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fs/tmpfs_pair.hpp"

namespace hostchanfs::testing {
namespace {

using AclParity = TmpfsPair;

constexpr uid_t kNobody = 65534;

// A shell command run in the trace's root (relative paths, so both traces read alike):
// its output (stdout and stderr) and exit status, line by line.
void sh(Trace& t, const std::string& cmd) {
  const std::string full = "cd '" + t.root() + "' && " + cmd + " 2>&1; echo \"exit $?\"";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) {
    t.add("$ " + cmd + ": popen failed");
    return;
  }
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  t.add("$ " + cmd + "\n" + out);
}

// getfacl without the "# file:" header (it names the mount), numeric ids.
void getfacl(Trace& t, const std::string& rel) { sh(t, "getfacl -cn " + rel); }

void xattr_names(Trace& t, const std::string& rel) {
  std::string buf(4096, '\0');
  ssize_t n = ::llistxattr(t.p(rel), buf.data(), buf.size());
  if (n < 0) return t.add("listxattr " + rel + ": " + errno_name(errno));
  std::vector<std::string> names;
  for (std::size_t at = 0; at < static_cast<std::size_t>(n); at = buf.find('\0', at) + 1)
    names.emplace_back(buf.c_str() + at);
  std::sort(names.begin(), names.end());
  std::string line = "xattrs " + rel + ":";
  for (const auto& name : names) line += " " + name;
  t.add(line);
}

void look(Trace& t, const std::string& rel) {
  t.stat(rel);
  getfacl(t, rel);
  xattr_names(t, rel);
}

void read_as(Trace& t, uid_t uid, const std::string& rel) {
  t.as_user(uid, uid, [&](Trace& u) { u.ok("open " + rel + " for reading", ::open(u.p(rel), O_RDONLY)); });
}

// setfacl -m u:65534:r; then with a mask; chmod after (the mask follows); -x; -b.
TEST_F(AclParity, AccessAclsKeepTheModeInStep) {
  compare([](Trace& t) {
    write_file(t, "f", "data", 0644);
    sh(t, "setfacl -m u:65534:r f");
    look(t, "f");
    sh(t, "setfacl -m u:65534:rw,m::r f");
    look(t, "f");
    t.rc("chmod 0750", ::chmod(t.p("f"), 0750));
    look(t, "f");
    t.rc("chmod 0604", ::chmod(t.p("f"), 0604));
    look(t, "f");
    sh(t, "setfacl -x u:65534 f");
    look(t, "f");
    sh(t, "setfacl -m u:65534:rwx f");
    sh(t, "setfacl -b f");
    look(t, "f");
    sh(t, "setfacl -m u::rwx,g::r-x,o::--x f");  // no more than mode bits: no xattr
    look(t, "f");
    t.rc("removexattr access (none)", ::removexattr(t.p("f"), "system.posix_acl_access"));
  });
}

// A default ACL on a directory, inherited by a new file and a new subdirectory made by a
// process whose umask is 077 (which a default ACL overrides); -k takes it away again, and
// the umask is back.
TEST_F(AclParity, DefaultAclsAreInherited) {
  compare([](Trace& t) {
    t.rc("mkdir d", ::mkdir(t.p("d"), 0755));
    sh(t, "setfacl -d -m u:65534:rwx,g::r-x d");
    look(t, "d");
    const mode_t old = ::umask(077);
    t.rc("close(create d/f 0666)", ::close(::open(t.p("d/f"), O_WRONLY | O_CREAT, 0666)));
    t.rc("mkdir d/sub 0777", ::mkdir(t.p("d/sub"), 0777));
    t.rc("mkfifo d/p 0640", ::mkfifo(t.p("d/p"), 0640));
    t.rc("symlink d/l", ::symlink("f", t.p("d/l")));
    t.rc("mkdir d/sub/deeper 0700", ::mkdir(t.p("d/sub/deeper"), 0700));
    ::umask(old);
    for (const char* rel : {"d/f", "d/sub", "d/p", "d/sub/deeper"}) look(t, rel);
    t.stat("d/l");
    // A whiteout is a new inode too (root only: CAP_MKNOD).
    t.rc("renameat2 d/f d/moved WHITEOUT", ::renameat2(AT_FDCWD, t.p("d/f"), AT_FDCWD, t.p("d/moved"), RENAME_WHITEOUT));
    look(t, "d/f");
    sh(t, "setfacl -k d");
    look(t, "d");
    sh(t, "setfacl -k d");  // again: nothing to remove, still fine
    ::umask(077);
    t.rc("mkdir d/after 0777", ::mkdir(t.p("d/after"), 0777));
    ::umask(old);
    look(t, "d/after");
    t.rc("setxattr an empty default on a file", ::setxattr(t.p("d/moved"), "system.posix_acl_default", "", 0, 0));
  });
}

// The kernel enforces what the store keeps: uid 65534 reads a 0600 file its ACL lets it
// read, and not once the entry is gone; a mask limits it.
TEST_F(AclParity, AclsAreEnforced) {
  compare([](Trace& t) {
    write_file(t, "f", "secret", 0600);
    read_as(t, kNobody, "f");
    sh(t, "setfacl -m u:65534:r f");
    read_as(t, kNobody, "f");
    t.as_user(kNobody, kNobody, [](Trace& u) { u.ok("open f for writing", ::open(u.p("f"), O_WRONLY)); });
    sh(t, "setfacl -m u:65534:rw,m::r f");
    t.as_user(kNobody, kNobody, [](Trace& u) { u.ok("open f for writing (masked)", ::open(u.p("f"), O_WRONLY)); });
    sh(t, "setfacl -x u:65534 f");
    read_as(t, kNobody, "f");
    t.rc("mkdir d", ::mkdir(t.p("d"), 0700));
    sh(t, "setfacl -m u:65534:rwx d");
    t.as_user(kNobody, kNobody, [](Trace& u) { write_file(u, "d/mine", "x"); });
    t.stat("d/mine");
  });
}

// Bytes the kernel does not take as an ACL fail alike (it parses them before either
// filesystem sees them).
TEST_F(AclParity, InvalidAclBytesFailAlike) {
  compare([](Trace& t) {
    write_file(t, "f", "x");
    const std::vector<std::uint8_t> good = {2, 0, 0, 0, 0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
                                            0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff};
    auto set = [&](const std::string& label, std::vector<std::uint8_t> v) {
      t.rc(label, ::setxattr(t.p("f"), "system.posix_acl_access", v.data(), v.size(), 0));
    };
    set("good", good);
    auto v = good;
    v[0] = 1;
    set("version 1", v);
    v = good;
    v.pop_back();
    set("ragged", v);
    v = good;
    std::swap_ranges(v.begin() + 4, v.begin() + 12, v.begin() + 12);
    set("out of order", v);
    v = good;
    v[6] = 010;
    set("unknown permission bit", v);
    v = good;
    v[4] = 0x40;
    set("unknown tag", v);
    set("header only", {2, 0, 0, 0});
    set("empty", {});
    v = good;
    v.insert(v.begin() + 12, {0x02, 0, 4, 0, 1, 0, 0, 0});
    set("named user without a mask", v);
    t.stat("f");
    getfacl(t, "f");
  });
}

// Setting an access ACL drops setgid when the caller is outside the file's group and has
// no CAP_FSETID (the kernel's FUSE_SETXATTR_ACL_KILL_SGID); root keeps it.
TEST_F(AclParity, SettingAnAccessAclDropsSetgidForOutsiders) {
  compare([](Trace& t) {
    for (const char* name : {"theirs", "roots"}) {
      write_file(t, name, "x", 0644);
      t.rc(std::string("chown ") + name, ::chown(t.p(name), kNobody, 0));
      t.rc(std::string("chmod 02775 ") + name, ::chmod(t.p(name), 02775));
    }
    t.as_user(kNobody, kNobody, [](Trace& u) { sh(u, "setfacl -m u:1000:r theirs"); });
    sh(t, "setfacl -m u:1000:r roots");
    look(t, "theirs");
    look(t, "roots");
  });
}

}  // namespace
}  // namespace hostchanfs::testing
