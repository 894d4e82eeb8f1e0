"""Writes the hostile-input cases of hostile_test.sh into DIR (see that script for what each must do).

m_<case>.onnx: y = x @ W with W (4x4 float32) stored as external data under various locations;
the files and links they point at are made by hostile_test.sh (links, FIFOs, sockets).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

out = sys.argv[1]
X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])


def external_w(keys):
    t = TensorProto()
    t.name = "W"
    t.data_type = TensorProto.FLOAT
    t.dims.extend([4, 4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in keys:
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def model(nodes, inits=(), inputs=(X,), outputs=(Y,), opsets=(("", 13),), ir=8):
    g = helper.make_graph(nodes, "m", list(inputs), list(outputs), list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = ir
    return m


def save(name, m):
    onnx.save(m, os.path.join(out, name + ".onnx"))


matmul = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
for name, keys in {
    "good": [("location", "good.bin")],
    "hard": [("location", "hard.bin")],
    "fifo": [("location", "fifo")],
    "dir": [("location", "sub")],
    "dot": [("location", ".")],
    "socket": [("location", "sock")],
    "symlink_out": [("location", "link.bin")],
    "symlink_in": [("location", "inlink.bin")],
    "symlink_dir": [("location", "linkdir/good.bin")],
    "dup": [("location", "../secret.bin"), ("location", "good.bin")],
    "past_end": [("location", "good.bin"), ("offset", "1000")],
    "short": [("location", "good.bin"), ("offset", "16")],
    "unknown_key": [("location", "good.bin"), ("sneaky", "1")],
}.items():
    save("m_" + name, model(matmul, [external_w(keys)]))
np.arange(16, dtype=np.float32).tofile(os.path.join(out, "good.bin"))

# IR version / opset checks (an inline W: nothing else to go wrong).
W = helper.make_tensor("W", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
save("ir0", model(matmul, [W], ir=0))
save("ir99", model(matmul, [W], ir=99))
save("no_opset", model(matmul, [W], opsets=()))

# A Gather whose constant index is out of range for the data's static dimension.
save("gather_oob", model(
    [helper.make_node("Gather", ["x", "idx"], ["y"], name="gather_bad", axis=1)],
    [helper.make_tensor("idx", TensorProto.INT64, [4], [0, 1, 7, 2])]))
# Both inputs constant: the fold itself fails.
save("gather_oob_folded", model(
    [helper.make_node("Gather", ["c", "idx"], ["g"], name="gather_fold", axis=0),
     helper.make_node("Add", ["x", "g"], ["y"], name="add")],
    [helper.make_tensor("c", TensorProto.FLOAT, [3, 4], np.zeros(12, np.float32)),
     helper.make_tensor("idx", TensorProto.INT64, [1], [5])]))
# ScatterElements with a constant index out of range.
save("scatter_oob", model(
    [helper.make_node("ScatterElements", ["x", "idx", "upd"], ["y"], name="scatter_bad", axis=1)],
    [helper.make_tensor("idx", TensorProto.INT64, [1, 2], [0, 9]),
     helper.make_tensor("upd", TensorProto.FLOAT, [1, 2], [1, 1])]))
# A Gather whose runtime index is out of range (the error comes from a CPU kernel).
I = helper.make_tensor_value_info("i", TensorProto.INT64, [1])
save("gather_runtime", model(
    [helper.make_node("Gather", ["x", "i"], ["y"], name="gather_rt", axis=1)], inputs=(X, I),
    outputs=(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1]),)))
np.save(os.path.join(out, "i_bad.npy"), np.array([-7], np.int64))
np.save(os.path.join(out, "x.npy"), np.ones((1, 4), np.float32))


# If nested 70 deep (kiln's limit is 64).
def nested_if(depth):
    C = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    out_vi = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    leaf = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="leaf")], "leaf", [], [out_vi])
    body = leaf
    for d in range(depth):  # nested in then_branch only (both would double the size per level)
        node = helper.make_node("If", ["c"], ["y"], name=f"if{d}", then_branch=body, else_branch=leaf)
        body = helper.make_graph([node], f"g{d}", [], [out_vi])
    return model(list(body.node), inputs=(X, C), outputs=(out_vi,))


save("nested70", nested_if(70))
save("nested8", nested_if(8))
np.save(os.path.join(out, "c.npy"), np.array(True))

# Reshape whose `shape` input is declared int64[2147483647]: its output's rank comes from that
# declared length, which must not become 2^31 dims in type inference (fuzz_onnx_importer found
# a 10 GB allocation this way).
S = helper.make_tensor_value_info("s", TensorProto.INT64, [2147483647])
save("reshape_huge_rank", model([helper.make_node("Reshape", ["x", "s"], ["y"])], inputs=(X, S),
                                outputs=(helper.make_tensor_value_info("y", TensorProto.FLOAT, None),)))

# A 128-byte .npy whose header claims 6 GB.
hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 750000000), }"
hdr += b" " * (128 - 10 - len(hdr) - 1) + b"\n"
with open(os.path.join(out, "huge.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr)
# A .npy whose header is not a dict.
hdr = b"['descr', '<f4']" + b" " * 47 + b"\n"
with open(os.path.join(out, "notdict.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr + b"\0" * 16)
# A .pb TensorProto whose dims claim 6 GB with no data.
t = TensorProto()
t.name, t.data_type = "x", TensorProto.FLOAT
t.dims.extend([2, 750000000])
with open(os.path.join(out, "huge.pb"), "wb") as f:
    f.write(t.SerializeToString())
