"""A minimal ONNX writer in plain Python (protobuf wire format by hand), so that the binding's tests build their
own models from NumPy weights without the onnx package or torch: the models' arithmetic is then known here,
independently of the library that loads them."""
import struct

import numpy as np


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _int(field, v):
    return _key(field, 0) + _varint(v)


def _bytes(field, b):
    b = b.encode() if isinstance(b, str) else b
    return _key(field, 2) + _varint(len(b)) + b


def _float(field, v):
    return _key(field, 5) + struct.pack("<f", v)


def tensor(name, a):
    """TensorProto: dims (1), data_type FLOAT = 1 (2), name (8), raw_data (9)."""
    a = np.ascontiguousarray(a, dtype="<f4")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, 1) + _bytes(8, name) + _bytes(9, a.tobytes())


def value_info(name, shape):
    """ValueInfoProto: name (1), type (2) = TypeProto.tensor_type (1) {elem_type (1), shape (2) {dim (1) {dim_value (1)}}}."""
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, 1) + _bytes(2, dims)))


def node(op, inputs, outputs, name, **attrs):
    """NodeProto: input (1), output (2), name (3), op_type (4), attribute (5) {name (1), f (2) | i (3) | ints (8), type (20)}."""
    out = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(3, name) + _bytes(4, op)
    for k, v in attrs.items():
        if isinstance(v, float):
            a = _bytes(1, k) + _float(2, v) + _int(20, 1)
        elif isinstance(v, int):
            a = _bytes(1, k) + _int(3, v) + _int(20, 2)
        else:
            a = _bytes(1, k) + b"".join(_int(8, int(x)) for x in v) + _int(20, 7)
        out += _bytes(5, a)
    return out


def model(nodes, initializers, inp, out, opset=13):
    """ModelProto: ir_version (1) = 7, opset_import (8) {domain (1), version (2)}, graph (7) {node (1), name (2),
    initializer (5), input (11), output (12)}."""
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "g")
    graph += b"".join(_bytes(5, tensor(k, v)) for k, v in initializers.items())
    graph += _bytes(11, value_info(*inp)) + _bytes(12, value_info(*out))
    return _int(1, 7) + _bytes(8, _bytes(1, "") + _int(2, opset)) + _bytes(7, graph)


def ara(W1, b1, W2, b2):
    """g(x) = W2 relu(W1 x + b1) + b2 as Gemm (transB = 1), Relu, Gemm on input x of shape (1, n)."""
    p, n = W1.shape
    d = W2.shape[0]
    nodes = [node("Gemm", ["x", "W1", "b1"], ["h"], "fc1", transB=1), node("Relu", ["h"], ["r"], "relu"),
             node("Gemm", ["r", "W2", "b2"], ["y"], "fc2", transB=1)]
    return model(nodes, {"W1": W1, "b1": b1, "W2": W2, "b2": b2}, ("x", (1, n)), ("y", (1, d)))
