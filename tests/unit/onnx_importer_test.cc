#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <fstream>
#include <random>
#include <sstream>

#include "frontend/onnx/importer.h"

#ifndef KILN_SOURCE_DIR
#error "KILN_SOURCE_DIR must be defined by the build"
#endif

namespace kiln {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kTinyCnn = std::string(KILN_SOURCE_DIR) + "/models/tiny_cnn.onnx";

TEST(OnnxImporter, ImportsTinyCnnWithDeclaredTypes) {
  auto m = ImportOnnxFile(kTinyCnn);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Graph& g = *m->graph;
  ASSERT_EQ(g.inputs().size(), 1u);
  EXPECT_EQ(g.value(g.inputs()[0]).name, "input");
  EXPECT_EQ(g.value(g.inputs()[0]).type.ToString(), "float32[batch,3,32,32]");
  EXPECT_EQ(m->opsets.at(""), 13);
  // Constant nodes became initializers: no Constant op is left.
  for (int i = 0; i < g.num_nodes(); ++i) EXPECT_NE(g.node(i).op_type, "Constant");
}

// Every truncation of a valid model is an error or (rarely) a still-valid prefix, never a crash.
TEST(OnnxImporter, TruncatedModelsNeverCrash) {
  std::string bytes = ReadFile(kTinyCnn);
  ASSERT_FALSE(bytes.empty());
  int errors = 0;
  for (size_t n = 0; n < bytes.size(); n += 97) {
    auto m = ImportOnnxBytes(bytes.data(), n, "", "trunc.onnx");
    if (!m.ok()) {
      ++errors;
      EXPECT_NE(m.status().message().find("trunc.onnx"), std::string::npos) << m.status().message();
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(OnnxImporter, CorruptedModelsNeverCrash) {
  std::string bytes = ReadFile(kTinyCnn);
  std::mt19937 rng(42);
  for (int iter = 0; iter < 300; ++iter) {
    std::string b = bytes;
    for (int k = 0; k < 4; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    auto m = ImportOnnxBytes(b.data(), b.size(), "", "flipped.onnx");
    (void)m;  // any Status is fine; reaching here without a crash is the test (ASan run checks reads)
  }
}

TEST(OnnxImporter, RawDataSizeMismatchNamesTheTensor) {
  onnx::ModelProto mp;
  mp.set_ir_version(8);
  mp.add_opset_import()->set_version(13);
  auto* g = mp.mutable_graph();
  g->set_name("g");
  auto* t = g->add_initializer();
  t->set_name("weights");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_raw_data(std::string(12, '\0'));  // 3 floats for 4
  auto* out = g->add_output();
  out->set_name("weights");
  std::string bytes = mp.SerializeAsString();
  auto m = ImportOnnxBytes(bytes.data(), bytes.size(), "", "m.onnx");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("initializer 'weights': raw_data has 12 bytes"), std::string::npos)
      << m.status().message();
}

TEST(OnnxImporter, MissingOpsetForDomainIsAnError) {
  onnx::ModelProto mp;
  mp.set_ir_version(8);
  mp.add_opset_import()->set_version(13);
  auto* g = mp.mutable_graph();
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* n = g->add_node();
  n->set_op_type("Foo");
  n->set_domain("com.example");
  n->set_name("foo");
  n->add_input("x");
  n->add_output("y");
  g->add_output()->set_name("y");
  std::string bytes = mp.SerializeAsString();
  auto m = ImportOnnxBytes(bytes.data(), bytes.size(), "", "m.onnx");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("node 'foo' (com.example.Foo)"), std::string::npos) << m.status().message();
}

}  // namespace
}  // namespace kiln
