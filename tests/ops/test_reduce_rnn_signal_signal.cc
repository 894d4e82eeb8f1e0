// Signal ops (DFT, STFT, windows, MelWeightMatrix) and text ops (StringNormalizer,
// TfIdfVectorizer): values worked out by hand or with numpy.fft, and bad inputs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/op_test_util.h"

namespace kiln::testing {
namespace {

std::string InferredType(const OpRun& r) { return r.graph.value(r.graph.outputs()[0]).type.ToString(); }

Tensor Strings(std::vector<std::string> v, std::vector<int64_t> dims) { return Tensor::FromVector(v, std::move(dims)); }

// [1, 2, 3, 4] as one real signal [batch 1, 4, 1]; numpy.fft.fft gives [10, -2+2j, -2, -2-2j].
const Tensor kSignal = F32({1, 2, 3, 4}, {1, 4, 1});

TEST(ReduceRnnSignalSignal, DftOfRealSignal) {
  OpRun r = RunOp("DFT", {kSignal});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({10, 0, -2, 2, -2, 0, -2, -2}, {1, 4, 2})));
  OpRun half = RunOp("DFT", {kSignal}, A({{"onesided", Attr::Int(1)}}));
  ASSERT_TRUE(half.status.ok());
  EXPECT_TRUE(TensorsClose(half.outputs[0].tensor, F32({10, 0, -2, 2, -2, 0}, {1, 3, 2})));
  EXPECT_EQ(InferredType(half), "float32[1,3,2]");
}

