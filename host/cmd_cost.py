"""`tileswap report`: one page with the plan, its modelled costs on board profiles, and the charts.

    tileswap report model.tsi -o report.html                 # every bundled board, charts embedded
    tileswap report model.tsi -o report.md --board stm32f746 --rate 0.1

Markdown pages get their charts as PNG files beside them (REPORT.BOARD.png); HTML pages embed them,
so the page is one file. Every file is written through a temporary file and a rename.
"""

import base64
import html
import io
import os

from . import cost
from .cost_view import render, summary, years

PROG_REPORT = "report"


def _plan_rows(info):
    return [[o["index"], o["op"], "x".join(map(str, o["out_shape"])), o["output_in"], o["bands"], o["groups"],
             o["peak_sram"], o["io_read_bytes"], o["io_write_bytes"], o["macs"]] for o in info["ops"]]


def _cost_rows(info):
    return [[o["index"], o["op"], o["read_cmds"], o["write_cmds"], "%.1f" % o["compute_ms"], "%.1f" % o["crypto_ms"],
             "%.1f" % o["io_ms"], "%.1f" % o["latency_ms"], "%.1f" % o["latency_in_core_ms"], "%.2f" % o["energy_mj"]]
            for o in info["ops"]]


def build(image, name, boards, *, key=None, rate=1.0):
    """The page as a list of blocks: ("h1"|"h2"|"p"|"pre", text), ("table", head, rows), ("img", png, alt)."""
    from .inspect import plan_info
    base = plan_info(image, key)
    page = [("h1", "tileswap report: %s" % name),
            ("p", "Plan: SRAM budget %d B (peak %d B, smallest budget %s B); weights %d B; per inference %d B read "
                  "and %d B written (%s the minimum for this model), %d MACs, %d tiles; card %d B (image %d B)."
             % (base["sram_budget"], base["peak_sram"], base.get("min_sram", "?"), base["weight_bytes"],
                base["io_read_bytes"], base["io_write_bytes"],
                "%.2fx" % base["io_amplification"] if base.get("io_amplification") else "unknown multiple of",
                base["macs"], base["tiles"], base["card_bytes"], base["image_bytes"])),
            ("p", "Times, energies and card lifetimes below are modelled from the plan and a board profile "
                  "(equations and assumptions: docs/cost.md); profile figures marked as estimates are not "
                  "datasheet or measured values. Rate: %g inference(s) per minute." % rate)]
    costed = [(b, cost.extend_plan(plan_info(image, key), b, image=image)) for b in boards]
    rows = []
    for b, info in costed:
        mw, life = cost.average_power_mw(info, rate), cost.lifetime_years(info, rate)
        rows.append([b["name"], "%.0f" % info["latency_ms"], "%.0f" % info["latency_serial_ms"],
                     "%.0f" % info["latency_in_core_ms"], "%.2fx" % (info["slowdown"] or 0), "%.1f" % info["energy_mj"],
                     "%.1f / %.1f" % (info["energy_compute_mj"], info["energy_io_mj"]), "%.2f" % mw, years(life),
                     "; ".join(info["warnings"]) or "-"])
    page.append(("h2", "Boards compared"))
    page.append(("table", ["board", "latency ms (overlap)", "no overlap", "in-core", "slowdown", "energy mJ",
                           "compute / IO mJ", "avg mW", "card life", "warnings"], rows))
    for b, info in costed:
        buf = io.BytesIO()
        render(info, buf)
        page += [("h2", b["name"] + ": " + info["board_title"]), ("pre", "\n".join(summary(info))),
                 ("img", buf.getvalue(), "per-layer SRAM, bytes moved and modelled time on " + b["name"]),
                 ("table", ["#", "op", "read cmds", "write cmds", "compute ms", "crypto ms", "card IO ms",
                            "latency ms", "in-core ms", "energy mJ"], _cost_rows(info)),
                 ("p", "Profile %s (%s):" % (b["name"], b.get("board", ""))),
                 ("table", ["figure", "value", "unit", "estimate", "source"],
                  [[k, "%g" % val, unit, "yes" if est else "no", src] for k, val, unit, est, src in cost.figures(b)])]
    page += [("h2", "Plan"), ("table", ["#", "op", "output", "output in", "bands", "groups", "peak SRAM", "read B",
                                         "written B", "MACs"], _plan_rows(base))]
    return page


