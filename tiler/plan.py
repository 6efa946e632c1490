"""The first planner: split every op into tiles that fit the SRAM budget and place every buffer.

Arena layout at op i (offsets from the start of the budget B):

    [0, 1024)           the I/O staging blocks (partial blocks of payloads and spilled rows)
    [1024, top(i))       resident activations live at op i (fixed offsets for their whole life)
    [top(i), ...)       op i's scratch: input bands of spilled inputs, the weight tile, the output band
                        of a spilled output, the int32 accumulator of a MEAN or a K-split convolution
                        (whose output band may lie over it: _tile_ksplit)

Algorithm (greedy, not optimal):
0. Fused chains are chosen first (tiler/fuse.py: dynamic programming over the bytes each segment
   moves, on an estimate of which tensors stay resident); their intermediates never exist whole.
1. Start with every intermediate activation resident; the model input and output live on the card.
2. Place residents with a first-fit interval allocator (largest first), then give each op the space
   above its live residents. If some op cannot tile in what is left, spill a resident live at that op
   (preferring one the op does not read or write, then the largest) and repeat. An op that cannot tile
   with everything spilled fixes the minimum budget. Then try to bring each spilled tensor back
   (costliest spill first) and keep it resident if every op still fits and fewer bytes move.
3. Per op, choose band rows R and output-channel group G among ceil(n/k) candidates, minimising bytes
   moved, then tiles (for each G the largest R that fits is the best: fewer bands never move more).
   Execution is band-outer: with one channel group the weights are read once and kept; with several
   they are read again for every band (the alternative order, re-reading inputs per group, would move
   far less where the weights outweigh the input - MobileNetV2's 7x7 stage at 32 KiB - but the
   device does not run it). A spilled input's band buffer keeps the halo rows the next band shares
   (device/schedule.py `fresh`): each input row is read once per op, not once per band it touches.
   Readers of a channel-chunked spill (tiler/fuse.py) pay one tag per chunk: added once the plan is
   final, not weighed while tiling. A 1x1 convolution of a chunked spill may instead sum its input
   chunk by chunk (K-split, _tile_ksplit), which the device runs per band and output group, so the
   input is read once per group and the weights once per band; it is kept where it moves fewer bytes,
   and may write a spilled output in chunks of its output group. (The chain cuts, step 0, know of it
   only in the passes that assume a depthwise's spilled output may come in chunks: tiler/fuse.py.)
4. Steps 0-3 run twenty times (chain members outside split pairs with or without channel groups, chains
   cut on the estimate or on the residents of an earlier pass, with or without the option of spilling
   those residents, with or without K-split in the cut estimate: tiler/fuse.py) and the plan moving
   fewest bytes wins.
   Tiling results are memoised by (ops, scratch, kinds of their tensors), so later passes are cheap.
"""

import copy

from . import TilerError
from . import fuse
from ..device import format as F
from ..device import opdefs as D
from ..device import schedule as S

STAGING = F.STAGING
ALIGN = 8
_WEIGHTED = (D.OP_CONV, D.OP_DWCONV, D.OP_FC)


