"""Fused row-band chains: run consecutive ops band by band so their intermediates never leave SRAM.

The idea behind MCUNetV2's patch-based inference, by rows: a chain of ops (each consuming only the
previous op's output) runs in bands of its last op's output rows; for every band the rows each
earlier op must produce follow backwards from the band arithmetic (device/schedule.py), and the halo
rows that neighbouring bands share are recomputed instead of stored. A large early feature map then
costs a few rows of SRAM and no card I/O, at the price of the recomputed MACs.

Which links to fuse (not optimal): a link op_i -> op_i+1 is a candidate when op_i's output is read
only by op_i+1, is no model output and has no RESHAPE views, both ops are row-band ops, and the
tensor is large next to the budget (more than a quarter of it: smaller ones usually stay resident).
A MEAN may end a chain (its bands run over its input rows into its accumulator: MobileNetV2's
7x7x1280 map is then never spilled). Chains are cut by dynamic programming over the ops: every segment (one op, or a chain of up to
_MAX_CHAIN ops that fits the budget alone) costs the bytes it moves when tiled - weight re-reads
per band, halo re-reads, a split convolution's input fetched per group, the spill of each broken
link - and the cuts minimise the sum. The segment costs assume the tensors outside a segment are
resident when they take at most half the budget and spilled otherwise, and know nothing of skip
connections live across the segment; residents and band sizes are then planned around the chains
by tiler/plan.py, so the cut is optimal only for that estimate. Cut on an earlier plan's residents,
a segment may (respill) instead cost what it moves with them spilled plus their spills elsewhere
(one card pass per other op touching them, one tag per row; the segment then gets the whole budget,
as if no skip connection lived across it: optimistic), where that is less: the SRAM a resident
takes can cost a segment more than the resident saves (MobileNetV2's 14x14x384 expansion, depthwise
and projection fuse at 64 KiB only with the projection's output spilled). With ksplit_est, a 1x1
convolution on its own reading a depthwise's spilled output may cost what it moves K-split
(tiler/plan.py _tile_ksplit), over each chunk size the depthwise's chain could write: optimistic,
since that chain may not chunk; it is one more set of passes, and the plan that moves least is kept
(MobileNetV2 at 16 KiB: 3.78 -> 3.50; MobileNetV1 at 32 KiB would be 5.46 instead of 5.10 with it
alone).
Split ops may keep every group's weight tile for the whole chain (wres: read once instead of once per
band, at the price of SRAM the bands then lack); both are tried for every k.
Within a chain, every channel split k of _SPLITS (no split, then 2, 3, 4, 6, ... groups for split pairs:
up to 128 when chain members may take channel groups, 32 otherwise) is tried with the largest band
that fits, and the one moving fewest bytes is kept.
"""

from ..device import format as F
from ..device import opdefs as D
from ..device import schedule as S

_BANDABLE = (D.OP_CONV, D.OP_DWCONV, D.OP_MAXPOOL, D.OP_AVGPOOL, D.OP_ADD, D.OP_REQUANT, D.OP_PAD,
             D.OP_LEAKY_RELU)
_WEIGHTED = (D.OP_CONV, D.OP_DWCONV)
_MAX_CHAIN = 12
_SPLITS = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128]     # channel groups tried for split pairs


def _al(n):
    return (n + 7) // 8 * 8


