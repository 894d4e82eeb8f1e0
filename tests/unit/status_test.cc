#include <gtest/gtest.h>

#include "base/checked_math.h"
#include "base/status.h"

namespace kiln {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd: ", x);
  return x / 2;
}

Status UseHalf(int x, int* out) {
  KILN_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::OK();
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status::OK().ok());
  Status s = InvalidArgument("node ", 3, " bad");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "node 3 bad");
  EXPECT_EQ(s.ToString(), "InvalidArgument: node 3 bad");
  EXPECT_EQ(s.WithPrefix("model.onnx").message(), "model.onnx: node 3 bad");
}

TEST(Status, AssignOrReturn) {
  int v = 0;
  EXPECT_TRUE(UseHalf(4, &v).ok());
  EXPECT_EQ(v, 2);
  Status s = UseHalf(3, &v);
  EXPECT_EQ(s.message(), "odd: 3");
}

TEST(CheckedMath, NumelOverflow) {
  std::vector<int64_t> ok = {2, 3, 4};
  EXPECT_EQ(*CheckedNumel(ok, "t"), 24);
  std::vector<int64_t> big = {int64_t{1} << 31, int64_t{1} << 31, 4};
  auto r = CheckedNumel(big, "weights");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("weights"), std::string::npos);
  std::vector<int64_t> neg = {2, -1};
  EXPECT_FALSE(CheckedNumel(neg, "t").ok());
}

}  // namespace
}  // namespace kiln
