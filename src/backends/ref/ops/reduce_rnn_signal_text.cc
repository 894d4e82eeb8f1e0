// Text ops: StringNormalizer and TfIdfVectorizer.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

// ---- StringNormalizer -------------------------------------------------------------------

// Decodes one UTF-8 code point at s[i], advancing i. A malformed byte decodes to a value
// past the Unicode range (callers that need text check with FindMalformedUtf8 first).
char32_t DecodeUtf8(const std::string& s, size_t& i) {
  const unsigned char b0 = static_cast<unsigned char>(s[i]);
  const char32_t malformed = 0x110000 + b0;
  if (b0 < 0x80) { ++i; return b0; }
  const int extra = b0 < 0xC0 ? -1 : b0 < 0xE0 ? 1 : b0 < 0xF0 ? 2 : b0 < 0xF8 ? 3 : -1;
  if (extra < 0 || i + static_cast<size_t>(extra) >= s.size()) { ++i; return malformed; }
  char32_t cp = b0 & (0x7F >> (extra + 1));
  for (int k = 1; k <= extra; ++k) {
    const unsigned char b = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
    if ((b & 0xC0) != 0x80) { ++i; return malformed; }
    cp = (cp << 6) | (b & 0x3F);
  }
  i += static_cast<size_t>(extra) + 1;
  return cp;
}

void EncodeUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Simple (one-to-one) case mapping of the scripts the en_US locale folds: ASCII, Latin-1,
// Latin Extended-A, Greek and Cyrillic. Like towupper/towlower, 'ß' and other letters
// without a single-letter counterpart stay as they are. Being explicit (instead of asking
// the C library) keeps the oracle independent of the locales installed on the machine.
char32_t ToUpperCp(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;  // micro sign -> Greek capital mu
  if (c >= 0x100 && c <= 0x137 && (c & 1)) return c - 1;
  if (c >= 0x139 && c <= 0x148 && !(c & 1)) return c - 1;
  if (c >= 0x14A && c <= 0x177 && (c & 1)) return c - 1;
  if ((c == 0x17A || c == 0x17C || c == 0x17E)) return c - 1;
  if (c == 0x131) return 'I';
  if (c == 0x17F) return 'S';
  if (c == 0x3C2) return 0x3A3;  // final sigma
  if (c >= 0x3B1 && c <= 0x3C9) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

char32_t ToLowerCp(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x137 && !(c & 1) && c != 0x130) return c + 1;
  if (c == 0x130) return 'i';
  if (c >= 0x139 && c <= 0x148 && (c & 1)) return c + 1;
  if (c >= 0x14A && c <= 0x177 && !(c & 1)) return c + 1;
  if (c == 0x179 || c == 0x17B || c == 0x17D) return c + 1;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

// The offset of the first byte that does not start a well-formed UTF-8 sequence, or npos.
size_t FindMalformedUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    if (DecodeUtf8(s, i) >= 0x110000) return start;
  }
  return std::string::npos;
}

std::string ChangeCase(const std::string& s, bool upper) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const char32_t cp = DecodeUtf8(s, i);
    const char32_t mapped = upper ? ToUpperCp(cp) : ToLowerCp(cp);
    if (mapped == cp) out.append(s, start, i - start);  // keeps malformed bytes intact
    else EncodeUtf8(mapped, out);
  }
  return out;
}

