# A model the CPU backend cannot take whole (per-layer fallback): convolutions around a Loop
# (control flow) and a NonZero tail whose shape depends on the data. Usage: make_mixed_model.py DIR
import sys
import numpy as np, onnx
from onnx import helper as h, TensorProto as T, numpy_helper as nh
rng=np.random.default_rng(0)
def W(name, *shape): return nh.from_array(rng.standard_normal(shape).astype(np.float32)*0.2, name)
# 1. conv backbone -> NonZero tail (shape depends on data) + a conv after a Loop
inits=[W('w1',8,3,3,3),W('b1',8),W('w2',8,8,3,3),W('w3',4,8,1,1)]
body=h.make_graph([
  h.make_node('Mul',['acc','k'],['m']),
  h.make_node('Add',['m','c1'],['acc_out']),
  h.make_node('Identity',['cond'],['cond_out'])],'body',
  [h.make_tensor_value_info('i',T.INT64,[]),h.make_tensor_value_info('cond',T.BOOL,[]),h.make_tensor_value_info('acc',T.FLOAT,[1,8,32,32])],
  [h.make_tensor_value_info('cond_out',T.BOOL,[]),h.make_tensor_value_info('acc_out',T.FLOAT,[1,8,32,32])])
nodes=[
 h.make_node('Conv',['x','w1','b1'],['c1'],pads=[1,1,1,1]),
 h.make_node('Relu',['c1'],['r1']),
 h.make_node('Conv',['r1','w2'],['c2'],pads=[1,1,1,1]),
 h.make_node('Constant',[],['k'],value=nh.from_array(np.array(0.5,np.float32))),
 h.make_node('Constant',[],['n'],value=nh.from_array(np.array(3,np.int64))),
 h.make_node('Constant',[],['t'],value=nh.from_array(np.array(True))),
 h.make_node('Loop',['n','t','c2'],['l'],body=body),
 h.make_node('Relu',['l'],['r2']),
 h.make_node('Conv',['r2','w3'],['y']),
 h.make_node('Sigmoid',['y'],['s']),
 h.make_node('Constant',[],['th'],value=nh.from_array(np.array(0.5,np.float32))),
 h.make_node('Greater',['s','th'],['g']),
 h.make_node('NonZero',['g'],['nz']),
 h.make_node('Transpose',['nz'],['idx']),
]
g=h.make_graph(nodes,'mixed',[h.make_tensor_value_info('x',T.FLOAT,[1,3,32,32])],
  [h.make_tensor_value_info('y',T.FLOAT,[1,4,32,32]),h.make_tensor_value_info('idx',T.INT64,['n','r'])],inits)
m=h.make_model(g,opset_imports=[h.make_opsetid('',17)]); m.ir_version=8
onnx.checker.check_model(m); onnx.save(m, sys.argv[1] + '/mixed.onnx')
np.save(sys.argv[1] + "/mixed_x.npy", rng.standard_normal((1,3,32,32)).astype(np.float32))

# The same convolutions with a dynamic batch and the NonZero tail (no Loop): a shape-profile
# build partitions it, its islands compiled per batch as they run.
dyn_nodes = [
    h.make_node('Conv', ['x', 'w1', 'b1'], ['c1'], pads=[1, 1, 1, 1]),
    h.make_node('Relu', ['c1'], ['r1']),
    h.make_node('Conv', ['r1', 'w3'], ['y']),
    h.make_node('Sigmoid', ['y'], ['s']),
    h.make_node('Constant', [], ['th'], value=nh.from_array(np.array(0.5, np.float32))),
    h.make_node('Greater', ['s', 'th'], ['g']),
    h.make_node('NonZero', ['g'], ['nz']),
    h.make_node('Transpose', ['nz'], ['idx']),
]
w3 = nh.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.2, 'w3')
dg = h.make_graph(dyn_nodes, 'mixed_dyn', [h.make_tensor_value_info('x', T.FLOAT, ['N', 3, 32, 32])],
                  [h.make_tensor_value_info('y', T.FLOAT, ['N', 4, 32, 32]), h.make_tensor_value_info('idx', T.INT64, ['n', 4])],
                  [inits[0], inits[1], w3])
dm = h.make_model(dg, opset_imports=[h.make_opsetid('', 17)])
dm.ir_version = 8
onnx.checker.check_model(dm)
onnx.save(dm, sys.argv[1] + '/mixed_dyn.onnx')
np.save(sys.argv[1] + '/mixed_dyn_x3.npy', rng.standard_normal((3, 3, 32, 32)).astype(np.float32))

# A recurrence written as a Loop (as scripted PyTorch exports an RNN or a decoder): the body's
# MatMul on an outer weight, bias and Tanh run in a CPU island inside the body.
W = nh.from_array(rng.standard_normal((256, 256)).astype(np.float32) * 0.06, 'W')
B = nh.from_array(rng.standard_normal((256,)).astype(np.float32) * 0.1, 'B')
rbody = h.make_graph([
    h.make_node('MatMul', ['h', 'W'], ['hw']),
    h.make_node('Add', ['hw', 'B'], ['pre']),
    h.make_node('Tanh', ['pre'], ['h_out']),
    h.make_node('Identity', ['cond'], ['cond_out'])], 'rnn_body',
    [h.make_tensor_value_info('i', T.INT64, []), h.make_tensor_value_info('cond', T.BOOL, []),
     h.make_tensor_value_info('h', T.FLOAT, [4, 256])],
    [h.make_tensor_value_info('cond_out', T.BOOL, []), h.make_tensor_value_info('h_out', T.FLOAT, [4, 256])])
rg = h.make_graph([
    h.make_node('Constant', [], ['steps'], value=nh.from_array(np.array(64, np.int64))),
    h.make_node('Constant', [], ['go'], value=nh.from_array(np.array(True))),
    h.make_node('Loop', ['steps', 'go', 'h0'], ['hT'], body=rbody)], 'rnn_loop',
    [h.make_tensor_value_info('h0', T.FLOAT, [4, 256])], [h.make_tensor_value_info('hT', T.FLOAT, [4, 256])], [W, B])
rm = h.make_model(rg, opset_imports=[h.make_opsetid('', 17)])
rm.ir_version = 8
onnx.checker.check_model(rm)
onnx.save(rm, sys.argv[1] + '/mixed_rnn.onnx')
np.save(sys.argv[1] + '/mixed_rnn_h0.npy', rng.standard_normal((4, 256)).astype(np.float32))
