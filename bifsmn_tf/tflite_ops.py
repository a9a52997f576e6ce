"""Operator census of a TFLite / LCE flatbuffer, read with TensorFlow's own flatbuffer schema."""

from __future__ import annotations

from collections import Counter

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