TEST(ReduceRnnSignalSignal, InverseDftRoundTrips) {
  OpRun r = RunOp("DFT", {F32({10, 0, -2, 2, -2, 0, -2, -2}, {1, 4, 2})}, A({{"inverse", Attr::Int(1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 0, 2, 0, 3, 0, 4, 0}, {1, 4, 2}), 1e-5, 1e-5));
}

TEST(ReduceRnnSignalSignal, DftLengthTruncatesAndPads) {
  OpRun cut = RunOp("DFT", {kSignal, I64({2}, {})}, {}, 1, {1});  // [1, 2] -> [3, -1]
  ASSERT_TRUE(cut.status.ok()) << cut.status.ToString();
  EXPECT_TRUE(TensorsClose(cut.outputs[0].tensor, F32({3, 0, -1, 0}, {1, 2, 2})));
  EXPECT_EQ(InferredType(cut), "float32[1,2,2]");
  // Zero-padded to 8: bin 4 is the alternating sum 1 - 2 + 3 - 4 = -2.
  OpRun pad = RunOp("DFT", {kSignal, I64({8}, {})}, {}, 1, {1});
  ASSERT_TRUE(pad.status.ok());
  EXPECT_NEAR(pad.outputs[0].tensor.data<float>()[8], -2.0, 1e-5);
}

TEST(ReduceRnnSignalSignal, DftAlongSecondSignalAxis) {
  // [batch 1, 2, 2, 1]: transforming axis 2 (negative: -2) pairs up [1, 2] and [3, 4].
  OpRun r = RunOp("DFT", {F32({1, 2, 3, 4}, {1, 2, 2, 1})}, A({{"axis", Attr::Int(-2)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({3, 0, -1, 0, 7, 0, -1, 0}, {1, 2, 2, 2})));
}

TEST(ReduceRnnSignalSignal, DftBadInputsAreErrors) {
  EXPECT_TRUE(Has(RunOp("DFT", {kSignal}, A({{"axis", Attr::Int(-1)}})).status, "axis"));
  EXPECT_TRUE(Has(RunOp("DFT", {kSignal}, A({{"axis", Attr::Int(5)}})).status, "axis"));
  EXPECT_TRUE(Has(RunOp("DFT", {F32({1, 2, 3}, {1, 1, 3})}).status, "last dim"));
  EXPECT_TRUE(Has(RunOp("DFT", {kSignal, I64({0}, {})}, {}, 1, {1}).status, "dft_length"));
  EXPECT_TRUE(Has(RunOp("DFT", {kSignal, I64({-3}, {})}).status, "dft_length"));
  EXPECT_FALSE(RunOp("DFT", {kSignal}, A({{"inverse", Attr::Int(1)}, {"onesided", Attr::Int(1)}})).status.ok());
}

TEST(ReduceRnnSignalSignal, StftFramesWithAndWithoutWindow) {
  // Frames [1 2 3 4] and [5 6 7 8] (step 4): onesided bins [sum, -2+2j, -2].
  const Tensor x = F32({1, 2, 3, 4, 5, 6, 7, 8}, {1, 8, 1});
  OpRun r = RunOp("STFT", {x, I64({4}, {}), Tensor(), I64({4}, {})}, {}, 1, {1, 3});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({10, 0, -2, 2, -2, 0, 26, 0, -2, 2, -2, 0}, {1, 2, 3, 2})));
  EXPECT_EQ(InferredType(r), "float32[1,2,3,2]");
  // Window [1 0 1 0] keeps samples 0 and 2: frame 0 -> [4, -2, 4], frame 1 -> [12, -2, 12].
  OpRun w = RunOp("STFT", {x, I64({4}, {}), F32({1, 0, 1, 0}, {4})}, {}, 1, {1});
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_TRUE(TensorsClose(w.outputs[0].tensor, F32({4, 0, -2, 0, 4, 0, 12, 0, -2, 0, 12, 0}, {1, 2, 3, 2}), 1e-5, 1e-5));
}

TEST(ReduceRnnSignalSignal, StftBadInputsAreErrors) {
  const Tensor x = F32({1, 2, 3, 4}, {1, 4, 1});
  EXPECT_TRUE(Has(RunOp("STFT", {x, I64({0}, {}), Tensor(), I64({2}, {})}).status, "frame_step"));
  EXPECT_TRUE(Has(RunOp("STFT", {x, I64({1}, {}), Tensor(), I64({9}, {})}).status, "frame length"));
  EXPECT_TRUE(Has(RunOp("STFT", {x, I64({1}, {}), F32({1, 1}, {2}), I64({3}, {})}).status, "frame_length"));
  EXPECT_TRUE(Has(RunOp("STFT", {x, I64({1}, {})}).status, "window"));
}

TEST(ReduceRnnSignalSignal, Windows) {
  OpRun hann = RunOp("HannWindow", {I64({4}, {})}, {}, 1, {0});
  ASSERT_TRUE(hann.status.ok()) << hann.status.ToString();
  EXPECT_TRUE(TensorsClose(hann.outputs[0].tensor, F32({0, 0.5f, 1, 0.5f}, {4})));
  EXPECT_EQ(InferredType(hann), "float32[4]");
  OpRun sym = RunOp("HannWindow", {I64({5}, {})}, A({{"periodic", Attr::Int(0)}}));
  ASSERT_TRUE(sym.status.ok());
  EXPECT_TRUE(TensorsClose(sym.outputs[0].tensor, F32({0, 0.5f, 1, 0.5f, 0}, {5})));
  OpRun hamming = RunOp("HammingWindow", {I64({4}, {})});
  ASSERT_TRUE(hamming.status.ok());
  EXPECT_TRUE(TensorsClose(hamming.outputs[0].tensor, F32({0.08695652f, 0.54347826f, 1, 0.54347826f}, {4})));
  OpRun blackman = RunOp("BlackmanWindow", {I64({4}, {})}, A({{"output_datatype", Attr::Int(11)}}));
  ASSERT_TRUE(blackman.status.ok());
  EXPECT_EQ(blackman.outputs[0].tensor.dtype(), DType::kFloat64);
  EXPECT_NEAR(blackman.outputs[0].tensor.data<double>()[1], 0.34, 1e-12);
  EXPECT_TRUE(Has(RunOp("HannWindow", {I64({4}, {})}, A({{"output_datatype", Attr::Int(8)}})).status, "output_datatype"));
  EXPECT_TRUE(Has(RunOp("HannWindow", {I64({-1}, {})}, {}, 1, {0}).status, "size"));
  EXPECT_TRUE(Has(RunOp("HannWindow", {I64({4, 4}, {2})}).status, "size"));
}

TEST(ReduceRnnSignalSignal, MelWeightMatrixMatchesOnnxExample) {
  // ONNX's example (8 mel bins, dft_length 16, 8192 Hz, 0..4096 Hz): bin edges
  // [0 0 0 1 1 2 3 4 5 6] give a single 1 per mel bin at these (spectrogram bin, mel bin).
  OpRun r = RunOp("MelWeightMatrix", {Tensor::Scalar<int32_t>(8), Tensor::Scalar<int32_t>(16),
                                      Tensor::Scalar<int32_t>(8192), Tensor::Scalar<float>(0), Tensor::Scalar<float>(4096)},
                  {}, 1, {0, 1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(InferredType(r), "float32[9,8]");
  std::vector<float> want(72, 0.f);
  for (auto [j, i] : {std::pair{0, 0}, {0, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6}, {5, 7}}) want[size_t(j * 8 + i)] = 1;
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32(want, {9, 8})));
  OpRun bad = RunOp("MelWeightMatrix", {Tensor::Scalar<int32_t>(0), Tensor::Scalar<int32_t>(16), Tensor::Scalar<int32_t>(8192),
                                        Tensor::Scalar<float>(0), Tensor::Scalar<float>(4096)});
  EXPECT_FALSE(bad.status.ok());
}

TEST(ReduceRnnSignalText, StringNormalizerStopwordsAndCase) {
  const Tensor x = Strings({"monday", "tuesday", "MONDAY", "wednesday"}, {4});
  OpRun r = RunOp("StringNormalizer", {x},
                  A({{"stopwords", Attr::Strings({"Monday"})}, {"case_change_action", Attr::String("UPPER")}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outputs[0].tensor.dims(), (std::vector<int64_t>{2}));
  EXPECT_EQ(r.outputs[0].tensor.data<std::string>()[0], "TUESDAY");
  EXPECT_EQ(r.outputs[0].tensor.data<std::string>()[1], "WEDNESDAY");
  OpRun sensitive = RunOp("StringNormalizer", {x}, A({{"stopwords", Attr::Strings({"monday"})}, {"is_case_sensitive", Attr::Int(1)}}));
  ASSERT_TRUE(sensitive.status.ok());
  EXPECT_EQ(sensitive.outputs[0].tensor.numel(), 3);
  EXPECT_EQ(sensitive.outputs[0].tensor.data<std::string>()[1], "MONDAY");
}

TEST(ReduceRnnSignalText, StringNormalizerNonAsciiAndEmptyOutput) {
  OpRun lower = RunOp("StringNormalizer", {Strings({"ÉCOLE Straße", "ПРИВЕТ"}, {1, 2})},
                      A({{"case_change_action", Attr::String("LOWER")}}));
  ASSERT_TRUE(lower.status.ok()) << lower.status.ToString();
  EXPECT_EQ(lower.outputs[0].tensor.data<std::string>()[0], "école straße");
  EXPECT_EQ(lower.outputs[0].tensor.data<std::string>()[1], "привет");
  OpRun empty = RunOp("StringNormalizer", {Strings({"a", "A"}, {1, 2})}, A({{"stopwords", Attr::Strings({"a"})}}));
  ASSERT_TRUE(empty.status.ok()) << empty.status.ToString();
  EXPECT_EQ(empty.outputs[0].tensor.dims(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(empty.outputs[0].tensor.data<std::string>()[0], "");
  EXPECT_TRUE(Has(RunOp("StringNormalizer", {Strings({"a"}, {1})}, A({{"case_change_action", Attr::String("TITLE")}})).status,
                  "case_change_action"));
  EXPECT_FALSE(RunOp("StringNormalizer", {Strings({"a", "b"}, {2, 1})}).status.ok());
  EXPECT_FALSE(RunOp("StringNormalizer", {F32({1}, {1})}).status.ok());
}

// Changing case reads text: bytes that are not UTF-8 are an error naming the element and
// byte; with no case change and case-sensitive stopwords, strings are only compared, and any
// bytes pass through.
TEST(ReduceRnnSignalText, StringNormalizerInvalidUtf8) {
  const Tensor x = Strings({"ok", std::string("ab\xff", 3), std::string("\xc3(", 2)}, {3});
  OpRun upper = RunOp("StringNormalizer", {x}, A({{"case_change_action", Attr::String("UPPER")}}));
  EXPECT_TRUE(Has(upper.status, "input X element 1 is not valid UTF-8 (byte 0xff at offset 2)")) << upper.status.ToString();
  OpRun insensitive = RunOp("StringNormalizer", {x}, A({{"stopwords", Attr::Strings({"ok"})}}));
  EXPECT_TRUE(Has(insensitive.status, "not valid UTF-8")) << insensitive.status.ToString();
  OpRun bytes = RunOp("StringNormalizer", {x}, A({{"stopwords", Attr::Strings({"ok"})}, {"is_case_sensitive", Attr::Int(1)}}));
  ASSERT_TRUE(bytes.status.ok()) << bytes.status.ToString();
  EXPECT_EQ(bytes.outputs[0].tensor.data<std::string>()[0], std::string("ab\xff", 3));
}

// Pool of ONNX's examples: unigrams [2 3 5 4], bigrams [5 6] [7 8] [6 7].
AttrMap TfIdfAttrs(const char* mode, int64_t min_gram, int64_t max_gram, int64_t skip) {
  return A({{"mode", Attr::String(mode)},
            {"min_gram_length", Attr::Int(min_gram)},
            {"max_gram_length", Attr::Int(max_gram)},
            {"max_skip_count", Attr::Int(skip)},
            {"ngram_counts", Attr::Ints({0, 4})},
            {"ngram_indexes", Attr::Ints({0, 1, 2, 3, 4, 5, 6})},
            {"pool_int64s", Attr::Ints({2, 3, 5, 4, 5, 6, 7, 8, 6, 7})}});
}
const Tensor kTokens = Tensor::FromVector<int32_t>({1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8});

TEST(ReduceRnnSignalText, TfIdfCountsNgramsWithSkips) {
  OpRun bigrams = RunOp("TfIdfVectorizer", {kTokens}, TfIdfAttrs("TF", 2, 2, 0));
  ASSERT_TRUE(bigrams.status.ok()) << bigrams.status.ToString();
  EXPECT_TRUE(TensorsClose(bigrams.outputs[0].tensor, F32({0, 0, 0, 0, 1, 1, 1}, {7})));
  EXPECT_EQ(InferredType(bigrams), "float32[7]");
  OpRun skips = RunOp("TfIdfVectorizer", {kTokens}, TfIdfAttrs("TF", 1, 2, 5));
  ASSERT_TRUE(skips.status.ok());
  EXPECT_TRUE(TensorsClose(skips.outputs[0].tensor, F32({0, 3, 1, 0, 1, 3, 1}, {7})));
  OpRun batch = RunOp("TfIdfVectorizer", {Tensor::FromVector<int64_t>({1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8}, {2, 6})},
                      TfIdfAttrs("TF", 2, 2, 0));
  ASSERT_TRUE(batch.status.ok());
  EXPECT_TRUE(TensorsClose(batch.outputs[0].tensor, F32({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}, {2, 7})));
}

TEST(ReduceRnnSignalText, TfIdfWeightsAndStringPool) {
  AttrMap attrs = A({{"mode", Attr::String("TFIDF")},
                     {"min_gram_length", Attr::Int(1)},
                     {"max_gram_length", Attr::Int(1)},
                     {"max_skip_count", Attr::Int(0)},
                     {"ngram_counts", Attr::Ints({0})},
                     {"ngram_indexes", Attr::Ints({1, 0})},
                     {"weights", Attr::Floats({0.5f, 2.f})},
                     {"pool_strings", Attr::Strings({"a", "b"})}});
  const Tensor x = Strings({"a", "b", "a", "c"}, {4});
  OpRun tfidf = RunOp("TfIdfVectorizer", {x}, attrs);
  ASSERT_TRUE(tfidf.status.ok()) << tfidf.status.ToString();
  EXPECT_TRUE(TensorsClose(tfidf.outputs[0].tensor, F32({2, 1}, {2})));  // "b": 1 * 2 at 0; "a": 2 * 0.5 at 1
  attrs.set("mode", Attr::String("IDF"));
  OpRun idf = RunOp("TfIdfVectorizer", {x}, attrs);
  ASSERT_TRUE(idf.status.ok());
  EXPECT_TRUE(TensorsClose(idf.outputs[0].tensor, F32({2, 0.5f}, {2})));
}

TEST(ReduceRnnSignalText, TfIdfBadAttributesAreErrors) {
  AttrMap both = TfIdfAttrs("TF", 1, 2, 0);
  both.set("pool_strings", Attr::Strings({"a"}));
  EXPECT_TRUE(Has(RunOp("TfIdfVectorizer", {kTokens}, both).status, "pool_strings"));
  AttrMap short_indexes = TfIdfAttrs("TF", 1, 2, 0);
  short_indexes.set("ngram_indexes", Attr::Ints({0, 1}));
  EXPECT_TRUE(Has(RunOp("TfIdfVectorizer", {kTokens}, short_indexes).status, "ngram_indexes"));
  AttrMap bad_counts = TfIdfAttrs("TF", 1, 2, 0);
  bad_counts.set("ngram_counts", Attr::Ints({0, 3}));
  EXPECT_TRUE(Has(RunOp("TfIdfVectorizer", {kTokens}, bad_counts).status, "ngram_counts"));
  EXPECT_TRUE(Has(RunOp("TfIdfVectorizer", {kTokens}, TfIdfAttrs("BM25", 1, 2, 0)).status, "mode"));
  EXPECT_TRUE(Has(RunOp("TfIdfVectorizer", {kTokens}, TfIdfAttrs("TF", 3, 2, 0)).status, "gram_length"));
  EXPECT_FALSE(RunOp("TfIdfVectorizer", {F32({1}, {1})}, TfIdfAttrs("TF", 1, 2, 0)).status.ok());
}

}  // namespace
}  // namespace kiln::testing
