"""`tileswap zoo`: build a well-known network as a full-integer int8 .tflite, locally, with random weights.

    tileswap zoo --list                       # names, input, parameters, MACs
    tileswap zoo mobilenet_v2 -o mnv2.tflite  # deterministic: the same --seed gives the same bytes

The builders live in `tiler/zoo.py`; this module only parses options, reports progress and writes the file.
"""
import json
import sys
import time

from .errors import HostError


def cmd_zoo(a):
    from ..tiler import zoo
    if a.list:
        return _list(zoo, a)
    if not a.name:
        raise HostError("give a model name (%s) and -o FILE, or --list" % ", ".join(zoo.ZOO))
    if a.name not in zoo.ZOO:
        raise HostError("unknown zoo model %r; known: %s" % (a.name, ", ".join(zoo.ZOO)))
    if not a.output:
        raise HostError("where to? add -o MODEL.tflite")
    from ..tiler.lower import SUPPORTED
    from .cli import write_atomic
    start = time.monotonic()

    def progress(step, total, label):
        sys.stderr.write("%s: [%d/%d] %s (%.0f s)\n" % (a.name, step, total, label, time.monotonic() - start))
        sys.stderr.flush()

    tflite = zoo.build(a.name, seed=a.seed, input_size=a.input_size, progress=progress)
    write_atomic(a.output, tflite)
    ops = zoo.op_counts(tflite)
    unsupported = {op: n for op, n in ops.items() if op not in SUPPORTED}
    res = dict(model=a.name, output=a.output, bytes=len(tflite), seconds=round(time.monotonic() - start, 1),
               seed=a.seed, ops=ops, unsupported_ops=unsupported)
    if a.json:
        print(json.dumps(res))
        return
    print("wrote %s: %s, %d bytes, %d ops (%s) in %.0f s" % (
        a.output, a.name, len(tflite), sum(ops.values()), _ops_text(ops), res["seconds"]))
    if unsupported:
        print("note: tileswap does not run %s yet; compile will refuse this model" % _ops_text(unsupported))


def _ops_text(ops):
    return ", ".join("%s x%d" % kv for kv in ops.items())


def _list(zoo, a):
    rows = []
    for name in zoo.ZOO:
        row = dict(name=name, description=zoo.describe(name))
        row.update(zoo.info(name, input_size=a.input_size))
        rows.append(row)
    if a.json:
        print(json.dumps(rows))
        return
    print("%-20s %-12s %12s %15s %14s  %s" % ("model", "input", "params", "MACs", "largest layer", "what"))
    for r in rows:
        print("%-20s %-12s %12s %15s %14s  %s" % (
            r["name"], "x".join(map(str, r["input_shape"][1:])), "{:,}".format(r["params"]),
            "{:,}".format(r["macs"]), "{:,}".format(r["largest_layer_weights"]), r["description"]))


def args_zoo(p):
    p.add_argument("name", nargs="?", metavar="NAME", help="model to build (see --list)")
    p.add_argument("-o", "--output", metavar="MODEL.tflite", help="where to write the model (atomically)")
    p.add_argument("--list", action="store_true", help="list the models with parameters and MACs, build nothing")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and calibration images (default 0)")
    p.add_argument("--input-size", type=int, metavar="N",
                   help="input height = width instead of the model's own (at least 64); smaller builds faster")
    p.add_argument("--json", action="store_true", help="print one JSON value instead of text")


COMMANDS = {
    "zoo": (cmd_zoo, args_zoo, "build a well-known network (MobileNet, ResNet-50, ...) as an int8 .tflite, "
            "random weights, no downloads"),
}