Status StringNormalizerKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kString) return InvalidArgument("input X must be a string tensor");
  if (x.rank() < 1 || x.rank() > 2 || (x.rank() == 2 && x.dim(0) != 1))
    return InvalidArgument("input X must be [C] or [1, C], got ", x.ShapeString());
  KILN_ASSIGN_OR_RETURN(std::string action, ctx.attrs().GetString("case_change_action", "NONE"));
  KILN_ASSIGN_OR_RETURN(int64_t sensitive, ctx.attrs().GetInt("is_case_sensitive", 0));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> stopwords, ctx.attrs().GetStrings("stopwords"));
  if (action != "NONE" && action != "LOWER" && action != "UPPER")
    return InvalidArgument("attribute 'case_change_action' must be NONE, LOWER or UPPER, got '", action, "'");
  // Changing case and case-insensitive matching read the strings as text: bytes that are not
  // UTF-8 are the input's error (ONNX Runtime refuses them too), not something to guess at.
  if (action != "NONE" || (!sensitive && !stopwords.empty())) {
    const auto words = x.span<std::string>();
    for (size_t e = 0; e < words.size(); ++e) {
      const size_t at = FindMalformedUtf8(words[e]);
      if (at != std::string::npos) {
        const unsigned char b = static_cast<unsigned char>(words[e][at]);
        const char hex[] = {"0123456789abcdef"[b >> 4], "0123456789abcdef"[b & 15], 0};
        return InvalidArgument("input X element ", e, " is not valid UTF-8 (byte 0x", hex, " at offset ", at,
                               "); StringNormalizer needs text to change case or match stopwords case-insensitively");
      }
    }
  }
  // Case-insensitive matching compares lower-cased forms (as ONNX Runtime does).
  auto key = [&](const std::string& w) { return sensitive ? w : ChangeCase(w, false); };
  std::vector<std::string> stop_keys;
  for (const std::string& sw : stopwords) stop_keys.push_back(key(sw));
  std::vector<std::string> kept;
  for (const std::string& w : x.span<std::string>()) {
    const std::string k = key(w);
    if (std::find(stop_keys.begin(), stop_keys.end(), k) != stop_keys.end()) continue;
    kept.push_back(action == "NONE" ? w : ChangeCase(w, action == "UPPER"));
  }
  // Everything dropped: the spec's output is one empty string ([1] or [1, 1]).
  if (kept.empty()) kept.push_back("");
  const int64_t n = static_cast<int64_t>(kept.size());
  ctx.set_output(0, Tensor::FromVector(kept, x.rank() == 2 ? std::vector<int64_t>{1, n} : std::vector<int64_t>{n}));
  return Status::OK();
}

// ---- TfIdfVectorizer --------------------------------------------------------------------

// The n-gram pool: every n-gram (as a sequence of string or integer tokens) mapped to its
// index in the pool, i.e. the index into ngram_indexes and weights.
template <typename Token>
struct NgramPool {
  std::map<std::vector<Token>, int64_t> index;
  int64_t size = 0;  // number of n-grams
};

// Splits the flat pool attribute into n-grams using ngram_counts (the start of the
// (k+1)-grams is ngram_counts[k]).
template <typename Token>
StatusOr<NgramPool<Token>> BuildPool(const std::vector<Token>& items, const std::vector<int64_t>& counts) {
  NgramPool<Token> pool;
  const int64_t total = static_cast<int64_t>(items.size());
  for (size_t k = 0; k < counts.size(); ++k) {
    const int64_t n = static_cast<int64_t>(k) + 1;
    const int64_t begin = counts[k], end = k + 1 < counts.size() ? counts[k + 1] : total;
    if (begin < 0 || end < begin || end > total)
      return InvalidArgument("attribute 'ngram_counts' is not an increasing list of pool offsets");
    if ((end - begin) % n != 0)
      return InvalidArgument("attribute 'ngram_counts': the ", n, "-grams do not fill a whole number of n-grams");
    for (int64_t i = begin; i < end; i += n) {
      std::vector<Token> gram(items.begin() + i, items.begin() + i + n);
      pool.index.emplace(std::move(gram), pool.size++);
    }
  }
  return pool;
}

struct TfIdfParams {
  int64_t min_gram = 0, max_gram = 0, max_skip = 0;
  std::vector<int64_t> ngram_indexes;
  std::vector<float> weights;
  std::string mode;
  int64_t out_size = 0;
};

StatusOr<TfIdfParams> ReadTfIdfParams(const AttrMap& attrs) {
  TfIdfParams p;
  KILN_ASSIGN_OR_RETURN(p.min_gram, attrs.RequireInt("min_gram_length"));
  KILN_ASSIGN_OR_RETURN(p.max_gram, attrs.RequireInt("max_gram_length"));
  KILN_ASSIGN_OR_RETURN(p.max_skip, attrs.RequireInt("max_skip_count"));
  KILN_ASSIGN_OR_RETURN(p.ngram_indexes, attrs.GetInts("ngram_indexes"));
  KILN_ASSIGN_OR_RETURN(p.weights, attrs.GetFloats("weights"));
  KILN_ASSIGN_OR_RETURN(p.mode, attrs.GetString("mode", ""));
  if (p.min_gram < 1 || p.max_gram < p.min_gram)
    return InvalidArgument("attributes 'min_gram_length'/'max_gram_length' must satisfy 1 <= min <= max");
  if (p.max_skip < 0) return InvalidArgument("attribute 'max_skip_count' must be >= 0");
  if (p.mode != "TF" && p.mode != "IDF" && p.mode != "TFIDF")
    return InvalidArgument("attribute 'mode' must be TF, IDF or TFIDF, got '", p.mode, "'");
  if (p.ngram_indexes.empty()) return InvalidArgument("attribute 'ngram_indexes' must not be empty");
  for (int64_t i : p.ngram_indexes) {
    if (i < 0 || i >= (int64_t{1} << 31)) return InvalidArgument("attribute 'ngram_indexes' holds ", i);
    p.out_size = std::max(p.out_size, i + 1);
  }
  if (!p.weights.empty() && p.weights.size() != p.ngram_indexes.size())
    return InvalidArgument("attribute 'weights' must have as many entries as 'ngram_indexes'");
  return p;
}

