// ReadOnlyFile: the one opener of untrusted files (external data, .npy/.pb, plans, caches).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "base/file.h"
#include "base/status.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

class ReadOnlyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("kiln_file_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "model" / "sub");
    fs::create_directories(root_ / "elsewhere");
    Write(root_ / "model" / "w.bin", "0123456789");
    Write(root_ / "model" / "sub" / "x.bin", "abc");
    Write(root_ / "elsewhere" / "secret.bin", "SECRET");
  }
  void TearDown() override { fs::remove_all(root_); }
  static void Write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
  std::string Model() const { return (root_ / "model").string(); }
  fs::path root_;
};

TEST_F(ReadOnlyFileTest, ReadsInsideTheFolder) {
  auto f = ReadOnlyFile::OpenInside(Model(), "w.bin", "tensor 'W'");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->size(), 10);
  EXPECT_EQ(*f->ReadRange(2, 3), "234");
  auto g = ReadOnlyFile::OpenInside(Model(), "./sub//x.bin", "t");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(*g->ReadAll(100), "abc");
}

TEST_F(ReadOnlyFileTest, RangesAreCheckedBeforeAnyAllocation) {
  auto f = ReadOnlyFile::Open((root_ / "model" / "w.bin").string());
  ASSERT_TRUE(f.ok());
  EXPECT_NE(f->ReadRange(11, 1).status().message().find("offset 11 is past the end"), std::string::npos);
  EXPECT_NE(f->ReadRange(4, int64_t{6} << 30).status().message().find("has 6 bytes after offset 4"), std::string::npos);
  EXPECT_FALSE(f->ReadAll(5).ok());
  EXPECT_EQ(*f->ReadRange(10, 0), "");
}

TEST_F(ReadOnlyFileTest, RefusesEscapes) {
  for (const char* bad : {"../elsewhere/secret.bin", "/etc/passwd", "sub/../../elsewhere/secret.bin", "", ".", "sub/.."}) {
    auto f = ReadOnlyFile::OpenInside(Model(), bad, "t");
    EXPECT_FALSE(f.ok()) << bad;
  }
}

TEST_F(ReadOnlyFileTest, RefusesLinksOfEveryKind) {
  fs::create_symlink(root_ / "elsewhere" / "secret.bin", root_ / "model" / "out.bin");
  fs::create_symlink("w.bin", root_ / "model" / "in.bin");
  fs::create_directory_symlink(root_ / "elsewhere", root_ / "model" / "outdir");
  fs::create_hard_link(root_ / "elsewhere" / "secret.bin", root_ / "model" / "hard.bin");
  for (const char* name : {"out.bin", "in.bin", "outdir/secret.bin"}) {
    auto f = ReadOnlyFile::OpenInside(Model(), name, "t");
    ASSERT_FALSE(f.ok()) << name;
    EXPECT_NE(f.status().message().find("is a symbolic link"), std::string::npos) << f.status().message();
  }
  auto h = ReadOnlyFile::OpenInside(Model(), "hard.bin", "t");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("has 2 hard links"), std::string::npos) << h.status().message();
}

TEST_F(ReadOnlyFileTest, RefusesFifosSocketsDirectoriesAndDevicesWithoutBlocking) {
  ASSERT_EQ(::mkfifo((root_ / "model" / "fifo").c_str(), 0600), 0);
  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sp = (root_ / "model" / "sock").string();
  if (sp.size() < sizeof addr.sun_path) {
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sp.c_str());
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    auto so = ReadOnlyFile::OpenInside(Model(), "sock", "t");
    ASSERT_FALSE(so.ok());
  }
  ::close(s);
  auto fi = ReadOnlyFile::OpenInside(Model(), "fifo", "t");
  ASSERT_FALSE(fi.ok());
  EXPECT_NE(fi.status().message().find("is a FIFO"), std::string::npos) << fi.status().message();
  auto d = ReadOnlyFile::OpenInside(Model(), "sub", "t");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("is a directory"), std::string::npos) << d.status().message();
  auto fo = ReadOnlyFile::Open((root_ / "model" / "fifo").string());
  ASSERT_FALSE(fo.ok());
  EXPECT_NE(fo.status().message().find("is a FIFO"), std::string::npos);
  auto dev = ReadOnlyFile::Open("/dev/null");
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(dev.status().message().find("is a character device"), std::string::npos) << dev.status().message();
}

TEST(StatusPrefix, IsIdempotent) {
  const Status s = InvalidArgument("memory plan: bad");
  EXPECT_EQ(s.WithPrefix("memory plan").message(), "memory plan: bad");
  EXPECT_EQ(s.WithPrefix("plan").message(), "plan: memory plan: bad");
}

}  // namespace
}  // namespace kiln
