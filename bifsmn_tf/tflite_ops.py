"""Operator census of a TFLite / LCE flatbuffer, read with TensorFlow's own flatbuffer schema:
which operators, how many binary convolutions, how many compute in float."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tensorflow.lite.python import schema_py_generated as schema

_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def op_counts(flatbuffer: bytes) -> dict[str, int]:
    """How often each operator occurs in all subgraphs of ``flatbuffer``, by name: builtin ops
    by their schema name (``CONV_2D``, ``DEPTHWISE_CONV_2D``, ...), custom ops by their custom
    code (``LceBconv2d``, ``LceQuantize``, ...)."""
    data = bytearray(flatbuffer)
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError("op_counts: not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    model = schema.Model.GetRootAs(data, 0)
    names = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        # Codes above 127 live only in builtin_code; older files only fill the deprecated field.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.append(code.CustomCode().decode())
        else:
            names.append(_BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    counts: Counter[str] = Counter()
    for graph_index in range(model.SubgraphsLength()):
        graph = model.Subgraphs(graph_index)
        for op_index in range(graph.OperatorsLength()):
            counts[names[graph.Operators(op_index).OpcodeIndex()]] += 1
    return dict(sorted(counts.items()))


def float_op_count(flatbuffer: bytes) -> int:
    """Operators that compute in float32: builtin ops whose first output is a float32 tensor.

    LCE's custom ops (``LceBconv2d`` may write float, ``LceDequantize`` does) are binary-domain
    ops, not float ones, and are not counted.
    """
    data = bytearray(flatbuffer)
    model = schema.Model.GetRootAs(data, 0)
    custom = [
        max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.CUSTOM
        for code in map(model.OperatorCodes, range(model.OperatorCodesLength()))
    ]
    count = 0
    for graph_index in range(model.SubgraphsLength()):
        graph = model.Subgraphs(graph_index)
        for op_index in range(graph.OperatorsLength()):
            op = graph.Operators(op_index)
            if custom[op.OpcodeIndex()] or op.OutputsLength() == 0:
                continue
            count += graph.Tensors(op.Outputs(0)).Type() == schema.TensorType.FLOAT32
    return count


def op_summary(flatbuffer: bytes) -> dict[str, Any]:
    """Op counts by name, the number of LCE binary convolutions and of float ops."""
    counts = op_counts(flatbuffer)
    return {
        "op_counts": counts,
        "binary_convs": counts.get("LceBconv2d", 0),
        "float_ops": float_op_count(flatbuffer),
    }
