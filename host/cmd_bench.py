"""`tileswap bench`: the command table entry (the work is in host/bench.py)."""

import os
import sys

from .bench import BUDGETS, SECTIONS, bench


def cmd_bench(a):
    from .cli import parse_size
    budgets = [parse_size(b) for b in a.budgets.split(",")] if a.budgets else BUDGETS
    models = a.models.split(",")
    os.makedirs(os.path.dirname(os.path.abspath(a.output)) or ".", exist_ok=True)
    res = bench(sections=[x for x in a.sections.split(",") if x], models=models, budgets=budgets, md_path=a.output,
                json_path=os.path.splitext(a.output)[0] + ".json", cache_dir=a.cache,
                log=lambda s: sys.stderr.write("bench: %s\n" % s))
    print("wrote %s and %s" % (a.output, os.path.splitext(a.output)[0] + ".json"))
    bad = [r for r in res.get("zoo", []) if r.get("compiled") and not r["bit_exact"]]
    return 1 if bad else 0


def args_bench(p):
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help="comma-separated subset of: %s (default: all; empty: only rewrite the report from the "
                   "JSON beside it)" % ", ".join(SECTIONS))
    p.add_argument("--models", default="digits,mobilenet_v1,mobilenet_v2,squeezenet,efficientnet_lite0,tiny_yolov2,resnet50",
                   help="zoo models for the zoo section (digits is the bundled example)")
    p.add_argument("--budgets", help="comma-separated SRAM budgets (default 16K,32K,64K,128K,256K)")
    p.add_argument("-o", "--output", default="docs/benchmarks.md", help="Markdown report (JSON beside it)")
    p.add_argument("--cache", default="out/zoo", help="where built zoo models are kept between runs")


COMMANDS = {"bench": (cmd_bench, args_bench, "measure speed, memory and IO against TFLite / TFLite Micro; "
                      "writes docs/benchmarks.md")}