def find_chains(plan, budget, tile_chain, tile_op, prior=None, respill=False, ksplit_est=False):
    """Lists of op indices, each a chain of two or more ops. prior: (kinds, resident top per op) of a
    previous plan, for the segment costs (see above). respill: a segment may also cost what it moves
    with the prior's residents spilled, plus their spills elsewhere, where that is less. ksplit_est: a
    1x1 convolution of a depthwise's spilled output may cost what it moves K-split (see above)."""
    L = plan.L
    uses = {}
    for i, op in enumerate(L.ops):
        for t in op.ins:
            uses.setdefault(L.tensors[t].base, []).append(i)
    views = {}
    for t in L.tensors:
        views[t.base] = views.get(t.base, 0) + 1
    outb = L.tensors[L.output].base

    def link(i):
        op, nxt = L.ops[i], L.ops[i + 1]
        t = L.tensors[op.out]
        return (op.kind in _BANDABLE and nxt.kind in _BANDABLE + (D.OP_MEAN,) and t.base == t.id and views[t.id] == 1
                and t.id != outb and uses.get(t.id) == [i + 1] and t.nbytes * 4 > budget)

    # Where to break: dynamic programming over the op sequence, minimising the bytes every segment
    # moves when it is tiled (a chain, or one op on its own): weight re-reads per band, halo re-reads,
    # a split convolution's input fetched per group, and the spill of a broken link (its producer
    # writes it, its consumer reads it back). Tensors outside the segment are assumed resident when
    # they take at most half the budget (their bytes are then not available to the segment), spilled
    # otherwise; skip connections live across a segment are not known yet. A segment j..i is allowed
    # when all its links are candidates and it fits the budget alone.
    n = len(L.ops)
    links = [link(i) for i in range(n - 1)] + [False]
    users = {}                  # base tensor -> ops reading or writing it
    for m, op in enumerate(L.ops):
        for t in set(L.tensors[x].base for x in op.ins + [op.out]):
            users.setdefault(t, []).append(m)
    card = {b: L.tensors[b].h * spill_row(L.tensors[b], 0) for b in users}
    kind0 = dict(plan.kind)

    def cost(j, i):
        """Bytes moved by ops j..i-1 tiled together (None if they do not fit). Where they do not fit
        beside the estimated residents, they cost what they move with every outside tensor spilled
        (the planner will spill some)."""
        idxs = list(range(j, i))
        inner = {L.ops[m].out for m in idxs[:-1]}
        ext = {L.tensors[t].base for m in idxs for t in L.ops[m].ins if t not in inner}
        ext.add(L.tensors[L.ops[i - 1].out].base)
        if prior is not None:            # a previous plan's residents, and the SRAM they left
            kinds, tops = prior
            res = [b for b in ext if kind0[b] == F.T_SPILL and kinds.get(b) == F.T_ARENA]
            avail = budget - max(tops[m] for m in idxs)
        else:
            res = [b for b in ext if kind0[b] == F.T_SPILL and L.tensors[b].nbytes * 2 <= budget]
            avail = budget - F.STAGING - sum(_al(L.tensors[b].nbytes) for b in res)
        got = moved(j, i, res, avail)
        alt = moved(j, i, [], budget - F.STAGING) if (res and respill) or got is None else None
        if alt is not None and got is not None:
            # ... or with those residents spilled after all, if the SRAM they take costs the segment
            # more than their spills cost: every other op that touches one reads or writes it once
            alt += sum(card[b] * sum(1 for m in users[b] if not j <= m < i) for b in res)
        return got if alt is None or (got is not None and got <= alt) else alt

    def moved(j, i, res, avail):
        if avail < 0:
            return None
        for b in res:
            plan.kind[b] = F.T_ARENA
        try:
            if i - j > 1:
                members = tile_chain(plan, list(range(j, i)), avail)
            else:
                got = tile_op(plan, L.ops[j], avail, exact=True)
                members = [got[1]] if got else None
                for g in (ksplit_est and chunkable(j)) or ():
                    plan.chunk_now[L.ops[j].ins[0]] = g       # (as if the chain before chunked it by g)
                    try:
                        alt = tile_op(plan, L.ops[j], avail, exact=True)
                    finally:
                        plan.chunk_now.pop(L.ops[j].ins[0])
                    if alt and (members is None or alt[0] < (members[0].read + members[0].written, 0)):
                        members = [alt[1]]
            return sum(m.read + m.written for m in members) if members else None
        finally:
            plan.kind.update(kind0)

    def chunkable(j):
        """Chunk sizes op j's input may come in: it is the spilled output of a depthwise at j - 1 that a
        chain may run by channel groups (written in chunks of the group), and op j can sum it K-split."""
        op = L.ops[j]
        if j == 0 or not op.ins or L.ops[j - 1].kind != D.OP_DWCONV or L.ops[j - 1].out != op.ins[0]:
            return ()
        t = L.tensors[op.ins[0]]
        if kind0.get(t.id) != F.T_SPILL or plan.kind.get(t.id) != F.T_SPILL or not ksplittable(op, L):
            return ()
        return [g for g in range(1, t.c) if chunked(t, g)]

    big = float(1 << 60)        # an op that fits nowhere: the planner names it later
    best = [None] * (n + 1)     # best[i]: cost of ops 0..i-1, a segment ending at op i-1
    back = [0] * (n + 1)
    best[0] = 0
    for i in range(1, n + 1):
        for j in range(i - 1, max(-1, i - 1 - _MAX_CHAIN), -1):       # segment ops j..i-1
            if j < i - 1 and not links[j]:
                break
            if i - j > 1 and tile_chain(plan, list(range(j, i)), budget - F.STAGING, probe=True) is None:
                continue    # a longer segment may fit where this one does not: a convolution added in
                            # front of a depthwise makes a split pair, whose wide tensor is never whole
            c = cost(j, i)
            if c is None:
                if i - j > 1:
                    continue
                c = big
            c += best[j]
            if best[i] is None or c < best[i]:
                best[i], back[i] = c, j
    chains = []
    i = n
    while i > 0:
        j = back[i]
        if i - j > 1:
            chains.append(list(range(j, i)))
        i = j
    return chains[::-1]


