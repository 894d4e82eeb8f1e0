#include "api/tensor_io.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/checked_math.h"
#include "base/file.h"
#include "frontend/onnx/tensor_proto.h"

namespace kiln {

namespace {

struct NpyType {
  const char* descr;
  DType dtype;
};
constexpr NpyType kNpyTypes[] = {
    {"|b1", DType::kBool},    {"|u1", DType::kUInt8},   {"|i1", DType::kInt8},     {"<u2", DType::kUInt16},
    {"<i2", DType::kInt16},   {"<u4", DType::kUInt32},  {"<i4", DType::kInt32},    {"<u8", DType::kUInt64},
    {"<i8", DType::kInt64},   {"<f2", DType::kFloat16}, {"<f4", DType::kFloat32},  {"<f8", DType::kFloat64},
    {"<c8", DType::kComplex64}, {"<c16", DType::kComplex128},
};

// Extracts the value of 'key' from a NumPy header dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".
std::string HeaderField(const std::string& h, const std::string& key) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) return {};
  size_t colon = h.find(':', k);
  if (colon == std::string::npos) return {};
  size_t start = h.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) return {};
  if (h[start] == '\'') {
    size_t end = h.find('\'', start + 1);
    return end == std::string::npos ? std::string() : h.substr(start + 1, end - start - 1);
  }
  if (h[start] == '(') {
    size_t end = h.find(')', start);
    return end == std::string::npos ? std::string() : h.substr(start, end - start + 1);
  }
  size_t end = h.find_first_of(",}", start);
  return h.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

