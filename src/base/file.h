// The one place kiln opens files whose bytes it does not trust: models, their external data,
// plans, .npy/.pb inputs, timing caches.
//
// Everything goes through a descriptor: a file is opened once (never blocking — a FIFO or a
// device is opened O_NONBLOCK and then refused by type), its type and size come from fstat on
// that descriptor, and every read is a bounded pread on it. There is no check-then-open
// window: what was checked is what is read. Sizes are known before anything is allocated, so
// a header that claims 6 GB of data in a 128-byte file is an error, not an allocation.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace kiln {

class ReadOnlyFile {
 public:
  ReadOnlyFile() = default;

  // Opens `path` for reading; follows a symlink the user named (it is their path), but
  // refuses anything that is not a regular file (directory, FIFO, socket, device), naming its
  // type. `what` prefixes errors (defaults to the path).
  static StatusOr<ReadOnlyFile> Open(const std::string& path, const std::string& what = {});

  // Opens `relative` strictly inside the directory `base_dir` (external data, ONNX's rules):
  // `relative` must not be absolute or contain "..", no component may be a symbolic link
  // (each is opened with O_NOFOLLOW relative to its parent's descriptor, so a swapped-in
  // link cannot redirect the open), the file must be regular, and it must have exactly one
  // hard link: a second link could be a file from elsewhere, and "all links are inside" cannot
  // be checked without a race (links come and go during a directory walk). `what` names the
  // tensor or field in errors.
  static StatusOr<ReadOnlyFile> OpenInside(const std::string& base_dir, const std::string& relative,
                                           const std::string& what);

  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }
  int fd() const { return fd_ ? fd_->fd : -1; }
  dev_t device() const { return dev_; }
  ino_t inode() const { return ino_; }

  // Reads [offset, offset + length) into `dst`; the range is checked against size() first.
  Status ReadAt(int64_t offset, int64_t length, void* dst) const;
  // Reads [offset, offset + length) into a new string (allocated only after the range checks).
  StatusOr<std::string> ReadRange(int64_t offset, int64_t length) const;
  // Reads the whole file, refusing one larger than `max_bytes`.
  StatusOr<std::string> ReadAll(int64_t max_bytes) const;

 private:
  struct Fd {
    int fd = -1;
    ~Fd();
  };
  static StatusOr<ReadOnlyFile> FromFd(int fd, std::string path, const std::string& what);

  std::shared_ptr<Fd> fd_;  // shared: copies read through the same descriptor (pread has no cursor)
  std::string path_;
  int64_t size_ = 0;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  int64_t nlink_ = 0;
};

// Writes a file atomically and safely: the bytes go to a new temporary file beside `path`,
// created exclusively (O_EXCL with a random name: a link planted under a predictable name is
// never written through), and Commit() syncs it and renames it over `path`. Destroyed without
// Commit() -- an error on the way -- the temporary file is removed: a failed write never leaves
// a half-written file behind, nor changes an existing one.
class AtomicFileWriter {
 public:
  static StatusOr<AtomicFileWriter> Create(const std::string& path);
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  ~AtomicFileWriter();

  Status Write(const void* data, size_t size);                  // appends
  Status WriteAt(const void* data, size_t size, int64_t offset);  // over bytes already written
  Status Commit();

 private:
  AtomicFileWriter() = default;
  int fd_ = -1;
  std::string path_, tmp_;
};

// "a FIFO", "a directory", "a character device", ... for an st_mode (for error messages).
const char* FileTypeName(unsigned mode);

}  // namespace kiln
