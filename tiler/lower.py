"""Lower a TFLite graph to tileswap ops: validate, then precompute every kernel parameter (Prepare).

Each supported TFLite operator becomes one `LOp` whose `p` vector, per-channel requantization arrays
and weights are final: the device only does arithmetic. RESHAPE becomes an alias (no op, no copy);
QUANTIZE from float at the model input and DEQUANTIZE at the output become host-side edge conversions
recorded in the image header.

Activations are viewed as (rows, width, channels) with batch 1: [1,H,W,C] -> (H,W,C), [1,N] -> (1,1,N).
"""

import numpy as np

from . import TilerError
from . import quant
from ..device import opdefs as D

SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D",
             "MEAN", "PAD", "RESHAPE", "CONCATENATION", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "LEAKY_RELU")
_ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


class LTensor:
    """An int8 activation as the device sees it."""

    def __init__(self, tid, h, w, c, scale, zp, tfl, name):
        self.id = tid
        self.h, self.w, self.c = h, w, c
        self.scale, self.zp = scale, zp
        self.tfl = tfl            # TFLite tensor index (for verification against the oracle)
        self.name = name
        self.base = tid           # storage owner (RESHAPE outputs alias their input's storage)

    @property
    def row_bytes(self):
        return self.w * self.c

    @property
    def nbytes(self):
        return self.h * self.w * self.c


class LOp:
    def __init__(self, kind, tfl_op, ins, out, p):
        self.kind = kind
        self.tfl_op = tfl_op      # TFLite op index
        self.ins = ins            # LTensor ids
        self.out = out
        self.p = p                # list of int32 parameters (layout: device/opdefs.py)
        self.filt = None          # int8 filter, output-channel-major: conv [O,KH,KW,I], dw [O,KH,KW], fc [O,N]
        self.bias = self.mult = self.shift = None   # int32 per output channel
        self.geom = {}            # kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r, dm, axis...

    @property
    def name(self):
        return D.OP_NAMES[self.kind]


class Lowered:
    def __init__(self):
        self.tensors = []
        self.ops = []
        self.input = self.output = None
        self.in_float = self.out_float = False
        self.in_q = self.out_q = (1.0, 0)   # (scale, zp) of the device input / output tensors
        self.tfl_in = self.tfl_out = None    # TFLite tensor indices of the model's own input / output


def _view(shape, what):
    if len(shape) == 0:
        return (1, 1, 1)
    if shape[0] != 1:
        raise TilerError("%s has batch size %d; tileswap runs batch 1 (convert with keras.Input(..., batch_size=1))"
                         % (what, shape[0]))
    d = list(shape[1:])
    if len(d) > 3:
        raise TilerError("%s has rank %d; at most 4 (NHWC) is supported" % (what, len(shape)))
    while len(d) < 3:
        d.insert(0 if len(d) < 2 else 1, 1)
    return tuple(int(x) for x in d)