StatusOr<Tensor> ReadNpy(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(ReadOnlyFile in, ReadOnlyFile::Open(path));
  char magic[10];
  if (in.size() < 10 || !in.ReadAt(0, 10, magic).ok() || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    return InvalidArgument(path, ": not a .npy file (bad magic)");
  int64_t header_len = 0, header_at = 0;
  if (magic[6] == 1) {
    header_len = static_cast<uint8_t>(magic[8]) | (int64_t{static_cast<uint8_t>(magic[9])} << 8);
    header_at = 10;
  } else if (magic[6] == 2 || magic[6] == 3) {
    uint8_t b[4];
    if (in.size() < 12 || !in.ReadAt(8, 4, b).ok()) return InvalidArgument(path, ": truncated header");
    header_len = b[0] | (int64_t{b[1]} << 8) | (int64_t{b[2]} << 16) | (int64_t{b[3]} << 24);
    header_at = 12;
  } else {
    return InvalidArgument(path, ": unsupported .npy version ", int(magic[6]));
  }
  if (header_len > (1 << 20)) return InvalidArgument(path, ": header of ", header_len, " bytes is too large");
  if (header_len > in.size() - header_at)
    return InvalidArgument(path, ": truncated header (", header_len, " bytes announced, ", in.size() - header_at,
                           " in the file)");
  KILN_ASSIGN_OR_RETURN(std::string header, in.ReadRange(header_at, header_len));
  // The header is a Python dict literal: {'descr': ..., 'fortran_order': ..., 'shape': (...), }
  const size_t open = header.find_first_not_of(" ");
  const size_t close = header.find_last_not_of(" \n\r\t\0");
  if (open == std::string::npos || header[open] != '{' || close == std::string::npos || header[close] != '}')
    return InvalidArgument(path, ": the .npy header is not a Python dict: '", header.substr(0, 80), "'");
  for (const char* key : {"descr", "fortran_order", "shape"})
    if (header.find(StrCat("'", key, "'")) == std::string::npos)
      return InvalidArgument(path, ": the .npy header has no '", key, "' field");
  std::string descr = HeaderField(header, "descr");
  const std::string fortran = HeaderField(header, "fortran_order");
  if (fortran == "True")
    return Unimplemented(path, ": Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  if (fortran != "False") return InvalidArgument(path, ": bad fortran_order '", fortran, "' in the .npy header");
  DType dtype = DType::kUndefined;
  for (const NpyType& t : kNpyTypes)
    if (descr == t.descr || (descr.size() == 3 && descr[0] == '=' && descr.substr(1) == std::string(t.descr).substr(1)))
      dtype = t.dtype;
  if (dtype == DType::kUndefined) {
    if (descr.size() > 1 && descr[0] == '>')
      return Unimplemented(path, ": big-endian dtype '", descr, "' (save with arr.astype(arr.dtype.newbyteorder('<')))");
    if (!descr.empty() && (descr[1] == 'O' || descr[1] == 'U' || descr[1] == 'S' || descr[1] == 'V' || descr == "O"))
      return Unimplemented(path, ": dtype '", descr, "' (objects, strings, records) cannot be read from .npy; use a .pb TensorProto");
    return Unimplemented(path, ": unsupported dtype '", descr, "'");
  }
  std::string shape = HeaderField(header, "shape");
  if (shape.empty() || shape.front() != '(' || shape.back() != ')')
    return InvalidArgument(path, ": bad shape field '", shape, "'");
  std::vector<int64_t> dims;
  for (size_t i = 1; i < shape.size();) {
    size_t j = shape.find_first_of(",)", i);
    if (j == std::string::npos) break;
    std::string tok = shape.substr(i, j - i);
    tok.erase(0, tok.find_first_not_of(' '));
    while (!tok.empty() && tok.back() == ' ') tok.pop_back();
    if (!tok.empty()) {
      char* end = nullptr;
      errno = 0;
      long long d = std::strtoll(tok.c_str(), &end, 10);
      if (*end != '\0' || d < 0 || errno == ERANGE) return InvalidArgument(path, ": bad shape '", shape, "'");
      dims.push_back(d);
    }
    i = j + 1;
  }
  // The data size follows from the header: check it against the file before allocating.
  KILN_ASSIGN_OR_RETURN(int64_t numel, CheckedNumel(dims, path));
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(DTypeSize(dtype)), &nbytes))
    return InvalidArgument(path, ": shape ", shape, " is too large");
  const int64_t data_at = header_at + header_len, have = in.size() - data_at;
  if (have < nbytes)
    return InvalidArgument(path, ": truncated data: the header says ", DTypeName(dtype), " ", shape, " (", nbytes,
                           " bytes) but the file holds ", have);
  if (have > nbytes)
    return InvalidArgument(path, ": ", have - nbytes, " bytes after the ", nbytes, " bytes of data the header announces");
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dtype, dims, path));
  KILN_RETURN_IF_ERROR(in.ReadAt(data_at, nbytes, t.raw_data()));
  if (dtype == DType::kBool)  // normalize to 0/1 so bool reads are defined
    for (int64_t i = 0; i < t.numel(); ++i) static_cast<uint8_t*>(t.raw_data())[i] = static_cast<uint8_t*>(t.raw_data())[i] != 0;
  return t;
}

Status WriteNpy(const std::string& path, const Tensor& tensor) {
  Tensor t = tensor;
  if (t.dtype() == DType::kBFloat16) {
    KILN_ASSIGN_OR_RETURN(t, tensor.CastTo(DType::kFloat32));
  }
  const char* descr = nullptr;
  for (const NpyType& nt : kNpyTypes)
    if (nt.dtype == t.dtype()) descr = nt.descr;
  if (descr == nullptr) return Unimplemented(path, ": cannot write ", DTypeName(t.dtype()), " to .npy");
  std::string shape = "(";
  for (int64_t d : t.dims()) shape += std::to_string(d) + ", ";
  if (t.rank() > 1) shape.resize(shape.size() - 2);
  else if (t.rank() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': ", shape, ", }");
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  KILN_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char lb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  KILN_RETURN_IF_ERROR(out.Write("\x93NUMPY\x01\x00", 8));
  KILN_RETURN_IF_ERROR(out.Write(lb, 2));
  KILN_RETURN_IF_ERROR(out.Write(header.data(), header.size()));
  KILN_RETURN_IF_ERROR(out.Write(t.raw_data(), t.nbytes()));
  return out.Commit();
}

StatusOr<Tensor> ReadTensorFile(const std::string& path) {
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0) return ReadNpy(path);
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, ".pb") == 0) return ReadTensorProtoFile(path);
  return InvalidArgument(path, ": unknown tensor file type (expected .npy or .pb)");
}

}  // namespace kiln
