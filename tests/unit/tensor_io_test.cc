#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "api/tensor_io.h"

namespace kiln {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("kiln_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(Npy, RoundTripAllDtypes) {
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt8, DType::kUInt8, DType::kInt16,
                   DType::kInt32, DType::kInt64, DType::kUInt64, DType::kBool}) {
    Tensor t = *Tensor::FromVector<float>({0, 1, 2, 3, 4, 5}, {2, 3}).CastTo(dt);
    std::string p = TempPath("rt.npy");
    ASSERT_TRUE(WriteNpy(p, t).ok());
    auto r = ReadNpy(p);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->dtype(), dt);
    EXPECT_EQ(r->dims(), (std::vector<int64_t>{2, 3}));
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(r->GetAsDouble(i), t.GetAsDouble(i));
    std::remove(p.c_str());
  }
}

TEST(Npy, ScalarAndEmpty) {
  std::string p = TempPath("s.npy");
  ASSERT_TRUE(WriteNpy(p, Tensor::Scalar<float>(2.5f)).ok());
  auto r = ReadNpy(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rank(), 0);
  EXPECT_EQ(r->data<float>()[0], 2.5f);
  ASSERT_TRUE(WriteNpy(p, Tensor(DType::kFloat32, {0, 4})).ok());
  r = ReadNpy(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->dims(), (std::vector<int64_t>{0, 4}));
  std::remove(p.c_str());
}

TEST(Npy, BadFilesAreErrors) {
  std::string p = TempPath("bad.npy");
  std::ofstream(p) << "not numpy at all";
  auto r = ReadNpy(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad magic"), std::string::npos);
  // Valid header, truncated data.
  ASSERT_TRUE(WriteNpy(p, Tensor(DType::kFloat32, {100})).ok());
  std::filesystem::resize_file(p, 200);
  r = ReadNpy(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);
  // Overflowing shape.
  {
    std::ofstream f(p, std::ios::binary);
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }";
    h.append(118 - h.size(), ' ');
    h.push_back('\n');
    f.write("\x93NUMPY\x01\x00", 8);
    char len[2] = {static_cast<char>(h.size()), 0};
    f.write(len, 2);
    f << h;
  }
  r = ReadNpy(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("overflow"), std::string::npos);
  EXPECT_FALSE(ReadNpy(TempPath("missing.npy")).ok());
  std::remove(p.c_str());
}

}  // namespace
}  // namespace kiln
