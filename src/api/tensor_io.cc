#include "api/tensor_io.h"

#include <algorithm>
#include <cctype>
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

// UTF-8 -> code points; false on invalid UTF-8 (overlong forms, surrogates, > U+10FFFF).
bool DecodeUtf8(const std::string& s, std::vector<uint32_t>* out) {
  out->clear();
  static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
    if (n < 0 || s.size() - i <= static_cast<size_t>(n)) return false;
    uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1fu) : n == 2 ? (c & 0x0fu) : (c & 0x07u);
    for (int k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3fu);
    }
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    out->push_back(cp);
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

void AppendUtf8(uint32_t cp, std::string* s) {
  if (cp < 0x80) {
    s->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    s->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    s->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

}  // namespace

bool IsValidUtf8(const std::string& s) {
  std::vector<uint32_t> cps;
  return DecodeUtf8(s, &cps);
}

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
  const size_t open = header.find_first_not_of(' ');
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
  // NumPy unicode strings ('<U7': 7 UTF-32 code units per element, NUL-padded).
  int64_t unicode_len = 0;
  if (descr.size() > 2 && (descr[0] == '<' || descr[0] == '=' || descr[0] == '|') && descr[1] == 'U') {
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(descr.c_str() + 2, &end, 10);
    if (*end != '\0' || n <= 0 || n > (1 << 24) || errno == ERANGE) return InvalidArgument(path, ": bad dtype '", descr, "'");
    unicode_len = n;
    dtype = DType::kString;
  }
  for (const NpyType& t : kNpyTypes)
    if (descr == t.descr || (descr.size() == 3 && descr[0] == '=' && descr.substr(1) == std::string(t.descr).substr(1)))
      dtype = t.dtype;
  if (dtype == DType::kUndefined) {
    if (descr.size() > 1 && descr[0] == '>')
      return Unimplemented(path, ": big-endian dtype '", descr, "' (save with arr.astype(arr.dtype.newbyteorder('<')))");
    if (!descr.empty() && (descr[1] == 'O' || descr[1] == 'S' || descr[1] == 'V' || descr == "O"))
      return Unimplemented(path, ": dtype '", descr, "' (objects, byte strings, records) cannot be read from .npy; save "
                           "text as a unicode array (arr.astype(str)) or use a .pb TensorProto");
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
  const int64_t elem_bytes = unicode_len > 0 ? unicode_len * 4 : static_cast<int64_t>(DTypeSize(dtype));
  if (__builtin_mul_overflow(numel, elem_bytes, &nbytes))
    return InvalidArgument(path, ": shape ", shape, " is too large");
  const int64_t data_at = header_at + header_len, have = in.size() - data_at;
  if (have < nbytes)
    return InvalidArgument(path, ": truncated data: the header says ", DTypeName(dtype), " ", shape, " (", nbytes,
                           " bytes) but the file holds ", have);
  if (have > nbytes)
    return InvalidArgument(path, ": ", have - nbytes, " bytes after the ", nbytes, " bytes of data the header announces");
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dtype, dims, path));
  if (unicode_len > 0) {
    KILN_ASSIGN_OR_RETURN(std::string raw, in.ReadRange(data_at, nbytes));
    for (int64_t i = 0; i < numel; ++i) {
      std::string& out = t.data<std::string>()[i];
      for (int64_t k = 0; k < unicode_len; ++k) {
        const auto* b = reinterpret_cast<const unsigned char*>(raw.data()) + (i * unicode_len + k) * 4;
        const uint32_t cp = b[0] | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
        if (cp == 0) break;  // NUL padding
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
          return InvalidArgument(path, ": element ", i, " holds an invalid code point ", cp);
        AppendUtf8(cp, &out);
      }
    }
    return t;
  }
  KILN_RETURN_IF_ERROR(in.ReadAt(data_at, nbytes, t.raw_data()));
  if (dtype == DType::kBool)  // normalize to 0/1 so bool reads are defined
    for (int64_t i = 0; i < t.numel(); ++i) static_cast<uint8_t*>(t.raw_data())[i] = static_cast<uint8_t*>(t.raw_data())[i] != 0;
  return t;
}

