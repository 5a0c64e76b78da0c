#!/usr/bin/env python3
"""Replays a dfv step trace (`dfv-trainer train JOB --trace FILE`,
worker/train/step_trace.h) with the Python reference of its model.

  replay.py check TRACE [--rtol R] [--atol A]
      Loads dfv's initial weights into the reference's networks (strictly:
      every name and shape must match), runs the traced steps on the traced
      batches with dfv's per-step noise, on one thread (deterministic CPU
      kernels), with dfv's transposed-convolution kernels (oneDNN's,
      worker/models/conv_transpose.h: equal to the plain layer's to float
      rounding, which a GAN's updates would amplify over 20 steps), and
      compares every metric of every step with dfv's. Prints
      the largest differences; exits 1 when any value is off by more than
      atol + rtol * |dfv's value| (or the metric names differ).

  replay.py time TRACE --steps N --threads T [--window W] [--total-steps N]
      Trains N steps from the same weights on the traced batches (cycled) at
      T intra-op threads, as the reference's scripts are written (plain
      nn.ConvTranspose2d layers), and prints one JSON line: the median samples/s over
      windows of W steps, the first window (warm-up) left out, as dfv's
      metrics.csv reports samples_per_second. --total-steps: the run length
      a model schedules by (lord's stage boundary), the dfv run's max_steps.

  replay.py profile TRACE --steps N [--threads T] [--top K] [--as-dfv]
      Where a step's time goes, by ATen operator: N steps as `time` runs
      them (after 3 warm-up steps) under torch.profiler, and the K operators
      (with their input shapes) of most self time per step, with each one's
      calls per step and share. The kernels are the ones dfv-trainer calls
      (the same LibTorch), without Python's overhead. --as-dfv: each update
      back-propagates only into its optimiser's parameters, as dfv's
      StepContext::Update does, and transposed convolutions run on dfv's
      kernels (the reference's plain backward and layers otherwise).

Needs Debian's python3-torch (LibTorch 1.13, the library dfv links) and
python3-yaml.
"""
import argparse
import importlib
import json
import os
import statistics
import sys
import time

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402

MODELS = ("vae", "dcgan", "mathieu", "cycle_vae", "lord")


def load_trace(path):
    trace = torch.load(path)
    if trace.get("format") != "dfv-step-trace-1":
        sys.exit(f"{path}: not a dfv step trace (format {trace.get('format')!r})")
    return trace


def build(trace, total_steps=None, dfv_kernels=False):
    """The reference model of the trace's job, holding dfv's initial state;
    with dfv_kernels, its transposed convolutions run as dfv's do."""
    job = yaml.safe_load(trace["job_yaml"])
    if job["model"] not in MODELS:
        sys.exit(f"no Python reference for model {job['model']!r} (have {', '.join(MODELS)})")
    module = importlib.import_module(job["model"])
    kwargs = {"num_classes": trace["num_classes"]} if job["model"] == "lord" else {}
    model = module.Reference(job, trace["train_size"], total_steps or trace["total_steps"], **kwargs)
    state = trace["state"]
    for name, net in model.modules().items():
        net.load_state_dict(state[name], strict=True)
        net.train()
        if dfv_kernels:
            nets.transposed_convolutions_as_dfv(net)
    if hasattr(model, "load_extra"):
        model.load_extra(state)
    networks = set(model.modules())
    extra = set(state) - networks
    if extra - {"state"}:
        sys.exit(f"dfv's {job['model']} has modules the reference does not build: {sorted(extra - {'state'})}")
    return job, model


def check(args):
    torch.set_num_threads(1)
    trace = load_trace(args.trace)
    # dfv's transposed-convolution kernels: the check is of the networks and
    # the step; that the kernels equal the plain layer's is the C++ test's.
    job, model = build(trace, dfv_kernels=True)
    noise = nets.StepNoise()
    seed = job["train"]["seed"]
    worst = {}
    failures = []
    for entry in trace["steps"]:
        noise.begin(entry["step"], seed)
        ours = model.train_step(entry["batch"], noise)
        theirs = entry["metrics"]
        if set(ours) != set(theirs):
            failures.append(f"step {entry['step']}: metrics {sorted(ours)} != dfv's {sorted(theirs)}")
            continue
        for name, value in theirs.items():
            diff = abs(ours[name] - value)
            if diff > worst.get(name, (-1.0,))[0]:
                worst[name] = (diff, entry["step"], value, ours[name])
            if diff > args.atol + args.rtol * abs(value):
                failures.append(f"step {entry['step']} {name}: dfv {value!r}, Python {ours[name]!r}")
    steps = len(trace["steps"])
    print(f"{job['model']}: {steps} steps replayed; largest |Python - dfv| per metric:")
    for name, (diff, step, value, ours) in sorted(worst.items()):
        print(f"  {name:16s} {diff:.3g} (step {step}: dfv {value:.9g}, Python {ours:.9g})")
    if failures or steps == 0:
        print(f"{job['model']}: MISMATCH (tolerance {args.atol} + {args.rtol} x |dfv|):", file=sys.stderr)
        for line in failures[:20] or ["the trace has no steps"]:
            print("  " + line, file=sys.stderr)
        return 1
    print(f"{job['model']}: agrees with dfv within {args.atol} + {args.rtol} x |dfv| on every metric of every step")
    return 0