// Counts, for one row of tokens, how often each pool n-gram occurs. An n-gram of length n
// with skip s takes tokens start, start+(s+1), ..., start+(n-1)(s+1). Unigrams do not
// depend on the skip and are counted once (as ONNX Runtime does).
template <typename Token>
std::vector<int64_t> CountNgrams(const std::vector<Token>& row, const NgramPool<Token>& pool, const TfIdfParams& p) {
  std::vector<int64_t> counts(static_cast<size_t>(pool.size), 0);
  const int64_t len = static_cast<int64_t>(row.size());
  for (int64_t n = p.min_gram; n <= p.max_gram; ++n) {
    const int64_t skips = n == 1 ? 0 : p.max_skip;
    for (int64_t s = 0; s <= skips; ++s)
      for (int64_t start = 0; start + (n - 1) * (s + 1) < len; ++start) {
        std::vector<Token> gram;
        for (int64_t k = 0; k < n; ++k) gram.push_back(row[static_cast<size_t>(start + k * (s + 1))]);
        auto hit = pool.index.find(gram);
        if (hit != pool.index.end()) ++counts[static_cast<size_t>(hit->second)];
      }
  }
  return counts;
}

template <typename Token>
Status RunTfIdf(RefContext& ctx, const std::vector<Token>& tokens, const std::vector<Token>& pool_items,
                const TfIdfParams& p) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ngram_counts, ctx.attrs().GetInts("ngram_counts"));
  KILN_ASSIGN_OR_RETURN(NgramPool<Token> pool, BuildPool(pool_items, ngram_counts));
  if (pool.size != static_cast<int64_t>(p.ngram_indexes.size()))
    return InvalidArgument("attribute 'ngram_indexes' has ", p.ngram_indexes.size(), " entries but the pool holds ",
                           pool.size, " n-grams");
  const int64_t rows = x.rank() == 2 ? x.dim(0) : 1, cols = x.rank() == 2 ? x.dim(1) : x.numel();
  Tensor y(DType::kFloat32, x.rank() == 2 ? std::vector<int64_t>{rows, p.out_size} : std::vector<int64_t>{p.out_size});
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<Token> row(tokens.begin() + r * cols, tokens.begin() + (r + 1) * cols);
    const std::vector<int64_t> counts = CountNgrams(row, pool, p);
    float* out = y.data<float>() + r * p.out_size;
    for (size_t i = 0; i < counts.size(); ++i) {
      const double w = p.weights.empty() ? 1.0 : p.weights[i];
      const double c = double(counts[i]);
      const double v = p.mode == "TF" ? c : p.mode == "IDF" ? (c > 0 ? w : 0.0) : c * w;
      out[p.ngram_indexes[i]] += static_cast<float>(v);
    }
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status TfIdfVectorizerKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 1 || x.rank() > 2) return InvalidArgument("input X must be 1-D or 2-D, got ", x.ShapeString());
  KILN_ASSIGN_OR_RETURN(TfIdfParams p, ReadTfIdfParams(ctx.attrs()));
  const bool has_strings = ctx.attrs().has("pool_strings"), has_ints = ctx.attrs().has("pool_int64s");
  if (has_strings == has_ints) return InvalidArgument("exactly one of 'pool_strings' and 'pool_int64s' must be set");
  if (has_strings) {
    if (x.dtype() != DType::kString) return InvalidArgument("input X must be a string tensor with 'pool_strings'");
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> pool, ctx.attrs().GetStrings("pool_strings"));
    std::vector<std::string> tokens(x.span<std::string>().begin(), x.span<std::string>().end());
    return RunTfIdf(ctx, tokens, pool, p);
  }
  if (x.dtype() != DType::kInt32 && x.dtype() != DType::kInt64)
    return InvalidArgument("input X must be int32 or int64 with 'pool_int64s'");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pool, ctx.attrs().GetInts("pool_int64s"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> tokens, x.ToInt64Vector());
  return RunTfIdf(ctx, tokens, pool, p);
}

}  // namespace

void RegisterTextKernels(RefKernelRegistry& r) {
  r.Add("", "StringNormalizer", &StringNormalizerKernel);
  r.Add("", "TfIdfVectorizer", &TfIdfVectorizerKernel);
}

}  // namespace kiln