def _row_macs(op, L):
    out = L.tensors[op.out]
    if op.kind == D.OP_CONV:
        return out.w * out.c * op.geom["kh"] * op.geom["kw"] * L.tensors[op.ins[0]].c
    if op.kind == D.OP_DWCONV:
        return out.w * out.c * op.geom["kh"] * op.geom["kw"]
    return 0


def _height(L, op):
    """Rows a chain's last op runs its bands over: a MEAN (which may end a chain) accumulates its
    input rows band by band."""
    return L.tensors[op.ins[0]].h if op.kind == D.OP_MEAN else L.tensors[op.out].h


def ksplittable(op, L):
    """A 1x1 convolution (stride 1, no padding) can sum its input in channel chunks (K-split)."""
    g = op.geom
    return (op.kind == D.OP_CONV and g["kh"] == 1 and g["kw"] == 1 and op.p[D.P_SH] == 1 and op.p[D.P_SW] == 1
            and g.get("pad_t", 0) == 0 and L.tensors[op.ins[0]].base == op.ins[0])


def bands_of(plan, idxs, r):
    """For bands of r rows of the last op: per band, the (lo, hi) output rows of every member."""
    L = plan.L
    ops = [L.ops[i] for i in idxs]
    H = _height(L, ops[-1])
    res = []
    for b0 in range(0, H, r):
        rng = [None] * len(ops)
        rng[-1] = (b0, min(H, b0 + r))
        for j in range(len(ops) - 1, 0, -1):
            op = ops[j]
            prev = L.tensors[ops[j - 1].out]
            rng[j - 1] = S.in_rows(op.kind, op.p, op.geom.get("pad_t", 0), prev.h, *rng[j])
        res.append(rng)
    return res


_MAX_SCATTER = 512         # pixel copies per row a reader of a chunked tensor makes, at most


