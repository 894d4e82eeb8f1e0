"""Writes small broken (and a few valid edge-case) ONNX models for cli_test.sh."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

out = sys.argv[1]
X = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


def save(name, nodes, inputs=(X,), outputs=(Y,), inits=(), opset=13):
    g = helper.make_graph(nodes, name, list(inputs), list(outputs), list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, os.path.join(out, name + ".onnx"))


save("unknown_op", [helper.make_node("FancyOp", ["input"], ["y"], name="n0")])
save("bad_attr", [helper.make_node("LeakyRelu", ["input"], ["y"], name="lr", alpha="oops")])
save("dangling", [helper.make_node("Add", ["input", "nowhere"], ["y"], name="add")])
A = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
B = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 5])
save("shape_mismatch", [helper.make_node("Add", ["a", "b"], ["y"], name="add")], inputs=(A, B))


def raw_tensor(name, dims):
    """A TensorProto built by hand: helper.make_tensor refuses inconsistent sizes, which is the point here."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    return t


big = raw_tensor("w", [1 << 31, 1 << 31, 8])
save("overflow", [helper.make_node("Identity", ["w"], ["y"], name="id")], inputs=(), inits=(big,))
for name, loc in (("escape", "../secret.bin"), ("absolute", "/etc/passwd")):
    t = raw_tensor("w", [4])
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add(); e.key, e.value = "location", loc
    save(name, [helper.make_node("Identity", ["w"], ["y"], name="id")], inputs=(), inits=(t,))
t = raw_tensor("w", [4])
t.data_location = TensorProto.EXTERNAL
e = t.external_data.add(); e.key, e.value = "location", "weights.bin"
np.arange(4, dtype=np.float32).tofile(os.path.join(out, "weights.bin"))
save("external_ok", [helper.make_node("Identity", ["w"], ["y"], name="id")], inputs=(), inits=(t,))
save("cycle", [helper.make_node("Relu", ["input", ], ["a"], name="r1"),
               helper.make_node("Add", ["a", "b"], ["c"], name="add1"),
               helper.make_node("Relu", ["c"], ["b"], name="r2"),
               helper.make_node("Identity", ["c"], ["y"], name="id")])
save("newer_opset", [helper.make_node("Relu", ["input"], ["y"], name="r")], opset=99)
# Found by fuzzing the importer: a required input left empty, a Reshape to a shape whose
# element count overflows int64.
save("omitted_input", [helper.make_node("Add", ["", "input"], ["y"], name="add0")])
save("reshape_overflow", [helper.make_node("Reshape", ["input", "shape"], ["y"], name="rs")],
     inits=(helper.make_tensor("shape", TensorProto.INT64, [4], [2**62, 2**40, 1, -1]),))
save("legacy_broadcast_empty", [helper.make_node("Add", ["", "input"], ["y"], name="add_lb", broadcast=1, axis=1)],
     opset=6)
# A legacy (opset < 11) Pad with no inputs at all: its normalizer read input 0.
save("pad_no_inputs", [helper.make_node("Pad", [], ["y"], name="pad0", pads=[0, 0, 1, 1, 0, 0, 1, 1])], opset=2)
# Found by fuzzing: a ConstantOfShape of a 256 GiB shape. Import must not materialize it to
# propagate its value; running it must be a clear error, not std::bad_alloc.
save("huge_constant_of_shape", [helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos"),
                                helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=0),
                                helper.make_node("Add", ["input", "s"], ["y"], name="add")],
     inits=(helper.make_tensor("shape", TensorProto.INT64, [2], [1 << 34, 4]),))
# Found by fuzzing: GatherND with rank-0 indices (shape inference read dim -1).
save("gathernd_scalar_indices", [helper.make_node("GatherND", ["input", "idx"], ["y"], name="gnd")],
     inits=(helper.make_tensor("idx", TensorProto.INT64, [], [0]),))
# Found by fuzzing: an empty constant whose other dims are huge, broadcast in an Add: the
# reference kernel's input strides overflowed int64 (UBSan). Valid: y is Shape of the empty sum.
save("empty_huge_broadcast", [helper.make_node("Add", ["a", "b"], ["s"], name="add_empty"),
                              helper.make_node("Shape", ["s"], ["y"], name="shape")],
     outputs=(helper.make_tensor_value_info("y", TensorProto.INT64, None),),
     inits=(helper.make_tensor("a", TensorProto.FLOAT, [0, 6276907196743680000, 10], []),
            helper.make_tensor("b", TensorProto.FLOAT, [], [1.0])))
# Found by fuzzing (plan loader): pads whose sum overflows int64 (UBSan in shape inference).
save("pad_overflow", [helper.make_node("Pad", ["input", "pads"], ["y"], name="pad_big")],
     inits=(helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 7596165471368380419, 0, 0, 0, 7595933647882055540, 0]),))
save("upsample_no_inputs", [helper.make_node("Upsample", [], ["y"], name="up0", scales=[1.0, 1.0, 2.0, 2.0])], opset=7)

# A layer with no fast kernel (Erf alone: no oneDNN algorithm, not part of a GELU): a slow
# path that kiln build/run/bench report and --strict refuses.
save("slow_path", [helper.make_node("Erf", ["input"], ["y"], name="lonely_erf")])