Status WriteNpy(const std::string& path, const Tensor& tensor) {
  const Tensor& t = tensor;
  std::string descr;
  std::string text;  // kString: the UTF-32 data
  if (t.dtype() == DType::kBFloat16) {
    descr = "<u2";  // the bit pattern (NumPy has no bfloat16)
  } else if (t.dtype() == DType::kString) {
    std::vector<std::vector<uint32_t>> cps(static_cast<size_t>(t.numel()));
    size_t width = 1;
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (!DecodeUtf8(t.data<std::string>()[i], &cps[static_cast<size_t>(i)]))
        return InvalidArgument(path, ": string element ", i, " is not valid UTF-8 (a .npy unicode array cannot hold it)");
      width = std::max(width, cps[static_cast<size_t>(i)].size());
    }
    descr = StrCat("<U", width);
    text.assign(static_cast<size_t>(t.numel()) * width * 4, '\0');
    for (size_t i = 0; i < cps.size(); ++i)
      for (size_t k = 0; k < cps[i].size(); ++k)
        for (int b = 0; b < 4; ++b) text[(i * width + k) * 4 + static_cast<size_t>(b)] = static_cast<char>((cps[i][k] >> (8 * b)) & 0xff);
  } else {
    for (const NpyType& nt : kNpyTypes)
      if (nt.dtype == t.dtype()) descr = nt.descr;
  }
  if (descr.empty()) return Unimplemented(path, ": cannot write ", DTypeName(t.dtype()), " to .npy");
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
  if (t.dtype() == DType::kString) {
    KILN_RETURN_IF_ERROR(out.Write(text.data(), text.size()));
  } else {
    KILN_RETURN_IF_ERROR(out.Write(t.raw_data(), t.nbytes()));
  }
  return out.Commit();
}

StatusOr<Tensor> ReadTensorFile(const std::string& path) {
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0) return ReadNpy(path);
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, ".pb") == 0) return ReadTensorProtoFile(path);
  return InvalidArgument(path, ": unknown tensor file type (expected .npy or .pb)");
}

StatusOr<RValue> ReadValueFile(const std::string& path, const TypeInfo* want) {
  const bool npy = path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0;
  const bool pb = path.size() >= 3 && path.compare(path.size() - 3, 3, ".pb") == 0;
  if (!npy && !pb) return InvalidArgument(path, ": unknown file type (expected .npy or .pb)");
  if (npy && want != nullptr && want->kind == TypeInfo::Kind::kSequence)
    return InvalidArgument(path, ": a .npy file holds one tensor, but the value is a ", want->ToString(),
                           ": give a SequenceProto .pb file");
  RValue v;
  if (pb) {
    KILN_ASSIGN_OR_RETURN(v, ReadValueProtoFile(path, want));
  } else {
    KILN_ASSIGN_OR_RETURN(Tensor t, ReadNpy(path));
    v = RValue(std::move(t));
  }
  const TypeInfo* tt = want;
  if (tt != nullptr && tt->kind == TypeInfo::Kind::kOptional) tt = tt->elem.get();
  // NumPy has no bfloat16: a uint16 tensor (an .npy array, or a TensorProto written from
  // one, as ONNX's own test data has) is taken as the bit patterns of a bfloat16 input.
  if (v.is_tensor() && tt != nullptr && tt->dtype == DType::kBFloat16 && v.tensor.dtype() == DType::kUInt16) {
    Tensor t = v.tensor;
    v = RValue(Tensor::FromExternal(DType::kBFloat16, t.dims(), t.raw_data(), std::make_shared<Tensor>(t)));
  }
  return v;
}

StatusOr<std::string> WriteValueFile(const std::string& dir, size_t index, const std::string& name, const RValue& v,
                                     const TypeInfo& type) {
  std::string base;
  for (char c : name) base += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (base.empty()) base = "output";
  const std::string stem = (std::filesystem::path(dir) / StrCat(index, "_", base)).string();
  if (type.kind != TypeInfo::Kind::kOptional && v.is_tensor() &&
      !(v.tensor.dtype() == DType::kString &&
        !std::all_of(v.tensor.data<std::string>(), v.tensor.data<std::string>() + v.tensor.numel(), IsValidUtf8))) {
    KILN_RETURN_IF_ERROR(WriteNpy(stem + ".npy", v.tensor));
    return stem + ".npy";
  }
  // (A value that is not what the type says -- no value for a non-optional type -- is
  // written as an optional, which can say "none".)
  const bool optional = type.kind == TypeInfo::Kind::kOptional || v.is_none();
  KILN_RETURN_IF_ERROR(WriteValueProtoFile(stem + ".pb", v, optional ? TypeInfo::Optional(type.kind == TypeInfo::Kind::kOptional && type.elem ? *type.elem : type) : type, name));
  return stem + ".pb";
}

}  // namespace kiln
