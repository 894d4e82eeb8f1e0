// libFuzzer target: bytes -> the tensor file readers that `kiln run --input` and the ONNX test
// runner use on user files: NumPy .npy (ReadNpy, ReadTensorFile) and ONNX .pb files holding a
// TensorProto, SequenceProto or OptionalProto (ReadTensorFile, ReadValueProtoFile). The rule it
// checks: any file gives a value or a clear error, never a crash, hang, out-of-bounds read,
// leak, or a tensor far larger than the file could describe (a header claiming gigabytes in a
// few bytes must be an error before anything is allocated).
//
// The readers take a path (they open through ReadOnlyFile, which refuses anything but a
// regular file), so each input is written to a per-process temporary file: the first byte
// picks the reader (see kReaders), the rest is the file's content. The seeds
// (fuzz/make_corpus.sh, OUT/tensor/) are .npy files of several dtypes and shapes and ONNX test
// data .pb files, each behind the selector byte of its reader.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "api/tensor_io.h"
#include "frontend/onnx/tensor_proto.h"
#include "ir/rvalue.h"
#include "ir/shape.h"

namespace {

enum class Reader { kNpy, kTensorFileNpy, kTensorFilePb, kValueNoHint, kValueTensor, kValueSequence, kValueOptional };
// Selector byte % 7 -> reader (the corpus seeds use these values as they are).
constexpr Reader kReaders[] = {Reader::kNpy,        Reader::kTensorFileNpy,  Reader::kTensorFilePb,  Reader::kValueNoHint,
                               Reader::kValueTensor, Reader::kValueSequence, Reader::kValueOptional};

// A writable directory for the per-process files: /dev/shm (no disk writes), else $TMPDIR, else /tmp.
std::string TempDir() {
  if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  const char* t = std::getenv("TMPDIR");
  if (t != nullptr && *t != '\0' && ::access(t, W_OK | X_OK) == 0) return t;
  return "/tmp";
}

constexpr char kPrefix[] = "kiln-fuzz-tensor-";

// Files left behind by earlier processes that died (a crash skips atexit): removed.
void SweepStale(const std::string& tmp) {
  DIR* d = ::opendir(tmp.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, kPrefix, sizeof(kPrefix) - 1) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(e->d_name + sizeof(kPrefix) - 1, &end, 10);
    if (pid > 0 && (std::strcmp(end, ".npy") == 0 || std::strcmp(end, ".pb") == 0) && pid != ::getpid() &&
        ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      ::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

const std::string& BasePath() {
  static const std::string* base = [] {
    const std::string tmp = TempDir();
    SweepStale(tmp);
    auto* b = new std::string(tmp + "/" + kPrefix + std::to_string(::getpid()));
    std::atexit([] {
      ::unlink((BasePath() + ".npy").c_str());
      ::unlink((BasePath() + ".pb").c_str());
    });
    return b;
  }();
  return *base;
}

// Writes the bytes to `path` (replacing it); a failure is the harness's environment, not kiln's.
void WriteFile(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(("fuzz_tensor_file: cannot create " + path).c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) {
      std::perror(("fuzz_tensor_file: cannot write " + path).c_str());
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

// Reads every element (so ASan sees a buffer as large as the dims say) and checks the size
// against what a file of `file_bytes` bytes can describe. The densest encodings: .npy holds
// its data verbatim; a TensorProto's int64_data/uint64_data take one varint byte per 8-byte
// element. Anything beyond 8x the file (plus slack for the empty-tensor cases) came from dims
// nothing in the file backs.
void Touch(const kiln::Tensor& t, size_t file_bytes, int64_t max_ratio) {
  if (!t.defined()) return;
  volatile uint8_t sink = 0;
  if (t.dtype() == kiln::DType::kString) {
    for (const std::string& s : t.span<std::string>())
      for (char c : s) sink = static_cast<uint8_t>(sink + static_cast<uint8_t>(c));
  } else {
    const auto* p = static_cast<const uint8_t*>(t.raw_data());
    for (size_t i = 0; i < t.nbytes(); ++i) sink = static_cast<uint8_t>(sink + p[i]);
    const int64_t limit = max_ratio * static_cast<int64_t>(file_bytes) + 64;
    if (static_cast<int64_t>(t.nbytes()) > limit) {
      std::fprintf(stderr, "fuzz_tensor_file: INVARIANT VIOLATED: a %zu-byte file gave %s (%zu bytes, more than %lld)\n", file_bytes,
                   t.ShapeString().c_str(), t.nbytes(), static_cast<long long>(limit));
      __builtin_trap();
    }
  }
  (void)sink;
}

void TouchValue(const kiln::RValue& v, size_t file_bytes) {
  if (v.is_tensor()) Touch(v.tensor, file_bytes, 8);
  for (const kiln::Tensor& t : v.sequence) Touch(t, file_bytes, 8);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Reader reader = kReaders[data[0] % (sizeof(kReaders) / sizeof(kReaders[0]))];
  const bool npy = reader == Reader::kNpy || reader == Reader::kTensorFileNpy;
  const std::string path = BasePath() + (npy ? ".npy" : ".pb");
  const size_t file_bytes = size - 1;
  WriteFile(path, data + 1, file_bytes);

  using kiln::TypeInfo;
  static const TypeInfo kTensorHint = TypeInfo::Tensor(kiln::DType::kFloat32, kiln::Shape());
  static const TypeInfo kSequenceHint = TypeInfo::Sequence(kTensorHint);
  static const TypeInfo kOptionalHint = TypeInfo::Optional(kTensorHint);
  switch (reader) {
    case Reader::kNpy:
    case Reader::kTensorFileNpy: {
      auto t = reader == Reader::kNpy ? kiln::ReadNpy(path) : kiln::ReadTensorFile(path);
      if (t.ok()) Touch(*t, file_bytes, 1);  // .npy data is verbatim: never more than the file
      break;
    }
    case Reader::kTensorFilePb: {
      auto t = kiln::ReadTensorFile(path);
      if (t.ok()) Touch(*t, file_bytes, 8);
      break;
    }
    case Reader::kValueNoHint:
    case Reader::kValueTensor:
    case Reader::kValueSequence:
    case Reader::kValueOptional: {
      const TypeInfo* hint = reader == Reader::kValueTensor     ? &kTensorHint
                             : reader == Reader::kValueSequence ? &kSequenceHint
                             : reader == Reader::kValueOptional ? &kOptionalHint
                                                                : nullptr;
      auto v = kiln::ReadValueProtoFile(path, hint);
      if (v.ok()) TouchValue(*v, file_bytes);
      break;
    }
  }
  return 0;
}