def chunked(t, g, blocks=1):
    """Can spilled tensor t be stored in channel chunks of g, a unit and its tag in `blocks` card blocks
    (at most the two staging blocks, see docs/format.md)? Readers rebuild whole rows pixel by pixel, so
    rows of many narrow units are not. (Split depthwise outputs take one block: allowing two makes the
    chains pick wider groups, which costs their K-split readers more than the tags it saves.)"""
    return (g < t.c and t.c % g == 0 and t.w * g + F.TAG_LEN <= blocks * F.BLOCK
            and t.w * (t.c // g) <= _MAX_SCATTER)


def spill_row(t, chunk):
    """Card bytes one spilled row of t moves (data and tags): one tag per row, or per chunk."""
    return t.row_bytes + F.TAG_LEN * (t.c // chunk if chunk else 1)


def _splittable(ops, j):
    """ops[j] (a convolution) feeds ops[j+1] (a depthwise of multiplier 1, or a MEAN ending the chain),
    whose channels are independent: they can run by channel groups."""
    if j + 1 >= len(ops) or ops[j].kind != D.OP_CONV:
        return False
    nxt = ops[j + 1]
    return (nxt.kind == D.OP_DWCONV and nxt.geom.get("dm", 1) == 1) or nxt.kind == D.OP_MEAN


def tile_chain(plan, idxs, avail, payload_len, OpPlan, probe=False):
    """Member OpPlans for the chain with the largest band that fits `avail`, or None.

    If no band fits, a convolution feeding a depthwise convolution is split into k channel groups: the
    convolution computes one group into a narrow buffer and the depthwise consumes it at once (its
    channels are independent), so the widest intermediate is never held at full width. The weight
    tiles of split ops are read again for every band; a split convolution fetches its (spilled) input
    rows once per band and keeps them for all its groups. A MEAN ending the chain may take the
    depthwise's place: it sums each group's channels as they come."""
    L = plan.L
    ops = [L.ops[i] for i in idxs]
    H = _height(L, ops[-1])
    cands = [1] if probe else sorted({-(-H // k) for k in range(1, H + 1)}, reverse=True)
    can_split = any(_splittable(ops, j) for j in range(len(ops)))
    best = None
    splits = _SPLITS if plan.group_members else _SPLITS[:9]
    for k, wres in ([(1, False)] + ([(k, w) for k in splits for w in (False, True)] if can_split else [])):
        # For this k the largest band that fits moves least (fewer weight and halo re-reads); the
        # scratch grows with the band, so bisect over the candidates (largest first). wres: the split
        # ops keep every group's weight tile for the whole chain (read once, fewer rows per band).
        lo, hi, got = 0, len(cands), None
        while lo < hi:
            mid = (lo + hi) // 2
            members = _fit(plan, idxs, ops, cands[mid], k, avail, payload_len, OpPlan, wres)
            if members is not None:
                hi, got = mid, members
            else:
                lo = mid + 1
        if got is None:
            continue
        if probe:
            return got
        cost = (sum(m.read + m.written for m in got), sum(m.tiles for m in got))
        if best is None or cost < best[0]:
            best = (cost, got)
    return best[1] if best else None


def _fit(plan, idxs, ops, r, k, avail, payload_len, OpPlan, wres=False):
    """Members for bands of r rows and split k within `avail`, or None. Members outside split pairs
    keep all their weights in SRAM for the whole chain if they can; where that does not fit, the
    largest weight tiles are cut into channel groups (read again for every band) until it does."""
    members = _members(plan, idxs, ops, r, k, payload_len, OpPlan, None, wres)
    excess = sum(m.scratch for m in members) - avail
    if excess <= 0:
        return members
    if not plan.group_members:
        return None
    groups = {}
    whole = [j for j, m in enumerate(members) if m.op.kind in _WEIGHTED and m.split is None and m.n_groups == 1]
    for j in sorted(whole, key=lambda j: -payload_len(ops[j], len(ops[j].mult))):
        op = ops[j]
        cout = len(op.mult)
        full = _al(payload_len(op, cout))
        target = full - excess
        # a depthwise convolution's groups hold whole input channels: multiples of its depth multiplier
        unit = op.geom.get("dm", 1) if op.kind == D.OP_DWCONV else 1
        g = max(unit, min(cout, (target - 8) // (op.filt[0].size + 12)) // unit * unit)
        while g > unit and _al(payload_len(op, g)) > target:
            g -= unit
        m = cout // unit
        g = -(-m // -(-m // (g // unit))) * unit     # the same number of groups, evenly sized
        if g >= cout:
            continue
        groups[j] = g
        excess -= full - _al(payload_len(op, g))
        if excess <= 0:
            break
    if excess > 0:
        return None
    members = _members(plan, idxs, ops, r, k, payload_len, OpPlan, groups, wres)
    return members if sum(m.scratch for m in members) <= avail else None


def _members(plan, idxs, ops, r, k, payload_len, OpPlan, groups=None, wres=False):
    L = plan.L
    last_out = L.tensors[ops[-1].out]
    out_res = plan.kind.get(last_out.base) == F.T_ARENA
    chain_t = {op.out for op in ops[:-1]}
    bands = bands_of(plan, idxs, r)
    nb = len(bands)
    split = set()
    if k > 1:
        for j in range(len(ops)):
            if _splittable(ops, j) and j not in split and j - 1 not in split:
                split.add(j)
    members = []
    for j, op in enumerate(ops):
        need = []
        rd = 0
        per = {}
        in_split = j in split or j - 1 in split
        cout = len(op.mult) if op.kind in _WEIGHTED else L.tensors[op.out].c
        if in_split:
            g = -(-cout // k)
            pair = ops[j + 1 if j in split else j]
            if pair.kind == D.OP_MEAN or (pair is ops[-1] and not out_res):
                while cout % g:     # the MEAN sums whole groups: its narrow input has no partial last one;
                    g -= 1          # a spilled depthwise output is written in units of whole groups
        else:
            g = (groups or {}).get(j, cout)
        ng = -(-cout // g)
        for kk, t in enumerate(op.ins):
            if t in chain_t:
                continue
            base = L.tensors[L.tensors[t].base]
            if plan.kind.get(base.id) == F.T_ARENA:
                continue
            mx = 0
            rd0 = rd
            pa = pz = 0
            for rng in bands:
                if rng[j][1] <= rng[j][0]:
                    continue                # op j does not run in this band
                a, b = S.in_rows(op.kind, op.p, op.geom.get("pad_t", 0), L.tensors[t].h, *rng[j])
                ra, rz = S.cover(L.tensors[t].row_bytes, base.row_bytes, a, b)
                mx = max(mx, (rz - ra) * base.row_bytes)
                # once per band, groups too; rows the previous band left in the buffer are kept
                rd += (rz - S.fresh(pa, pz, ra, rz)) * (base.row_bytes + F.TAG_LEN)
                pa, pz = ra, rz
            need.append(("in%d" % kk, mx))
            per[base.id] = per.get(base.id, 0) + rd - rd0
        t = L.tensors[op.out]
        opl = OpPlan(op)
        live = sum(1 for rng in bands if rng[j][1] > rng[j][0])     # bands in which op j runs
        if op.kind in _WEIGHTED and wres and in_split and ng > 1:
            # every group's tile, loaded when the chain starts and kept (device/ops.py run_chain)
            sizes = [payload_len(op, min(g, cout - c0)) for c0 in range(0, cout, g)]
            need.append(("w", sum(_al(n) for n in sizes)))
            rd += sum(sizes) + ng * F.TILE_SIZE
            opl.wres = True
        elif op.kind in _WEIGHTED:
            need.append(("w", payload_len(op, g)))
            wtotal = sum(payload_len(op, min(g, cout - c0)) for c0 in range(0, cout, g))
            # The device loads every member's first tile when the chain starts; a member with several
            # groups then loads each group again in every band it runs in (device/ops.py run_chain).
            rd += payload_len(op, g) + F.TILE_SIZE
            if ng > 1:
                rd += live * (wtotal + ng * F.TILE_SIZE)
        width = g if j in split else t.c          # a split convolution's buffer holds one group
        if j < len(ops) - 1:
            need.append(("chain", max(rng[j][1] - rng[j][0] for rng in bands) * t.w * width))
        elif op.kind == D.OP_MEAN:
            if not out_res:
                need.append(("out", t.row_bytes))
            need.append(("acc", 4 * t.c))
        elif not out_res:
            if j - 1 in split and t.base == t.id and plan.kind.get(t.id) == F.T_SPILL and chunked(t, g):
                opl.chunk = g       # written group by group: the band buffer holds one group
                need.append(("out", r * t.w * g))
            else:
                need.append(("out", r * t.row_bytes))
        if j in split:
            opl.p = list(op.p)
            opl.p[D.P_OUT_C] = g
            opl.split = "out"
        elif j - 1 in split:
            if op.kind != D.OP_MEAN:        # a MEAN takes the group's width as a kernel argument
                opl.p = list(op.p)
                opl.p[D.P_IN_C] = g
                if opl.chunk:
                    opl.p[D.P_OUT_C] = g
            opl.split = "in"
        opl.need = need
        opl.in_reads = per
        opl.scratch = sum(_al(s_) for _, s_ in need)
        opl.band_rows, opl.n_bands = r, nb
        opl.group, opl.n_groups = g, ng
        opl.read = rd
        opl.written = t.h * spill_row(t, opl.chunk) if j == len(ops) - 1 and not out_res else 0
        opl.tiles = live * ng
        opl.macs = sum((rng[j][1] - rng[j][0]) for rng in bands) * _row_macs(op, L)
        opl.chained = j < len(ops) - 1
        members.append(opl)
    return members