def lower(graph):
    """Graph (tiler.tflite_import) -> Lowered; TilerError naming the op for anything unsupported."""
    for op in graph.ops:
        if op.name not in SUPPORTED:
            raise UnsupportedOp(op.name, op.index)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise TilerError("the model has %d inputs and %d outputs; tileswap supports one of each"
                         % (len(graph.inputs), len(graph.outputs)))
    L = Lowered()
    tmap = {}                      # TFLite tensor index -> LTensor id
    T = graph.tensors

    def tensor(ti):
        if ti in tmap:
            return tmap[ti]
        t = T[ti]
        if t.dtype != np.int8:
            raise TilerError("tensor #%d %r is %s; tileswap needs a full-integer int8 model"
                             % (ti, t.name, np.dtype(t.dtype).name))
        s, z = t.q()
        h, w, c = _view(t.shape, "tensor #%d %r" % (ti, t.name))
        lt = LTensor(len(L.tensors), h, w, c, s, z, ti, t.name)
        L.tensors.append(lt)
        tmap[ti] = lt.id
        return lt.id

    gin, gout = graph.inputs[0], graph.outputs[0]
    L.tfl_in, L.tfl_out = gin, gout
    for op in graph.ops:
        where = "op #%d %s" % (op.index, op.name)
        ins = [i for i in op.inputs]
        o = op.outputs[0]
        if op.name == "QUANTIZE":
            src = T[ins[0]]
            if src.dtype == np.float32:
                if ins[0] != gin:
                    raise TilerError("%s: float QUANTIZE is only supported at the model input" % where)
                L.in_float = True
                L.input = tensor(o)
                continue
            si, zi = src.q()
            so, zo = T[o].q()
            p = list(quant.requant_params(in_scale=si, in_zp=zi, out_scale=so, out_zp=zo))
            L.ops.append(LOp(D.OP_REQUANT, op.index, [tensor(ins[0])], tensor(o), p))
            continue
        if op.name == "DEQUANTIZE":
            if o != gout:
                raise TilerError("%s: DEQUANTIZE is only supported at the model output" % where)
            L.out_float = True
            L.output = tensor(ins[0])
            continue
        if op.name == "RESHAPE":
            a = tensor(ins[0])
            if T[o].q() != T[ins[0]].q():
                raise TilerError("%s: RESHAPE changes quantization" % where)
            b = tensor(o)
            L.tensors[b].base = L.tensors[a].base
            continue
        L.ops.append(_lower_op(op, where, T, tensor, L))
    if L.input is None:
        L.input = tensor(gin)
    if L.output is None:
        L.output = tensor(gout)
    L.in_q = (L.tensors[L.input].scale, L.tensors[L.input].zp)
    L.out_q = (L.tensors[L.output].scale, L.tensors[L.output].zp)
    return L


class UnsupportedOp(TilerError):
    def __init__(self, name, index):
        TilerError.__init__(self, "unsupported operator %s at op #%d; supported: %s"
                            % (name, index, ", ".join(SUPPORTED)))
        self.exit_code = 2


def _fused(opts, where):
    f = _ACT.get(getattr(opts, "fusedActivationFunction", 0))
    if f is None:
        raise TilerError("%s: unsupported fused activation %d" % (where, opts.fusedActivationFunction))
    return f


def _act(opts, s, z, where):
    return quant.activation_range(_fused(opts, where), s, z)


def _same_pad(n, k, s, d):
    eff = (k - 1) * d + 1
    out = (n + s - 1) // s
    total = max((out - 1) * s + eff - n, 0)
    return out, total // 2, total - total // 2


def _spatial(op, lop, T, pad_kind, kh, kw, sh, sw, dh, dw):
    ti, to = T[op.inputs[0]], T[op.outputs[0]]
    h, w = ti.shape[1], ti.shape[2]
    if pad_kind == 0:   # SAME
        oh, pt, pb = _same_pad(h, kh, sh, dh)
        ow, pl, pr = _same_pad(w, kw, sw, dw)
    else:
        oh = (h - ((kh - 1) * dh + 1)) // sh + 1
        ow = (w - ((kw - 1) * dw + 1)) // sw + 1
        pt = pb = pl = pr = 0
    if (oh, ow) != tuple(to.shape[1:3]):
        raise TilerError("op #%d %s: output shape %s does not match the computed %s"
                         % (op.index, op.name, to.shape, (oh, ow)))
    lop.geom.update(kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw, pad_t=pt, pad_b=pb, pad_l=pl, pad_r=pr)
    p = lop.p
    p[D.P_IN_W], p[D.P_IN_C] = w, ti.shape[3]
    p[D.P_OUT_W], p[D.P_OUT_C] = ow, to.shape[3]
    p[D.P_KH], p[D.P_KW], p[D.P_SH], p[D.P_SW], p[D.P_DH], p[D.P_DW] = kh, kw, sh, sw, dh, dw
    p[D.P_PAD_L] = pl
    p[D.P_DM] = 1


