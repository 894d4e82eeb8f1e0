#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kiln {

namespace {

constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

std::string Prefix(const std::string& what, const std::string& path) { return what.empty() ? path : what; }

}  // namespace

const char* FileTypeName(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    default: return "not a regular file";
  }
}

ReadOnlyFile::Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

StatusOr<ReadOnlyFile> ReadOnlyFile::FromFd(int fd, std::string path, const std::string& what) {
  ReadOnlyFile f;
  f.fd_ = std::make_shared<Fd>();
  f.fd_->fd = fd;
  f.path_ = std::move(path);
  struct stat st;
  if (::fstat(fd, &st) != 0) return IoError(Prefix(what, f.path_), ": cannot stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return what.empty() ? InvalidArgument(f.path_, ": is ", FileTypeName(st.st_mode), ", not a regular file")
                        : InvalidArgument(what, ": '", f.path_, "' is ", FileTypeName(st.st_mode), ", not a regular file");
  // Back to blocking reads (O_NONBLOCK only kept the open from waiting on a FIFO's writer).
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  f.size_ = static_cast<int64_t>(st.st_size);
  f.dev_ = st.st_dev;
  f.ino_ = st.st_ino;
  f.nlink_ = static_cast<int64_t>(st.st_nlink);
  return f;
}

StatusOr<ReadOnlyFile> ReadOnlyFile::Open(const std::string& path, const std::string& what) {
  if (path.empty()) return InvalidArgument(what.empty() ? std::string("file") : what, ": empty path");
  // Look before opening: opening a device can have effects of its own (a tape rewinds, a
  // terminal becomes the controlling one). The fstat after the open is the check that counts.
  struct stat pre;
  if (::stat(path.c_str(), &pre) == 0 && !S_ISREG(pre.st_mode))
    return what.empty() ? InvalidArgument(path, ": is ", FileTypeName(pre.st_mode), ", not a regular file")
                        : InvalidArgument(what, ": '", path, "' is ", FileTypeName(pre.st_mode), ", not a regular file");
  const int fd = ::open(path.c_str(), kOpenFlags);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return IoError(Prefix(what, path), ": cannot open: no such file");
    struct stat st;  // a socket cannot be opened at all: say what it is
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
      return InvalidArgument(Prefix(what, path), ": is ", FileTypeName(st.st_mode), ", not a regular file");
    return IoError(Prefix(what, path), ": cannot open: ", std::strerror(err));
  }
  return FromFd(fd, path, what);
}

