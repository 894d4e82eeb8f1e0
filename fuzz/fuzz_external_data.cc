// libFuzzer target: external data resolution (TensorFromProto with data_location EXTERNAL, i.e.
// ReadOnlyFile::OpenInside), against a directory tree that the input itself builds. The rule
// it checks is the model directory's boundary: no byte from outside the model's folder ever
// reaches a tensor — not through "..", absolute paths, symbolic links (to files or to
// directories, swapped in between two loads or not), hard links, FIFOs, sockets or
// directories — and every call returns (a FIFO must not block the open).
//
// Per input, in a per-process root ROOT (/dev/shm, else $TMPDIR, else /tmp):
//   ROOT/elsewhere/secret.bin   64 bytes of 0xA5, the marker: no file inside the model has one
//   ROOT/model/                 the model directory (ExternalDataPolicy::base_dir), holding
//                               entries the bytes pick: regular files (content from the bytes,
//                               0xA5 replaced), directories, symlinks (to inside files, to
//                               the secret, to ROOT/elsewhere, to directories, to a device),
//                               hard links (to the secret or to inside files), FIFOs, sockets;
//                               names from a small alphabet so that locations hit them.
// Then a FLOAT or UINT8 TensorProto with dims and 1-4 external_data entries (keys from
// location/offset/length/checksum/junk, values from a table of names and hostile paths, of
// numbers, or literal bytes) is converted with base_dir = ROOT/model, twice with the same
// policy (the second load hits the policy's open-file cache), optionally after the location
// was swapped for a symlink or a hard link to the secret. Checked with __builtin_trap():
//   - a loaded tensor holds no 0xA5 byte (that can only come from the secret);
//   - a load succeeds only for a location that names, through real directories, a regular
//     file with a single link that the harness made inside the model, and its bytes are a
//     range of that file (an independent model of ONNX's rules as OpenInside documents them);
//   - the second load gives what the first gave (the cached descriptor is the checked file).
// The tree is removed after each input (unlinkat, never following links).
//
// Input layout (a missing byte reads as 0; fuzz/make_corpus.sh writes seeds in this format):
//   [count%8] then per entry [kind%10][name%16] + kind data:
//       file: [len] len content bytes | symlink: [target%13] | hard link inside: [source%16]
//   [dtype: even FLOAT, odd UINT8][rank%4] rank x [dim: <0xF0 as is, else a huge one]
//   [kv count%4 +1] per kv: [key%5][value: <0x80 location table, 0x80-0xBF the number
//       v-0x80, 0xC0-0xDF odd numbers, 0xE0-0xFF literal: [len%32] len bytes]
//   [swap%3: 0 none, 1 symlink to the secret, 2 hard link to the secret]
// FUZZ_VERBOSE=1 in the environment prints each input's tree, external_data and results
// (for reading a crash input: ./fuzz_external_data -runs=1 INPUT).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "frontend/onnx/tensor_proto.h"

namespace {

constexpr uint8_t kMarker = 0xA5;
constexpr size_t kSecretBytes = 64;

[[noreturn]] void HarnessFailure(const std::string& what) {
  std::fprintf(stderr, "fuzz_external_data: harness environment failure: %s: %s\n", what.c_str(), std::strerror(errno));
  std::abort();
}

[[noreturn]] void Violation(const std::string& what) {
  std::fprintf(stderr, "fuzz_external_data: INVARIANT VIOLATED: %s\n", what.c_str());
  __builtin_trap();
}

// ---- the per-process root and its removal ----

std::string TempDir() {
  if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  const char* t = std::getenv("TMPDIR");
  if (t != nullptr && *t != '\0' && ::access(t, W_OK | X_OK) == 0) return t;
  return "/tmp";
}

// Removes `name` in `dirfd` and, for a directory, everything under it. Never follows a link:
// unlinkat removes links, FIFOs and sockets themselves; a directory is opened O_NOFOLLOW.
void RemoveAt(int dirfd, const char* name) {
  if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) HarnessFailure(std::string("unlink ") + name);
  const int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) HarnessFailure(std::string("open directory ") + name);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) HarnessFailure(std::string("fdopendir ") + name);
  std::vector<std::string> children;
  while (const dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) children.emplace_back(e->d_name);
  for (const std::string& c : children) RemoveAt(::dirfd(d), c.c_str());
  ::closedir(d);
  if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) HarnessFailure(std::string("rmdir ") + name);
}