def _requant_arrays(lop, T, op, ncout):
    si, _ = T[op.inputs[0]].q()
    so, _ = T[op.outputs[0]].q()
    wt = T[op.inputs[1]]
    fs = np.asarray(wt.scale, dtype=np.float32)
    if np.any(wt.zero_point != 0):
        raise TilerError("op #%d %s: int8 weights must have zero point 0" % (op.index, op.name))
    if op.name == "FULLY_CONNECTED":
        lop.mult, lop.shift = quant.fc_requant(si, fs, so, out_c=ncout)
    else:
        if len(fs) == 1:
            fs = np.repeat(fs, ncout)
        lop.mult, lop.shift = quant.per_channel_requant(si, fs, so)
    bi = op.inputs[2] if len(op.inputs) > 2 else -1
    if bi >= 0:
        lop.bias = np.asarray(T[bi].data, dtype=np.int32).reshape(-1)
    else:
        lop.bias = np.zeros(ncout, dtype=np.int32)


def _lower_op(op, where, T, tensor, L):
    name, opts = op.name, op.options
    ins = op.inputs
    o = op.outputs[0]
    so, zo = T[o].q()
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dw_ = name == "DEPTHWISE_CONV_2D"
        lop = LOp(D.OP_DWCONV if dw_ else D.OP_CONV, op.index, [tensor(ins[0])], tensor(o), [0] * D.P_SPATIAL_LEN)
        f = T[ins[1]].data
        if f is None:
            raise TilerError("%s: the filter is not a constant" % where)
        kh, kw = f.shape[1], f.shape[2]
        _spatial(op, lop, T, opts.padding, kh, kw, opts.strideH, opts.strideW,
                 opts.dilationHFactor, opts.dilationWFactor)
        cout = T[o].shape[3]
        if dw_:
            cin = T[ins[0]].shape[3]
            dm = cout // cin
            lop.p[D.P_DM] = dm
            lop.geom["dm"] = dm
            lop.filt = np.ascontiguousarray(np.transpose(f[0], (2, 0, 1)))       # [O, KH, KW]
        else:
            if f.shape[3] != T[ins[0]].shape[3]:
                raise TilerError("%s: grouped convolution is not supported" % where)
            lop.filt = np.ascontiguousarray(f)                                   # [O, KH, KW, I]
        _requant_arrays(lop, T, op, cout)
    elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        kind = D.OP_MAXPOOL if name == "MAX_POOL_2D" else D.OP_AVGPOOL
        lop = LOp(kind, op.index, [tensor(ins[0])], tensor(o), [0] * D.P_SPATIAL_LEN)
        if T[ins[0]].q() != T[o].q():
            raise TilerError("%s: input and output quantization differ" % where)
        _spatial(op, lop, T, opts.padding, opts.filterHeight, opts.filterWidth, opts.strideH, opts.strideW, 1, 1)
    elif name == "FULLY_CONNECTED":
        f = T[ins[1]].data
        if f is None:
            raise TilerError("%s: the weights are not a constant" % where)
        n = f.shape[1]
        lop = LOp(D.OP_FC, op.index, [tensor(ins[0])], tensor(o), [0] * D.PF_LEN)
        if L.tensors[lop.ins[0]].nbytes % n:
            raise TilerError("%s: input size is not a multiple of %d" % (where, n))
        lop.p[D.PF_N], lop.p[D.PF_OUT_C] = n, f.shape[0]
        lop.filt = np.ascontiguousarray(f)
        lop.geom["rows"] = L.tensors[lop.ins[0]].nbytes // n
        _requant_arrays(lop, T, op, f.shape[0])
    elif name == "ADD":
        if T[ins[0]].shape != T[ins[1]].shape:
            raise TilerError("%s: broadcasting ADD (%s + %s) is not supported" % (where, T[ins[0]].shape, T[ins[1]].shape))
        lop = LOp(D.OP_ADD, op.index, [tensor(ins[0]), tensor(ins[1])], tensor(o), None)
        (s1, z1), (s2, z2) = T[ins[0]].q(), T[ins[1]].q()
        lop.p = list(quant.add_params(in1_scale=s1, in1_zp=z1, in2_scale=s2, in2_zp=z2, out_scale=so, out_zp=zo,
                                      fused=_fused(opts, where)))
        return lop
    elif name == "MEAN":
        axes = sorted(int(a) % 4 for a in np.asarray(T[ins[1]].data).reshape(-1))
        if len(T[ins[0]].shape) != 4 or axes != [1, 2]:
            raise TilerError("%s: MEAN is supported over axes [1, 2] of an NHWC tensor (global average pooling)" % where)
        lop = LOp(D.OP_MEAN, op.index, [tensor(ins[0])], tensor(o), None)
        t = L.tensors[lop.ins[0]]
        si, zi = T[ins[0]].q()
        lop.p = list(quant.mean_params(c=t.c, count=t.h * t.w, in_scale=si, in_zp=zi, out_scale=so, out_zp=zo))
        return lop
    elif name == "PAD":
        pads = np.asarray(T[ins[1]].data).reshape(-1, 2)
        if len(pads) != 4 or pads[0].any() or pads[3].any():
            raise TilerError("%s: PAD is supported on height and width of an NHWC tensor" % where)
        if T[ins[0]].q() != T[o].q():
            raise TilerError("%s: input and output quantization differ" % where)
        lop = LOp(D.OP_PAD, op.index, [tensor(ins[0])], tensor(o), [zo, int(pads[2][0])])
        lop.geom.update(pad_t=int(pads[1][0]), pad_b=int(pads[1][1]), pad_l=int(pads[2][0]), pad_r=int(pads[2][1]))
        return lop
    elif name == "CONCATENATION":
        rank = len(T[o].shape)
        if opts.axis % rank != rank - 1:
            raise TilerError("%s: CONCATENATION is supported along the last axis only (axis %d)" % (where, opts.axis))
        for i in ins:
            if T[i].q() != (so, zo):
                raise TilerError("%s: input %r has a different scale from the output; int8 CONCATENATION needs "
                                 "equal scales (TFLite's converter inserts a QUANTIZE)" % (where, T[i].name))
        if len(ins) > 4:
            raise TilerError("%s: at most 4 inputs are supported (%d given)" % (where, len(ins)))
        if _ACT.get(opts.fusedActivationFunction) != "NONE":
            raise TilerError("%s: fused activation on CONCATENATION is not supported" % where)
        lop = LOp(D.OP_CONCAT, op.index, [tensor(i) for i in ins], tensor(o), [])
        return lop
    elif name == "LEAKY_RELU":
        lop = LOp(D.OP_LEAKY_RELU, op.index, [tensor(ins[0])], tensor(o), None)
        si, zi = T[ins[0]].q()
        lop.p = list(quant.leaky_relu_params(in_scale=si, in_zp=zi, out_scale=so, out_zp=zo, alpha=float(opts.alpha)))
        return lop
    elif name == "SOFTMAX":
        lop = LOp(D.OP_SOFTMAX, op.index, [tensor(ins[0])], tensor(o), None)
        n = L.tensors[lop.ins[0]].c
        try:
            lop.p = list(quant.softmax_params(n=n, in_scale=T[ins[0]].q()[0], beta=float(opts.beta),
                                              out_scale=so, out_zp=zo))
        except ValueError as e:
            raise TilerError("%s: %s" % (where, e)) from None
        return lop
    else:  # pragma: no cover - filtered by SUPPORTED
        raise UnsupportedOp(name, op.index)
    # spatial ops and FULLY_CONNECTED: zero points and the fused activation
    lo, hi = _act(opts, so, zo, where)
    if lop.kind == D.OP_FC:
        lop.p[D.PF_IN_ZP], lop.p[D.PF_OUT_ZP] = T[ins[0]].q()[1], zo
        lop.p[D.PF_ACT_MIN], lop.p[D.PF_ACT_MAX] = lo, hi
    else:
        lop.p[D.P_IN_ZP], lop.p[D.P_OUT_ZP] = T[ins[0]].q()[1], zo
        lop.p[D.P_ACT_MIN], lop.p[D.P_ACT_MAX] = lo, hi
    return lop