def replayer(args):
    """The trace's job, and a function that trains steps [first, first +
    count) of the reference from dfv's weights on the traced batches
    (cycled), at args.threads intra-op threads."""
    torch.set_num_threads(args.threads)
    trace = load_trace(args.trace)
    job, model = build(trace, args.total_steps, dfv_kernels=getattr(args, "as_dfv", False))
    noise = nets.StepNoise()
    seed = job["train"]["seed"]
    batches = [entry["batch"] for entry in trace["steps"]]

    def run(first, count):
        for step in range(first, first + count):
            noise.begin(step, seed)
            model.train_step(batches[step % len(batches)], noise)

    return job, batches[0]["images"].size(0), run


def time_steps(args):
    job, batch_size, run = replayer(args)
    rates = []
    for first in range(0, args.steps - args.steps % args.window, args.window):
        start = time.perf_counter()
        run(first, args.window)
        rates.append(batch_size * args.window / (time.perf_counter() - start))
    timed = rates[1:] or rates
    print(json.dumps({"model": job["model"], "threads": torch.get_num_threads(), "steps": args.steps,
                      "window": args.window, "samples_per_second": statistics.median(timed),
                      "windows": [round(r, 1) for r in rates]}))
    return 0


def update_as_dfv(loss, optimizer):
    """StepContext::Update: backward only into the optimiser's trainable
    parameters (worker/step/step_context.cc)."""
    optimizer.zero_grad(set_to_none=False)
    trained = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    loss.backward(inputs=trained or None)
    optimizer.step()


def profile_steps(args):
    from torch.profiler import ProfilerActivity, profile

    if args.as_dfv:
        nets.update = update_as_dfv
    job, _, run = replayer(args)
    warm_up = 3

    run(0, warm_up)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run(warm_up, args.steps)
    rows = prof.key_averages(group_by_input_shape=True)
    total = sum(r.self_cpu_time_total for r in rows)
    update = "backward into the optimiser's parameters (dfv)" if args.as_dfv else "plain backward"
    # Operator self time, not the wall time under the profiler (recording
    # shapes makes that several times a step's normal time).
    print(f"{job['model']}, {torch.get_num_threads()} thread(s), {update}: {args.steps} steps, "
          f"{total / 1e3 / args.steps:.1f} ms of operator self time per step")
    print(f"  {'ms/step':>8} {'share':>6} {'calls':>5}  operator  input shapes")
    for r in sorted(rows, key=lambda r: -r.self_cpu_time_total)[:args.top]:
        shapes = [s for s in r.input_shapes if s]
        print(f"  {r.self_cpu_time_total / 1e3 / args.steps:8.2f} {100 * r.self_cpu_time_total / total:5.1f}% "
              f"{r.count / args.steps:5.1f}  {r.key}  {shapes}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="replay the traced steps and compare every metric with dfv's")
    c.add_argument("trace")
    c.add_argument("--rtol", type=float, default=1e-4)
    c.add_argument("--atol", type=float, default=1e-6)
    t = sub.add_parser("time", help="samples/s of the reference from dfv's initial weights")
    t.add_argument("trace")
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--threads", type=int, required=True)
    t.add_argument("--window", type=int, default=10)
    t.add_argument("--total-steps", type=int, default=0)
    f = sub.add_parser("profile", help="the operators a step spends its time in")
    f.add_argument("trace")
    f.add_argument("--steps", type=int, default=10)
    f.add_argument("--threads", type=int, default=1)
    f.add_argument("--top", type=int, default=12)
    f.add_argument("--total-steps", type=int, default=0)
    f.add_argument("--as-dfv", action="store_true")
    args = parser.parse_args()
    return {"check": check, "time": time_steps, "profile": profile_steps}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
