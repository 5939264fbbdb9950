"""Fold Moonshine's int8 weights into float32 once, instead of on every run.

The `.ort` files in `moonshine-cpp` store each weight as int8 plus a scale and an
offset, and the graph turns them back into float32 with three nodes (Cast → Mul → Add)
that sit in the graph itself; the decoder's branches then transpose the 32768 × 416
embedding for the output projection. ONNX Runtime does not constant-fold an ORT-format
model, so every decoder step did all of that again: ~100 ms a token on one core (shared
2-core VM), where the matrix products cost a few.

`fold_weights` rewrites the flatbuffer so those weights (and the transposed embedding, in
each branch that uses it) are plain float32 initializers and the nodes that made them are
gone: ~12 ms a token, the same logits within 1e-4. It does not re-serialise the model: the
original bytes are kept whole at the end of the new buffer, and a new root
(InferenceSession → Model → Graph, and the If node's branches) in front of them points
into them (flatbuffer offsets only point forward, so new tables in front can reuse every
old one). Float weights are 4× larger: the decoder takes ~330 MB loaded, the encoder ~100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np
from flatbuffers.table import Table

FILE_IDENTIFIER = b"ORTM"
# ORT's TensorDataType values.
FLOAT, INT8 = 1, 3
# The tables of the ORT flatbuffer schema (onnxruntime/core/flatbuffers/schema/ort.fbs) this touches:
# their number of fields and which are scalars (the rest are offsets, copied as they are).
_N = flatbuffers.number_types
TABLES: dict[str, tuple[int, dict[int, type]]] = {
    "InferenceSession": (4, {}),
    "Model": (10, {0: _N.Int64Flags, 5: _N.Int64Flags}),
    "Graph": (9, {3: _N.Uint32Flags}),
    "Node": (13, {3: _N.Int32Flags, 4: _N.Uint32Flags, 6: _N.Int32Flags}),
    "Attribute": (13, {2: _N.Int32Flags, 3: _N.Float32Flags, 4: _N.Int64Flags}),
    "NodeEdge": (3, {0: _N.Uint32Flags}),
    "Tensor": (7, {3: _N.Int32Flags, 6: _N.Int64Flags}),
}
S_MODEL, M_GRAPH = 1, 7
G_INITS, G_NODES, G_EDGES = 0, 2, 4
T_NAME, T_DIMS, T_TYPE, T_RAW, T_EXTERNAL = 0, 2, 3, 4, 6
N_INDEX, N_OP, N_INPUTS, N_OUTPUTS, N_ATTRIBUTES = 4, 5, 8, 9, 10
A_NAME, A_GRAPH, A_INTS = 0, 7, 9
E_NODE, E_IN = 0, 1
ALIGN = 64
EDGE_END = np.dtype([("node", "<u4"), ("src", "<i4"), ("dst", "<i4")])


class GraphFormatError(ValueError):
    """The model is not the ORT-format graph this rewrite knows."""


def _vt(slot: int) -> int:
    return 4 + 2 * slot


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def table(self, pos: int) -> Table:
        return Table(self.buf, pos)

    @staticmethod
    def ref(t: Table, slot: int) -> int | None:
        """Absolute position of what an offset field points to (table, vector or string), or None."""
        o = t.Offset(_vt(slot))
        return t.Indirect(t.Pos + o) if o else None

    @staticmethod
    def scalar(t: Table, slot: int, flags: type, default: int) -> int:
        o = t.Offset(_vt(slot))
        return int(t.Get(flags, t.Pos + o)) if o else default

    @staticmethod
    def string(t: Table, slot: int) -> str:
        o = t.Offset(_vt(slot))
        return t.String(t.Pos + o).decode() if o else ""

    def tables(self, t: Table, slot: int) -> list[Table]:
        o = t.Offset(_vt(slot))
        if not o:
            return []
        start, n = t.Vector(o), t.VectorLen(o)
        return [self.table(t.Indirect(start + 4 * i)) for i in range(n)]

    def strings(self, t: Table, slot: int) -> list[str]:
        o = t.Offset(_vt(slot))
        if not o:
            return []
        start, n = t.Vector(o), t.VectorLen(o)
        return [t.String(start + 4 * i).decode() for i in range(n)]

    def array(self, t: Table, slot: int, dtype: Any) -> np.ndarray:
        o = t.Offset(_vt(slot))
        if not o:
            return np.zeros(0, dtype)
        return np.frombuffer(self.buf, dtype, count=t.VectorLen(o), offset=t.Vector(o))


@dataclass(frozen=True)
class _Init:
    table: Table
    name: str
    data_type: int

    def values(self, r: _Reader) -> np.ndarray:
        if r.scalar(self.table, T_EXTERNAL, flatbuffers.number_types.Int64Flags, -1) != -1:
            raise GraphFormatError(f"initializer {self.name} is stored outside the model")
        dims = tuple(int(d) for d in r.array(self.table, T_DIMS, np.dtype("<i8")))
        dtype: np.dtype[Any] = np.dtype("<f4") if self.data_type == FLOAT else np.dtype("i1")
        raw = r.array(self.table, T_RAW, np.uint8)
        return np.frombuffer(raw.tobytes(), dtype).reshape(dims)


@dataclass(frozen=True)
class _Fold:
    """Nodes replaced by one float32 initializer: a Cast(int8) → Mul(scale) → Add(offset) chain,
    or a Transpose of a weight."""

    nodes: tuple[int, ...]
    used_inits: tuple[str, ...]
    name: str
    weight: np.ndarray


def _index(r: _Reader, node: Table) -> int:
    return r.scalar(node, N_INDEX, flatbuffers.number_types.Uint32Flags, 0)


def _perm(r: _Reader, node: Table) -> tuple[int, ...] | None:
    for a in r.tables(node, N_ATTRIBUTES):
        if r.string(a, A_NAME) == "perm":
            return tuple(int(i) for i in r.array(a, A_INTS, np.dtype("<i8")))
    return None


def _find_folds(r: _Reader, graph: Table, outer: dict[str, np.ndarray] | None) -> list[_Fold]:
    """What in `graph` computes a constant from weights on every run. `outer`: weights of the
    enclosing graphs already folded (a subgraph transposes the outer embedding)."""
    inits = {
        r.string(t, T_NAME): _Init(t, r.string(t, T_NAME), r.scalar(t, T_TYPE, flatbuffers.number_types.Int32Flags, 0))
        for t in r.tables(graph, G_INITS)
    }
    nodes = r.tables(graph, G_NODES)
    consumers: dict[str, list[Table]] = {}
    for n in nodes:
        for name in r.strings(n, N_INPUTS):
            consumers.setdefault(name, []).append(n)

    def only_consumer(name: str, op: str) -> tuple[Table, str] | None:
        found = consumers.get(name, [])
        if len(found) != 1 or r.string(found[0], N_OP) != op:
            return None
        others = [i for i in r.strings(found[0], N_INPUTS) if i != name]
        if len(others) != 1 or others[0] not in inits or inits[others[0]].data_type != FLOAT:
            return None
        return found[0], others[0]

    folds = []
    for cast in nodes:
        ins = r.strings(cast, N_INPUTS)
        if r.string(cast, N_OP) != "Cast" or len(ins) != 1 or ins[0] not in inits or inits[ins[0]].data_type != INT8:
            continue
        mul = only_consumer(r.strings(cast, N_OUTPUTS)[0], "Mul")
        if mul is None:
            continue
        add = only_consumer(r.strings(mul[0], N_OUTPUTS)[0], "Add")
        if add is None:
            continue
        # The same float32 arithmetic the three nodes do.
        weight = (inits[ins[0]].values(r).astype(np.float32) * inits[mul[1]].values(r)) + inits[add[1]].values(r)
        folds.append(
            _Fold(
                (_index(r, cast), _index(r, mul[0]), _index(r, add[0])),
                (ins[0], mul[1], add[1]),
                r.strings(add[0], N_OUTPUTS)[0],
                np.ascontiguousarray(weight, dtype="<f4"),
            )
        )
    if outer is None:  # transposes are not folded
        return folds
    known = {**outer, **{f.name: f.weight for f in folds}}
    for node in nodes:
        ins = r.strings(node, N_INPUTS)
        if r.string(node, N_OP) == "Transpose" and len(ins) == 1 and ins[0] in known:
            weight = np.ascontiguousarray(np.transpose(known[ins[0]], _perm(r, node)), dtype="<f4")
            folds.append(_Fold((_index(r, node),), (), r.strings(node, N_OUTPUTS)[0], weight))
    return folds


class _Writer:
    """A flatbuffers.Builder whose far end holds the original buffer, so new tables can point into it."""

    def __init__(self, old: bytes) -> None:
        self.b = flatbuffers.Builder(len(old) + (1 << 20))
        b = self.b
        b.Prep(16, len(old))  # the old bytes keep the alignment they were written with
        b.head -= len(old)
        b.Bytes[b.head : b.head + len(old)] = old
        self.base = b.Offset()  # builder offset of old position 0

    def old(self, pos: int) -> int:
        """Builder offset of the object at position `pos` of the original buffer."""
        return self.base - pos

    def copy(self, r: _Reader, t: Table, kind: str, new: dict[int, int | None]) -> int:
        """Table `t` again, with the offset fields in `new` replaced (None = dropped)."""
        slots, scalars = TABLES[kind]
        b = self.b
        fields = {s: (None if (p := r.ref(t, s)) is None else self.old(p)) for s in range(slots) if s not in scalars}
        fields.update(new)
        values = {}
        for s, flags in scalars.items():
            o = t.Offset(_vt(s))
            if o:
                values[s] = (flags, t.Get(flags, t.Pos + o))
        b.StartObject(slots)
        for s, (flags, value) in values.items():
            b.PrependSlot(flags, s, value, None)  # None: always written, as it was
        for s, off in fields.items():
            if off is not None:
                b.PrependUOffsetTRelativeSlot(s, off, 0)
        return int(b.EndObject())

    def tensor(self, name: str, weight: np.ndarray) -> int:
        b = self.b
        # Aligned, so ONNX Runtime can use the weights where they lie in the buffer.
        data = weight.tobytes()
        b.StartVector(1, len(data), ALIGN)
        b.head -= len(data)
        b.Bytes[b.head : b.head + len(data)] = data
        raw = b.EndVector()
        dims = b.CreateNumpyVector(np.asarray(weight.shape, dtype="<i8"))
        name_off = b.CreateString(name)
        b.StartObject(TABLES["Tensor"][0])
        b.PrependInt32Slot(T_TYPE, FLOAT, 0)
        b.PrependUOffsetTRelativeSlot(T_NAME, name_off, 0)
        b.PrependUOffsetTRelativeSlot(T_DIMS, dims, 0)
        b.PrependUOffsetTRelativeSlot(T_RAW, raw, 0)
        return int(b.EndObject())

    def offsets(self, offs: list[int]) -> int:
        b = self.b
        b.StartVector(4, len(offs), 4)
        for off in reversed(offs):
            b.PrependUOffsetTRelative(off)
        return int(b.EndVector())

    def edges(self, ends: np.ndarray) -> int:
        b = self.b
        b.StartVector(EDGE_END.itemsize, len(ends), 4)
        for end in reversed(ends):
            b.Prep(4, 12)
            b.PrependInt32(int(end["dst"]))
            b.PrependInt32(int(end["src"]))
            b.PrependUint32(int(end["node"]))
        return int(b.EndVector())


def _rewrite_node(r: _Reader, w: _Writer, node: Table, outer: dict[str, np.ndarray] | None) -> int | None:
    """A node whose subgraphs (If branches) changed, or None."""
    attrs = r.tables(node, N_ATTRIBUTES)
    new_attrs, changed = [], False
    for a in attrs:
        g = r.ref(a, A_GRAPH)
        sub = _rewrite_graph(r, w, r.table(g), outer) if g is not None else None
        changed |= sub is not None
        new_attrs.append(w.copy(r, a, "Attribute", {A_GRAPH: sub}) if sub is not None else w.old(a.Pos))
    return w.copy(r, node, "Node", {N_ATTRIBUTES: w.offsets(new_attrs)}) if changed else None


def _rewrite_graph(r: _Reader, w: _Writer, graph: Table, outer: dict[str, np.ndarray] | None) -> int | None:
    """`graph` with its folds done, or None when there is nothing to fold in it or below it."""
    folds = _find_folds(r, graph, outer)
    removed = {i for f in folds for i in f.nodes}
    dropped = {n for f in folds for n in f.used_inits}
    inner = None if outer is None else {**outer, **{f.name: f.weight for f in folds}}
    nodes, changed = [], bool(folds)
    for n in r.tables(graph, G_NODES):
        if _index(r, n) in removed:
            continue
        new = _rewrite_node(r, w, n, inner)
        changed |= new is not None
        nodes.append(new if new is not None else w.old(n.Pos))
    if not changed:
        return None
    inits = [w.old(t.Pos) for t in r.tables(graph, G_INITS) if r.string(t, T_NAME) not in dropped]
    inits += [w.tensor(f.name, f.weight) for f in folds]
    edges = []
    for e in r.tables(graph, G_EDGES):
        if r.scalar(e, E_NODE, flatbuffers.number_types.Uint32Flags, 0) in removed:
            continue
        ins = r.array(e, E_IN, EDGE_END)
        keep = ins[~np.isin(ins["node"], list(removed))]
        edges.append(w.old(e.Pos) if len(keep) == len(ins) else w.copy(r, e, "NodeEdge", {E_IN: w.edges(keep)}))
    return w.copy(r, graph, "Graph", {G_INITS: w.offsets(inits), G_NODES: w.offsets(nodes), G_EDGES: w.offsets(edges)})


def fold_weights(data: bytes, *, transposes: bool = True) -> bytes:
    """The model with its weights folded to float32 (and transposed where the graph transposes
    them); `data` itself when there is nothing to fold."""
    r = _Reader(data)
    if data[4:8] != FILE_IDENTIFIER:
        raise GraphFormatError("not an ORT-format model")
    session = r.table(flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    model_pos = r.ref(session, S_MODEL)
    graph_pos = r.ref(r.table(model_pos), M_GRAPH) if model_pos is not None else None
    if model_pos is None or graph_pos is None:
        raise GraphFormatError("the model has no graph")
    w = _Writer(data)
    graph = _rewrite_graph(r, w, r.table(graph_pos), {} if transposes else None)
    if graph is None:
        return data
    model = w.copy(r, r.table(model_pos), "Model", {M_GRAPH: graph})
    w.b.Finish(w.copy(r, session, "InferenceSession", {S_MODEL: model}), file_identifier=FILE_IDENTIFIER)
    return bytes(w.b.Output())