StatusOr<ReadOnlyFile> ReadOnlyFile::OpenInside(const std::string& base_dir, const std::string& relative,
                                               const std::string& what) {
  if (relative.empty()) return InvalidArgument(what, ": empty external data location");
  if (relative.find('\0') != std::string::npos)
    return InvalidArgument(what, ": external data location contains a NUL byte");
  if (relative.front() == '/') return InvalidArgument(what, ": external data location '", relative, "' is an absolute path");
  std::vector<std::string> parts;
  for (size_t i = 0; i <= relative.size();) {
    const size_t j = std::min(relative.find('/', i), relative.size());
    std::string part = relative.substr(i, j - i);
    if (part == "..") return InvalidArgument(what, ": external data location '", relative, "' escapes the model directory");
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    i = j + 1;
  }
  if (parts.empty()) return InvalidArgument(what, ": external data location '", relative, "' names the model directory itself");
  if (base_dir.empty())
    return InvalidArgument(what, ": external data '", relative, "' but the model has no directory to resolve it in");

  // The model directory itself is the user's choice: it may be reached through links.
  int dir = ::open(base_dir.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (dir < 0) return IoError(what, ": cannot open the model directory '", base_dir, "': ", std::strerror(errno));
  // Inside it, every component is opened relative to its parent's descriptor without
  // following links: what we check is what we open.
  for (size_t k = 0; k < parts.size(); ++k) {
    const bool last = k + 1 == parts.size();
    if (last) {  // look before opening (see Open); the fstat after the open decides
      struct stat pre;
      if (::fstatat(dir, parts[k].c_str(), &pre, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(pre.st_mode)) {
        ::close(dir);
        if (S_ISLNK(pre.st_mode))
          return InvalidArgument(what, ": external data location '", relative, "': '", parts[k],
                                 "' is a symbolic link; external data must be a regular file inside the model "
                                 "directory, reached without links");
        return InvalidArgument(what, ": '", relative, "' is ", FileTypeName(pre.st_mode), ", not a regular file");
      }
    }
    const int next = ::openat(dir, parts[k].c_str(), last ? (kOpenFlags | O_NOFOLLOW) : (O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW));
    const int err = errno;
    if (next < 0) {
      if (err == ENOENT) {
        ::close(dir);
        return IoError(what, ": external data file '", relative, "' does not exist in '", base_dir, "'");
      }
      // Say what it was (for the message only: the open above already refused it).
      struct stat st;
      const bool known = ::fstatat(dir, parts[k].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
      ::close(dir);
      if (known && (S_ISLNK(st.st_mode) || !last))
        return InvalidArgument(what, ": external data location '", relative, "': '", parts[k], "' is ",
                               FileTypeName(st.st_mode), "; external data must be a regular file inside the model "
                               "directory, reached without links");
      if (known && !S_ISREG(st.st_mode))
        return InvalidArgument(what, ": '", relative, "' is ", FileTypeName(st.st_mode), ", not a regular file");
      return IoError(what, ": cannot open external data '", relative, "' in '", base_dir, "': ", std::strerror(err));
    }
    ::close(dir);
    dir = next;
  }
  KILN_ASSIGN_OR_RETURN(ReadOnlyFile f, FromFd(dir, relative, what));
  if (f.nlink_ > 1)
    return InvalidArgument(what, ": external data file '", relative, "' has ", f.nlink_,
                           " hard links; kiln reads external data only from files with a single link (a hard link "
                           "can expose a file from outside the model directory); copy the file instead of linking it");
  return f;
}

Status ReadOnlyFile::ReadAt(int64_t offset, int64_t length, void* dst) const {
  if (offset < 0 || length < 0) return InvalidArgument(path_, ": negative read range");
  if (offset > size_)
    return InvalidArgument("offset ", offset, " is past the end of '", path_, "' (", size_, " bytes)");
  if (length > size_ - offset)
    return InvalidArgument("'", path_, "' has ", size_ - offset, " bytes after offset ", offset, ", ", length, " needed (",
                           size_, " bytes in all)");
  auto* out = static_cast<char*>(dst);
  int64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd(), out + done, static_cast<size_t>(length - done), static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(path_, ": read failed: ", std::strerror(errno));
    if (n == 0) return IoError(path_, ": file shrank while reading (", offset + done, " of ", size_, " bytes)");
    done += n;
  }
  return Status::OK();
}

StatusOr<std::string> ReadOnlyFile::ReadRange(int64_t offset, int64_t length) const {
  if (offset < 0 || length < 0 || offset > size_ || length > size_ - offset)
    return ReadAt(offset, length, nullptr);  // the range error
  std::string bytes(static_cast<size_t>(length), '\0');
  KILN_RETURN_IF_ERROR(ReadAt(offset, length, bytes.data()));
  return bytes;
}

StatusOr<std::string> ReadOnlyFile::ReadAll(int64_t max_bytes) const {
  if (size_ > max_bytes)
    return InvalidArgument("'", path_, "' has ", size_, " bytes, more than the ", max_bytes, " allowed here");
  return ReadRange(0, size_);
}

StatusOr<AtomicFileWriter> AtomicFileWriter::Create(const std::string& path) {
  if (path.empty()) return InvalidArgument("output file: empty path");
  AtomicFileWriter w;
  w.path_ = path;
  w.tmp_ = path + ".tmp.XXXXXX";
  w.fd_ = ::mkostemp(w.tmp_.data(), O_CLOEXEC);
  if (w.fd_ < 0) return IoError(path, ": cannot create a temporary file beside it: ", std::strerror(errno));
  // mkostemp makes the file 0600; a plan or an output is as readable as any new file.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(w.fd_, 0666 & ~mask);
  return w;
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& o) noexcept
    : fd_(o.fd_), path_(std::move(o.path_)), tmp_(std::move(o.tmp_)) {
  o.fd_ = -1;
  o.tmp_.clear();
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

Status AtomicFileWriter::WriteAt(const void* data, size_t size, int64_t offset) {
  if (fd_ < 0) return Internal(path_, ": write after commit");
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = offset < 0 ? ::write(fd_, p, size) : ::pwrite(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoError(path_, ": cannot write: ", std::strerror(n < 0 ? errno : EIO));
    p += n;
    size -= static_cast<size_t>(n);
    if (offset >= 0) offset += n;
  }
  return Status::OK();
}

Status AtomicFileWriter::Write(const void* data, size_t size) { return WriteAt(data, size, -1); }

Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return Internal(path_, ": committed twice");
  if (::fsync(fd_) != 0) return IoError(path_, ": cannot sync: ", std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return IoError(path_, ": cannot close: ", std::strerror(errno));
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) return IoError(path_, ": cannot replace it: ", std::strerror(errno));
  tmp_.clear();
  return Status::OK();
}

}  // namespace kiln