void RemoveTree(const std::string& path) { RemoveAt(AT_FDCWD, path.c_str()); }

constexpr char kRootPrefix[] = "kiln-fuzz-extdata-";

// Roots left behind by earlier processes that died (a crash skips atexit): removed.
void SweepStaleRoots(const std::string& tmp) {
  DIR* d = ::opendir(tmp.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, kRootPrefix, sizeof(kRootPrefix) - 1) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(e->d_name + sizeof(kRootPrefix) - 1, &end, 10);
    if (pid > 0 && *end == '\0' && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      stale.emplace_back(tmp + "/" + e->d_name);
  }
  ::closedir(d);
  for (const std::string& s : stale) RemoveTree(s);
}

const std::string& Root() {
  static const std::string* root = [] {
    const std::string tmp = TempDir();
    SweepStaleRoots(tmp);
    auto* r = new std::string(tmp + "/" + kRootPrefix + std::to_string(::getpid()));
    RemoveTree(*r);
    std::atexit([] { RemoveTree(Root()); });
    return r;
  }();
  return *root;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) HarnessFailure("create " + path);
  if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) HarnessFailure("write " + path);
  ::close(fd);
}

// ---- the input ----

class Bytes {
 public:
  Bytes(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t Next() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  std::string Take(size_t k) {
    k = std::min(k, n_);
    std::string s(reinterpret_cast<const char*>(p_), k);
    p_ += k;
    n_ -= k;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

// Entry names inside the model (so that the location table, symlink targets and hard-link
// sources hit them). A name whose parent is missing gets it made as a directory.
const char* const kNames[16] = {"a",       "b",          "w.bin",          "link",      "sub",       "sub/a",
                                "sub/b",   "sub/link",   "sub/sub",        "sub/sub/a", "secret.bin", "sub/secret.bin",
                                "elsewhere", "elsewhere/secret.bin", "fifo", "d"};

// ---- the model: what the harness made, and which locations ONNX's rules allow ----

enum class Kind { kDir, kFile, kSymlink, kFifo, kSocket };
struct Node {
  Kind kind;
  int inode = -1;  // kFile: index into Model::inodes
};
struct Inode {
  std::string content;
  int nlink = 1;
  bool outside = false;  // the secret
};
struct Model {
  std::map<std::string, Node> nodes;  // by path relative to the model directory ("sub/a")
  std::vector<Inode> inodes;
};

std::string Parent(const std::string& rel) {
  const size_t slash = rel.rfind('/');
  return slash == std::string::npos ? std::string() : rel.substr(0, slash);
}

// True if `rel`'s parent chain is made of real directories of the model (missing ones are
// made when `make` is set); the harness then may create or rename at ROOT/model/rel without
// any link redirecting it.
bool ParentsAreDirs(Model& m, const std::string& model_dir, const std::string& rel, bool make) {
  const std::string parent = Parent(rel);
  if (parent.empty()) return true;
  auto it = m.nodes.find(parent);
  if (it != m.nodes.end()) return it->second.kind == Kind::kDir;
  if (!make || !ParentsAreDirs(m, model_dir, parent, true)) return false;
  if (::mkdir((model_dir + "/" + parent).c_str(), 0700) != 0) HarnessFailure("mkdir " + parent);
  m.nodes[parent] = Node{Kind::kDir};
  return true;
}

// Splits a location as OpenInside documents ONNX's rules; nullopt-like (false) when the
// location itself must be refused (empty, NUL, absolute, "..", the directory itself).
bool SplitLocation(const std::string& loc, std::string* rel) {
  if (loc.empty() || loc.find('\0') != std::string::npos || loc.front() == '/') return false;
  std::string out;
  size_t i = 0;
  while (i <= loc.size()) {
    const size_t j = std::min(loc.find('/', i), loc.size());
    const std::string part = loc.substr(i, j - i);
    if (part == "..") return false;
    if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
    i = j + 1;
  }
  if (out.empty()) return false;
  *rel = out;
  return true;
}

// The file a location may be read from: a regular file with one link, made inside the
// model, reached through real directories only. Null if the location must be refused.
const Inode* Readable(Model& m, const std::string& model_dir, const std::string& loc) {
  std::string rel;
  if (!SplitLocation(loc, &rel) || !ParentsAreDirs(m, model_dir, rel, false)) return nullptr;
  auto it = m.nodes.find(rel);
  if (it == m.nodes.end() || it->second.kind != Kind::kFile) return nullptr;
  const Inode& ino = m.inodes[static_cast<size_t>(it->second.inode)];
  return ino.outside || ino.nlink != 1 ? nullptr : &ino;
}

void BuildTree(Bytes& in, Model& m, const std::string& root, const std::string& model_dir) {
  const std::string secret = root + "/elsewhere/secret.bin";
  if (::mkdir(root.c_str(), 0700) != 0 || ::mkdir((root + "/elsewhere").c_str(), 0700) != 0 ||
      ::mkdir(model_dir.c_str(), 0700) != 0)
    HarnessFailure("mkdir " + root);
  WriteFile(secret, std::string(kSecretBytes, static_cast<char>(kMarker)));
  m.inodes.push_back(Inode{std::string(kSecretBytes, static_cast<char>(kMarker)), 1, true});

  const std::string link_targets[13] = {
      "a", "../elsewhere/secret.bin", secret, root + "/elsewhere", "../elsewhere", "sub", "..",
      model_dir + "/a", "/dev/zero", "fifo", "link", "sub/a", "."};
  const int count = in.Next() % 8;
  for (int e = 0; e < count; ++e) {
    const int kind = in.Next() % 10;
    const std::string name = kNames[in.Next() % 16];
    const std::string path = model_dir + "/" + name;
    // Kind-specific bytes are consumed whether or not the entry can be made.
    std::string content, target, source;
    if (kind <= 2) {
      content = in.Take(in.Next());
      for (char& c : content)
        if (static_cast<uint8_t>(c) == kMarker) c = 0x5A;
    } else if (kind == 4 || kind == 5) {
      target = link_targets[in.Next() % 13];
    } else if (kind == 7) {
      source = kNames[in.Next() % 16];
    }
    if (m.nodes.count(name) || !ParentsAreDirs(m, model_dir, name, true)) continue;
    switch (kind) {
      case 0: case 1: case 2:  // regular file
        WriteFile(path, content);
        m.inodes.push_back(Inode{content});
        m.nodes[name] = Node{Kind::kFile, static_cast<int>(m.inodes.size() - 1)};
        break;
      case 3:
        if (::mkdir(path.c_str(), 0700) != 0) HarnessFailure("mkdir " + path);
        m.nodes[name] = Node{Kind::kDir};
        break;
      case 4: case 5:
        if (::symlink(target.c_str(), path.c_str()) != 0) HarnessFailure("symlink " + path);
        m.nodes[name] = Node{Kind::kSymlink};
        break;
      case 6:  // a hard link to the secret: a regular file whose bytes are not the model's
        if (::link(secret.c_str(), path.c_str()) != 0) HarnessFailure("link " + path);
        m.inodes[0].nlink++;
        m.nodes[name] = Node{Kind::kFile, 0};
        break;
      case 7: {  // a hard link to an inside entry (linkat without AT_SYMLINK_FOLLOW: a symlink stays one)
        auto src = m.nodes.find(source);
        if (src == m.nodes.end() || src->second.kind == Kind::kDir || !ParentsAreDirs(m, model_dir, source, false))
          break;
        if (::link((model_dir + "/" + source).c_str(), path.c_str()) != 0) HarnessFailure("link " + path);
        if (src->second.kind == Kind::kFile) m.inodes[static_cast<size_t>(src->second.inode)].nlink++;
        m.nodes[name] = src->second;
        break;
      }
      case 8:
        if (::mkfifo(path.c_str(), 0600) != 0) HarnessFailure("mkfifo " + path);
        m.nodes[name] = Node{Kind::kFifo};
        break;
      case 9: {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof(addr.sun_path)) break;
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) HarnessFailure("socket");
        if (::bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) HarnessFailure("bind " + path);
        ::close(s);
        m.nodes[name] = Node{Kind::kSocket};
        break;
      }
    }
  }
}

std::string Value(Bytes& in, const std::string& root, const std::string& model_dir) {
  const std::string locations[29] = {
      "a", "b", "w.bin", "link", "sub", "sub/a", "sub/b", "sub/link", "sub/sub", "sub/sub/a", "secret.bin",
      "sub/secret.bin", "elsewhere", "elsewhere/secret.bin", "fifo", "d",
      "..", "/", "../elsewhere/secret.bin", root + "/elsewhere/secret.bin", model_dir + "/a", "./a", "a/", "sub/../a",
      "sub//a", ".", "", std::string("a\0b", 3), "elsewhere/../../elsewhere/secret.bin"};
  const char* const numbers[10] = {"", "-1", "0x10", "18446744073709551616", "9223372036854775807",
                                   "1e3", " 1", "1 ", "+4", "00004"};
  const uint8_t v = in.Next();
  if (v < 0x80) return locations[v % 29];
  if (v < 0xC0) return std::to_string(v - 0x80);
  if (v < 0xE0) return numbers[v % 10];
  return in.Take(in.Next() % 32);
}

int64_t Dim(uint8_t b) {
  if (b < 0xF0) return b;
  const int64_t huge[16] = {int64_t{1} << 20, int64_t{1} << 31, int64_t{1} << 32, int64_t{1} << 40, int64_t{1} << 62,
                            INT64_MAX, -1, -2, INT64_MIN, 256, 1000, 4096, 65536, int64_t{1} << 24, 3, 0};
  return huge[b & 0x0F];
}

// Replaces the entry at `rel` (through real directories only) with a link to the secret.
void Swap(int how, Model& m, const std::string& root, const std::string& model_dir, const std::string& loc) {
  std::string rel;
  if (how == 0 || !SplitLocation(loc, &rel) || !ParentsAreDirs(m, model_dir, rel, false)) return;
  auto it = m.nodes.find(rel);
  if (it != m.nodes.end() && it->second.kind == Kind::kDir) return;
  const std::string secret = root + "/elsewhere/secret.bin", tmp = model_dir + "/.swap";
  if (how == 1 ? ::symlink(secret.c_str(), tmp.c_str()) != 0 : ::link(secret.c_str(), tmp.c_str()) != 0)
    HarnessFailure("swap link");
  if (::rename(tmp.c_str(), (model_dir + "/" + rel).c_str()) != 0) HarnessFailure("swap rename " + rel);
  if (it != m.nodes.end() && it->second.kind == Kind::kFile) m.inodes[static_cast<size_t>(it->second.inode)].nlink--;
  if (how == 2) m.inodes[0].nlink++;
  m.nodes[rel] = how == 1 ? Node{Kind::kSymlink} : Node{Kind::kFile, 0};
}

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

bool Verbose() {
  static const bool v = std::getenv("FUZZ_VERBOSE") != nullptr && std::getenv("FUZZ_VERBOSE")[0] == '1';
  return v;
}

void Trace(const Model& m, const onnx::TensorProto& proto, int swap) {
  static const char* const kKinds[] = {"dir", "file", "symlink", "fifo", "socket"};
  std::fprintf(stderr, "tree:");
  for (const auto& [name, node] : m.nodes) {
    std::fprintf(stderr, " %s=%s", name.c_str(), kKinds[static_cast<int>(node.kind)]);
    if (node.kind == Kind::kFile) {
      const Inode& ino = m.inodes[static_cast<size_t>(node.inode)];
      std::fprintf(stderr, "(%s%zu bytes, %d links)", ino.outside ? "the secret, " : "", ino.content.size(), ino.nlink);
    }
  }
  std::fprintf(stderr, "\ntensor: data_type %d dims [", proto.data_type());
  for (int64_t d : proto.dims()) std::fprintf(stderr, " %lld", static_cast<long long>(d));
  std::fprintf(stderr, " ] external_data:");
  for (const auto& kv : proto.external_data())
    std::fprintf(stderr, " %s='%s'", kv.key().c_str(), Printable(kv.value()).c_str());
  std::fprintf(stderr, " swap %d\n", swap);
}

std::string TensorBytes(const kiln::Tensor& t) {
  return std::string(static_cast<const char*>(t.raw_data()), t.nbytes());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& root = Root();
  const std::string model_dir = root + "/model";
  Bytes in(data, size);
  Model m;
  BuildTree(in, m, root, model_dir);

  onnx::TensorProto proto;
  proto.set_name("w");
  proto.set_data_type(in.Next() % 2 == 0 ? onnx::TensorProto::FLOAT : onnx::TensorProto::UINT8);
  const int rank = in.Next() % 4;
  for (int i = 0; i < rank; ++i) proto.add_dims(Dim(in.Next()));
  proto.set_data_location(onnx::TensorProto::EXTERNAL);
  const char* const keys[5] = {"location", "offset", "length", "checksum", "junk"};
  const int nkv = 1 + in.Next() % 4;
  std::vector<std::string> locations;
  for (int i = 0; i < nkv; ++i) {
    auto* kv = proto.add_external_data();
    kv->set_key(keys[in.Next() % 5]);
    kv->set_value(Value(in, root, model_dir));
    if (kv->key() == "location") locations.push_back(kv->value());
  }
  const int swap = in.Next() % 3;

  if (Verbose()) Trace(m, proto, swap);

  kiln::ExternalDataPolicy policy;
  policy.base_dir = model_dir;
  std::string first_bytes;
  bool first_ok = false;
  for (int round = 0; round < 2; ++round) {
    auto t = kiln::TensorFromProto(proto, policy, "fuzz");
    if (Verbose())
      std::fprintf(stderr, "load %d: %s\n", round + 1,
                   t.ok() ? ("a tensor of " + std::to_string(t->nbytes()) + " bytes").c_str() : t.status().ToString().c_str());
    if (t.ok()) {
      const std::string bytes = TensorBytes(*t);
      const std::string loc = locations.empty() ? std::string("(none)") : Printable(locations[0]);
      if (bytes.find(static_cast<char>(kMarker)) != std::string::npos)
        Violation("a tensor loaded from '" + loc + "' holds the secret's marker byte 0xA5 (bytes from outside the model directory)");
      if (round == 0) {
        const Inode* file = locations.size() == 1 ? Readable(m, model_dir, locations[0]) : nullptr;
        if (file == nullptr)
          Violation("external data from '" + loc + "' loaded, but that location is not a single-link regular file reached through real directories inside the model");
        if (file->content.find(bytes) == std::string::npos)
          Violation("the tensor loaded from '" + loc + "' is not a range of that file");
      }
    }
    if (round == 0) {
      first_ok = t.ok();
      if (first_ok) first_bytes = TensorBytes(*t);
      if (!locations.empty()) Swap(swap, m, root, model_dir, locations[0]);
    } else if (t.ok() != first_ok || (first_ok && TensorBytes(*t) != first_bytes)) {
      Violation(std::string("the second load with the same policy disagrees with the first (first: ") +
                (first_ok ? "a tensor" : "an error") + ", second: " + (t.ok() ? "a tensor" : "an error") +
                (t.ok() && first_ok ? " with other bytes" : "") + ")");
    }
  }

  RemoveTree(root);
  struct stat st;
  if (::lstat(root.c_str(), &st) == 0) HarnessFailure("the tree is still there after removal: " + root);
  return 0;
}