def to_markdown(page, img_name):
    """(markdown text, [(file name, png bytes)]); img_name(i) names the i-th image file."""
    out, files = [], []
    for blk in page:
        kind = blk[0]
        if kind == "h1":
            out.append("# " + blk[1])
        elif kind == "h2":
            out.append("## " + blk[1])
        elif kind == "p":
            out.append(blk[1])
        elif kind == "pre":
            out.append("```\n" + blk[1] + "\n```")
        elif kind == "img":
            fn = img_name(len(files))
            files.append((fn, blk[1]))
            out.append("![%s](%s)" % (blk[2], fn))
        else:
            cell = lambda c: str(c).replace("|", "\\|")
            lines = ["| " + " | ".join(map(cell, blk[1])) + " |", "|" + "---|" * len(blk[1])]
            lines += ["| " + " | ".join(map(cell, r)) + " |" for r in blk[2]]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n", files


def to_html(page):
    e = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>%s</title><style>body{font-family:sans-serif;"
           "max-width:1400px;margin:auto}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
           "padding:2px 6px;text-align:right}td:nth-child(2),th{text-align:left}img{max-width:100%%}</style></head>"
           "<body>" % e(page[0][1])]
    for blk in page:
        kind = blk[0]
        if kind in ("h1", "h2", "p"):
            out.append("<%s>%s</%s>" % (kind, e(blk[1]), kind))
        elif kind == "pre":
            out.append("<pre>%s</pre>" % e(blk[1]))
        elif kind == "img":
            out.append("<img alt='%s' src='data:image/png;base64,%s'>" % (e(blk[2]), base64.b64encode(blk[1]).decode()))
        else:
            out.append("<table><tr>%s</tr>%s</table>" % ("".join("<th>%s</th>" % e(str(h)) for h in blk[1]), "".join(
                "<tr>%s</tr>" % "".join("<td>%s</td>" % e(str(c)) for c in r) for r in blk[2])))
    return "\n".join(out) + "</body></html>\n"


def cmd_report(a):
    from .cli import read_file, write_atomic
    from .errors import HostError
    from .keys import load_key
    if a.rate <= 0:
        raise HostError("--rate must be positive (inferences per minute), got %g" % a.rate)
    boards = [cost.load_board(n) for n in (a.board or cost.boards())]
    image = read_file(a.image, "image")
    page = build(image, os.path.basename(a.image), boards, key=load_key(a.key, required=False), rate=a.rate)
    if a.output.lower().endswith((".html", ".htm")):
        write_atomic(a.output, to_html(page).encode())
        print("wrote %s (%d board(s), charts embedded)" % (a.output, len(boards)))
        return
    stem = os.path.splitext(a.output)[0]
    names = [stem + "." + b["name"] + ".png" for b in boards]
    text, files = to_markdown(page, lambda i: os.path.basename(names[i]))
    for fn, png in files:
        write_atomic(os.path.join(os.path.dirname(os.path.abspath(a.output)), fn), png)
    write_atomic(a.output, text.encode())
    print("wrote %s and %d chart(s) beside it" % (a.output, len(files)))


def args_report(p):
    p.add_argument("image", metavar="IMAGE.tsi")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.md|REPORT.html",
                   help="the page to write: Markdown (charts as PNG files beside it) or HTML (charts embedded)")
    p.add_argument("--board", action="append", metavar="NAME",
                   help="board profile name or NAME.json file (repeatable; default: every bundled board: %s)"
                   % ", ".join(cost.boards()))
    p.add_argument("--rate", type=float, default=1.0, metavar="N",
                   help="inferences per minute, for the average power and the card lifetime (default 1)")
    p.add_argument("--key", metavar="KEYFILE", help="master key: authenticate the image first (optional)")


COMMANDS = {
    PROG_REPORT: (cmd_report, args_report, "write one Markdown or HTML page: the plan, its modelled latency, "
                  "energy and card wear on board profiles, and per-layer charts"),
}