def _al(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _cands(n, unit=1):
    """Distinct values ceil(n/k), rounded up to `unit`, largest first."""
    m = n // unit
    return sorted({-(-m // k) * unit for k in range(1, m + 1)}, reverse=True)


def payload_len(op, g):
    """Bytes of one weight tile of g output channels: filter, pad to 4, then bias, mult, shift."""
    per = op.filt[0].size
    return (g * per + 3) // 4 * 4 + 12 * g


class OpPlan:
    def __init__(self, op):
        self.op = op
        self.band_rows = self.n_bands = 1
        self.group = self.n_groups = 1
        self.bufs = {}          # name -> (offset, size): in0, in1, ..., w, out, acc
        self.read = self.written = 0
        self.tiles = 0
        self.first_tile = F.NO_BUF
        self.macs = 0
        self.top = STAGING      # end of the residents at this op
        self.scratch = 0
        self.in_reads = {}      # base tensor -> bytes this op reads of it from the card
        self.in_chain = False   # member of a fused chain
        self.chained = False    # ... and not its last op: the next op consumes its output band by band
        self.split = None       # "out": computes one channel group at a time for the next op ("in")
        self.p = None           # parameters differing from the op's (a split op's narrow buffers)
        self.ksplit = 0         # K-split 1x1 convolution over input chunks of this many channels
        self.wres = False       # a split chain member keeping every group's weight tile (tiler/fuse.py)
        self.chunk = 0          # channels per card unit of its spilled output (0: whole rows; tiler/fuse.py)
        self.over = False       # a K-split op's output band lies over its accumulator (_tile_ksplit)


class Plan:
    def __init__(self, L, budget):
        self.L = L
        self.budget = budget
        self.kind = {}          # base tensor id -> F.T_*
        self.arena_off = {}     # resident base -> offset
        self.chain_off = {}     # chain tensor -> offset of its band buffer
        self.chains = []        # fused chains: lists of op indices
        self.chunk = {}         # spilled base tensor -> channels per card unit, where chunked
        self.chunk_now = {}     # ... as the chains tiled so far in this placement chose (_try)
        self.progress = None
        self.ops = []
        self.peak = 0
        self.memo = {}          # tiling results by (ops, scratch, kinds of their tensors): plan_model retiles often
        self.group_members = True   # chain members outside split pairs may have several channel groups

    def base(self, tid):
        return self.L.tensors[self.L.tensors[tid].base]


def band_height(op, L):
    if op.kind == D.OP_MEAN:
        return L.tensors[op.ins[0]].h
    if op.kind == D.OP_FC:
        return 1
    return L.tensors[op.out].h


def in_rows(op, L, k, r0, r1):
    """View rows [a, b) of input k that band rows [r0, r1) need (device/schedule.py decides)."""
    return S.in_rows(op.kind, op.p, op.geom.get("pad_t", 0), L.tensors[op.ins[k]].h, r0, r1)


def cover(L, tid, a, b):
    t = L.tensors[tid]
    return S.cover(t.row_bytes, L.tensors[t.base].row_bytes, a, b)


def _io_row(L, tid):
    return L.tensors[L.tensors[tid].base].row_bytes + F.TAG_LEN


def _kinds(plan, ops):
    L = plan.L
    return tuple(plan.kind.get(L.tensors[t].base) for op in ops for t in op.ins + [op.out])


def _fresh(opl):
    """A copy of a memoised OpPlan that the caller may place (top, bufs) without touching the memo."""
    c = copy.copy(opl)
    c.bufs = {}
    return c


def _tile_op(plan, op, avail, exact=False):
    """Best (cost, OpPlan) for op within `avail` scratch bytes, or None (memoised)."""
    ch = plan.chunk_now.get(plan.L.tensors[op.ins[0]].base, 0) if op.ins else 0
    key = ("op", op.out, avail, exact, _kinds(plan, [op]), ch)
    if key not in plan.memo:
        got = _tile_op1(plan, op, avail, exact)
        if ch and fuse.ksplittable(op, plan.L):
            alt = _tile_ksplit(plan, op, avail, ch)
            if alt is not None and (got is None or alt[0] < got[0]):
                got = alt
        plan.memo[key] = got
    got = plan.memo[key]
    return (got[0], _fresh(got[1])) if got else None


def _tile_op1(plan, op, avail, exact=False):
    L = plan.L
    H = band_height(op, L)
    out = L.tensors[op.out]
    out_res = plan.kind[out.base] == F.T_ARENA
    ins_sp = [k for k, t in enumerate(op.ins) if plan.kind[L.tensors[t].base] != F.T_ARENA]
    weighted = op.kind in _WEIGHTED
    cout = out.c if op.kind != D.OP_FC else op.p[D.PF_OUT_C]
    unit = op.geom.get("dm", 1) if op.kind == D.OP_DWCONV else 1
    groups = _cands(cout, unit) if weighted else [cout]
    best = None
    for g in groups:
        wlen = payload_len(op, g) if weighted else 0
        for r in _cands(H):
            nb = -(-H // r)
            m = nb // 2
            # the estimate: the first band, then a middle band as read after the band before it
            bands = ([(i * r, min(H, (i + 1) * r)) for i in range(nb)] if exact or nb < 4
                     else [(0, r), ((m - 1) * r, m * r), (m * r, m * r + r)])
            need = []
            rd = 0
            per = {}
            for k in ins_sp:
                mx = 0
                rd0 = rd
                pa = pz = 0
                for n, (r0, r1) in enumerate(bands):
                    a, b = in_rows(op, L, k, r0, r1)
                    ra, rb = cover(L, op.ins[k], a, b)
                    mx = max(mx, (rb - ra) * L.tensors[L.tensors[op.ins[k]].base].row_bytes)
                    f = S.fresh(pa, pz, ra, rb)      # rows the previous band left in the buffer are kept
                    if len(bands) == nb or n != 1:
                        rd += ((rb - f) * (nb - 1) if len(bands) < nb and n == 2 else rb - f) * _io_row(L, op.ins[k])
                    pa, pz = ra, rb
                need.append(("in%d" % k, mx))
                b = L.tensors[op.ins[k]].base
                per[b] = per.get(b, 0) + rd - rd0
            if weighted:
                need.append(("w", wlen))
            if not out_res:
                rows_out = 1 if op.kind in (D.OP_MEAN,) else r
                ob = rows_out * out.row_bytes if op.kind != D.OP_FC else op.geom["rows"] * cout
                need.append(("out", ob))
            if op.kind == D.OP_MEAN:
                need.append(("acc", 4 * out.c))
            size = sum(_al(s) for _, s in need)
            if size > avail:
                continue
            ng = -(-cout // g) if weighted else 1
            wtotal = sum(payload_len(op, min(g, cout - i)) for i in range(0, cout, g)) if weighted else 0
            loads = ng * (nb if ng > 1 else 1) if weighted else 0
            rd += wtotal * (nb if ng > 1 else 1) + loads * F.TILE_SIZE
            wr = 0 if out_res else out.h * (out.row_bytes + F.TAG_LEN)
            tiles = nb * ng
            cost = (rd + wr, tiles)
            if best is None or cost < best[0]:
                opl = OpPlan(op)
                opl.band_rows, opl.n_bands, opl.group, opl.n_groups = r, nb, g, ng
                opl.read, opl.written, opl.tiles = rd, wr, tiles
                opl.need = need
                opl.in_reads = per
                opl.scratch = size
                best = (cost, opl)
            break   # larger r fits first; smaller r only costs more for this g
    return best


def ksplit_tiles(cout, q, cin, ch):
    """Payload lengths of a K-split convolution's tiles, output group by output group, chunk by chunk:
    filter [q][ch] padded to 4; the group's last chunk also carries its bias, mult and shift."""
    n = cin // ch
    out = []
    for c0 in range(0, cout, q):
        g = min(q, cout - c0)
        out += [(g * ch + 3) // 4 * 4 + (12 * g if u == n - 1 else 0) for u in range(n)]
    return out


def _tile_ksplit(plan, op, avail, ch):
    """K-split tiling of a 1x1 convolution whose input is stored in channel chunks of ch (tiler/fuse.py):
    per band and output group of q channels, int32 sums over the input chunk by chunk (each read
    row by row from its card units into a one-row buffer, each with its weight tile), then requantized
    - over the sums themselves where the output group's band is written before the next group's sums
    start. The input is read once per output group, the weights once per band. (cost, OpPlan) or None."""
    L = plan.L
    tin = L.tensors[op.ins[0]]
    out = L.tensors[op.out]
    out_res = plan.kind[out.base] == F.T_ARENA
    H, W, cout, n = out.h, out.w, out.c, tin.c // ch
    best = None
    # A spilled output may be written group by group in channel chunks of q (units of up to two
    # blocks), so its band buffer holds one group: wider groups fit, and the input is read fewer times.
    can_chunk = plan.kind[out.base] == F.T_SPILL and out.base == out.id
    for q in _cands(cout):
        tiles = ksplit_tiles(cout, q, tin.c, ch)
        nq = -(-cout // q)
        for cq in ((q, 0) if can_chunk and fuse.chunked(out, q, 2) else (0,)):
            for r in _cands(H):
                need = [("in0", W * ch), ("w", max(tiles)), ("acc", 4 * r * W * q)]
                # the output is requantized over the accumulator where each group's band is written
                # before the next group's sums start: one group, or a chunked output
                over = not out_res and bool(cq or nq == 1)
                if not out_res and not over:
                    need.append(("out", r * out.row_bytes))
                size = sum(_al(x) for _, x in need)
                if size > avail:
                    continue
                nb = -(-H // r)
                inp = nq * H * (tin.row_bytes + n * F.TAG_LEN)
                rd = inp + nb * (sum(tiles) + len(tiles) * F.TILE_SIZE)
                wr = 0 if out_res else out.h * fuse.spill_row(out, cq)
                cost = (rd + wr, nb * len(tiles))
                if best is None or cost < best[0]:
                    opl = OpPlan(op)
                    opl.band_rows, opl.n_bands, opl.group, opl.n_groups = r, nb, q, nq
                    opl.read, opl.written, opl.tiles = rd, wr, nb * len(tiles)
                    opl.need = need
                    opl.in_reads = {tin.base: inp}
                    opl.scratch = size
                    opl.ksplit = ch
                    opl.chunk = cq
                    opl.over = over
                    if cq:
                        opl.p = list(op.p)
                        opl.p[D.P_OUT_C] = q      # the band buffer holds one group
                    best = (cost, opl)
                break       # the largest band that fits moves least for this q
    return best


def min_scratch(plan, op):
    """Smallest scratch op can tile in (band 1 row, smallest group)."""
    lo, hi = 0, 1 << 31
    while lo < hi:
        mid = (lo + hi) // 2
        if _tile_op(plan, op, mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _live(L):
    """base -> (first op index, last op index) over lowered ops."""
    live = {}
    for i, op in enumerate(L.ops):
        for t in op.ins + [op.out]:
            b = L.tensors[t].base
            f, l = live.get(b, (i, i))
            live[b] = (min(f, i), max(l, i))
    return live


def _place(plan, live, resident):
    """First-fit interval placement, largest first. Returns base -> offset."""
    L = plan.L
    placed = []
    offs = {}
    for b in sorted(resident, key=lambda b: -L.tensors[b].nbytes):
        f, l = live[b]
        size = _al(L.tensors[b].nbytes)
        clash = sorted((offs[o], offs[o] + _al(L.tensors[o].nbytes)) for o in placed
                       if not (live[o][1] < f or l < live[o][0]))
        off = STAGING
        for s, e in clash:
            if off + size <= s:
                break
            off = max(off, e)
        offs[b] = off
        placed.append(b)
    return offs


def plan_model(L, budget, *, _search=True, progress=None):
    """Lowered model -> Plan within `budget` bytes; TilerError naming the op that cannot fit.
    progress(done, total) is called as ops are tiled (several passes while residency is decided).

    The fused chains are cut on an estimate of what stays resident (tiler/fuse.py), so the model is
    planned several times and the plan moving the fewest bytes is kept: with and without channel
    groups for chain members outside split pairs, each with the chains cut again knowing the
    residents of the plan before (which tensors, and the SRAM they left each op)."""
    first = got = best = _plan_model(L, budget, _search, progress, None, True)
    if not _search:         # (the bisection for the smallest budget: one pass decides)
        return best
    passes = ((True, "prev", False), (True, "prev", True), (False, None, False), (False, "prev", False),
              (False, "prev", True), (True, "best", False), (True, "best", True), (False, "best", False),
              (False, "best", True))
    for ksplit_est in (False, True):
        for group_members, prior, respill in ((True, None, False),) * ksplit_est + passes:
            try:
                # (no bisection for an error message here: a failing extra pass is just not kept)
                got = _plan_model(L, budget, False, progress, {"prev": got, "best": best}.get(prior),
                                  group_members, first.memo, respill, ksplit_est)
            except TilerError:
                continue
            if (_moved(got.ops), got.n_tiles) < (_moved(best.ops), best.n_tiles):
                best = got
    return best


def _plan_model(L, budget, _search, progress, prior, group_members, memo=None, respill=False, ksplit_est=False):
    plan = Plan(L, budget)
    plan.progress = progress
    plan.group_members = group_members
    if memo is not None:
        plan.memo = memo
    live = _live(L)
    bases = set(live)
    inb, outb = L.tensors[L.input].base, L.tensors[L.output].base
    for b in bases | {inb, outb}:
        plan.kind[b] = F.T_SPILL
    plan.kind[inb], plan.kind[outb] = F.T_INPUT, F.T_OUTPUT
    # The minimum budget for every op on its own, all intermediates spilled. Below it, an op can still
    # run inside a fused chain (tiler/fuse.py), whose intermediates never exist at full size.
    need = [(STAGING + min_scratch(plan, op), i) for i, op in enumerate(L.ops)]
    plan.min_sram = max(need)[0] if need else STAGING
    plan.chains = fuse.find_chains(plan, budget, _tile_chain, _tile_op,
                                   prior and (prior.kind, [o.res_top for o in prior.ops]), respill, ksplit_est)
    chained = {i for c in plan.chains for i in c}
    for n, i in sorted(need, reverse=True):
        if n > budget and i not in chained:
            op = L.ops[i]
            raise TilerError("SRAM budget %d bytes is too small: op #%d %s (TFLite op #%d) needs %d bytes on its own "
                             "and cannot be fused here; the smallest budget that works for this model is --sram %d"
                             % (budget, i, op.name, op.tfl_op, n, (_smallest(L, plan.min_sram) if _search else plan.min_sram)))
    chain_t = {L.ops[i].out for c in plan.chains for i in c[:-1]}
    for b in chain_t:
        plan.kind[b] = F.T_CHAIN
    _widen(L, live, plan.chains)
    inner = [b for b in bases if b not in (inb, outb) and b not in chain_t]
    resident = set(inner)
    while True:
        offs, plans, bad = _try(plan, live, inner, resident)
        if bad is None:
            break
        # Spill a tensor live at the failing op: one the op does not touch (a skip connection) frees
        # space without adding a band buffer to the op; among those, or else, the largest.
        span = next((c for c in plan.chains if c[0] == bad), [bad])
        touched = {L.tensors[t].base for j in span for t in L.ops[j].ins + [L.ops[j].out]}
        cands = [b for b in resident if any(live[b][0] <= j <= live[b][1] for j in span)]
        if not cands and need[bad][0] > budget:
            op = L.ops[bad]
            raise TilerError("SRAM budget %d bytes is too small: op #%d %s (TFLite op #%d) does not fit even fused "
                             "with its neighbours; the smallest budget that works for this model is --sram %d"
                             % (budget, bad, op.name, op.tfl_op, (_smallest(L, plan.min_sram) if _search else plan.min_sram)))
        if not cands:          # a chain that only fits alone: run its ops one by one instead
            plan.chains = [c for c in plan.chains if bad not in c]
            for b in chain_t - {L.ops[i].out for c in plan.chains for i in c[:-1]}:
                plan.kind[b] = F.T_SPILL
                inner.append(b)
                resident.add(b)
            chain_t = {L.ops[i].out for c in plan.chains for i in c[:-1]}
            continue
        resident.discard(max(cands, key=lambda b: (b not in touched, L.tensors[b].nbytes)))
    # Greedy spilling overshoots: bring back what fits, the tensors whose spill costs most first.
    # A resident can also cost more than its spill: the SRAM it holds gives other ops fewer bands
    # (fewer weight re-reads). Spill such tensors, then try bringing the others back again.
    for rnd in range(3):
        changed = False
        for b in sorted(set(inner) - resident, key=lambda b: -L.tensors[b].nbytes * _uses(L, b)):
            got = _try(plan, live, inner, resident | {b})
            if got[2] is None and _moved(got[1]) < _moved(plans):
                resident.add(b)
                offs, plans = got[0], got[1]
                changed = True
        if rnd == 2:
            break
        for b in sorted(resident, key=lambda b: -L.tensors[b].nbytes):
            got = _try(plan, live, inner, resident - {b})
            if got[2] is None and _moved(got[1]) < _moved(plans):
                resident.discard(b)
                offs, plans = got[0], got[1]
                changed = True
        if not changed:
            break
    for b in inner:
        plan.kind[b] = F.T_ARENA if b in resident else F.T_SPILL
    plan.arena_off = offs
    _finish(plan, plans)
    return plan


def _widen(L, live, chains):
    """A chain's ops run interleaved band by band: every tensor one of them touches is live for the
    whole chain (else the chain's output could be placed over its still-needed input)."""
    for c in chains:
        for i in c:
            for t in L.ops[i].ins + [L.ops[i].out]:
                b = L.tensors[t].base
                f, l = live[b]
                live[b] = (min(f, c[0]), max(l, c[-1]))


def smallest_budget(L):
    """The smallest budget (to 256 bytes) at which the lowered model plans, found by bisection. Fused
    chains can take it below what the largest op needs on its own (Plan.min_sram, an upper bound).
    Planning is greedy, so feasibility is not strictly monotonic in the budget: this is the bisection's
    answer, as the error for a too-small budget gives it."""
    return _smallest(L, plan_model(L, 1 << 30, _search=False).min_sram)


def _smallest(L, hi):
    """The smallest budget (to 256 bytes) at which the whole model plans: bisection below `hi`, the
    budget at which every op fits on its own."""
    lo = STAGING
    while hi - lo > 256:
        mid = (lo + hi) // 2
        try:
            plan_model(L, mid, _search=False)
            hi = mid
        except TilerError:
            lo = mid
    return hi


def _uses(L, b):
    return 1 + sum(1 for op in L.ops for t in op.ins if L.tensors[t].base == b)


def _moved(plans):
    return sum(p.read + p.written for p in plans)


def _try(plan, live, inner, resident):
    """Place `resident` and tile every op; (offsets, op plans, index of the first op that fails or None)."""
    L, budget = plan.L, plan.budget
    for b in inner:
        plan.kind[b] = F.T_ARENA if b in resident else F.T_SPILL
    offs = _place(plan, live, resident)
    heads = dict((c[0], c) for c in plan.chains)
    plan.chunk_now = {}

    def top_at(i):
        return max([STAGING] + [offs[b] + _al(L.tensors[b].nbytes) for b in resident if live[b][0] <= i <= live[b][1]])

    plans = []
    i = 0
    while i < len(L.ops):
        if plan.progress:
            plan.progress(i, len(L.ops))
        if i in heads:
            c = heads[i]
            top = max(top_at(j) for j in c)
            members = _tile_chain(plan, c, budget - top) if top <= budget else None
            if members is None:
                return offs, plans, i
            for j, m in zip(c, members):
                m.res_top = top_at(j)
                m.top = top
                top += m.scratch
                if m.chunk:
                    plan.chunk_now[L.tensors[m.op.out].base] = m.chunk
            plans.extend(members)
            i += len(c)
            continue
        top = top_at(i)
        got = _tile_op(plan, L.ops[i], budget - top, exact=True) if top <= budget else None
        if got is None:
            return offs, plans, i
        got[1].top = got[1].res_top = top
        if got[1].chunk:                        # a K-split op writing its output in channel chunks
            plan.chunk_now[L.tensors[L.ops[i].out].base] = got[1].chunk
        plans.append(got[1])
        i += 1
    return offs, plans, None


def _tile_chain(plan, idxs, avail, probe=False):
    key = ("chain", tuple(idxs), avail, probe, plan.group_members, _kinds(plan, [plan.L.ops[i] for i in idxs]))
    if key not in plan.memo:
        members = fuse.tile_chain(plan, idxs, avail, payload_len, OpPlan, probe=probe)
        if members:
            for m in members:
                m.in_chain = True
        plan.memo[key] = members
    members = plan.memo[key]
    return [_fresh(m) for m in members] if members else members


def _finish(plan, plans):
    """Assign scratch offsets, tile indices and MAC counts."""
    L = plan.L
    tile = 0
    peak = STAGING
    for opl in plans:
        op = opl.op
        off = opl.top
        for name, size in opl.need:
            opl.bufs[name] = (off, size)
            if name == "chain":
                plan.chain_off[op.out] = off
            off += _al(size)
        if opl.over:
            opl.bufs["out"] = opl.bufs["acc"]
        peak = max(peak, off, opl.top)
        if op.kind in _WEIGHTED:
            opl.first_tile = tile
            tile += opl.n_groups * (L.tensors[op.ins[0]].c // opl.ksplit if opl.ksplit else 1)
        if not opl.in_chain:       # a chain member counts its recomputed rows (tiler/fuse.py)
            opl.macs = op_macs(op, L)
    for b, o in plan.arena_off.items():
        peak = max(peak, o + L.tensors[b].nbytes)
    # Channel-chunked spills (tiler/fuse.py): their readers rebuild whole rows from units that carry a
    # tag each; the tiling counted one tag per row, so add the others.
    plan.chunk = {L.tensors[o.op.out].base: o.chunk for o in plans if o.chunk}
    for opl in plans:
        if not opl.ksplit and any(b in plan.chunk for b in opl.in_reads):
            opl.in_reads = dict(opl.in_reads)      # (shared with the memoised tiling)
            for b in opl.in_reads:
                if b in plan.chunk:
                    t = L.tensors[b]
                    rows = opl.in_reads[b] // (t.row_bytes + F.TAG_LEN)
                    extra = rows * (t.c // plan.chunk[b] - 1) * F.TAG_LEN
                    opl.in_reads[b] += extra
                    opl.read += extra
    plan.ops = plans
    plan.n_tiles = tile
    plan.peak = peak
    # IO accounting (docs/design.md): the floor a device with unlimited SRAM would move, and the spills.
    inp, outp = L.tensors[L.input], L.tensors[L.output]
    # A device with unlimited SRAM reads each weighted op's payload as one tile (and its record), the
    # input's rows and tags once, and writes the output's once: independent of this plan's tiling.
    plan.io_min = (sum(payload_len(op, len(op.mult)) + F.TILE_SIZE for op in L.ops if op.kind in _WEIGHTED)
                   + inp.h * (inp.row_bytes + F.TAG_LEN) + outp.h * (outp.row_bytes + F.TAG_LEN))
    plan.spill_bytes = sum(n for o in plans for b, n in o.in_reads.items() if plan.kind[b] == F.T_SPILL)
    plan.spill_bytes += sum(o.written for o in plans if plan.kind[L.tensors[o.op.out].base] == F.T_SPILL)


def op_macs(op, L):
    out = L.tensors[op.out]
    g = op.geom
    if op.kind == D.OP_CONV:
        return out.h * out.w * out.c * g["kh"] * g["kw"] * L.tensors[op.ins[0]].c
    if op.kind == D.OP_DWCONV:
        return out.h * out.w * out.c * g["kh"] * g["kw"]
    if op.kind == D.OP_FC:
        return g["rows"] * op.p[D.PF_N] * op.p[D.PF_OUT_C]
    return 0
