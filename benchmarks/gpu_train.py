"""Train several configs side by side on one GPU within a wall-clock budget.

    python benchmarks/gpu_train.py --budget 450 --out OUTDIR configs/gpu5/*.yaml

0. Makes the noisy-only folders the configs name and this machine lacks.
1. Measures training steps/s of the score network with one process per config
   sharing the GPU (synthetic batches of each config's shape, a few seconds each).
2. Starts every config's ``train.py fit`` with the same max_steps, picked so that all
   end within the budget; sigma_a ramps over the first half, four validations; the
   trainer's max_time is a safety net.
3. Packs each run's folder (last checkpoint, logs, config) into OUTDIR/NAME.tar.gz.

The steps it picked are printed and go into each run's saved config.yaml: copy them
into the config so that ``python train.py fit --config CONFIG`` repeats the run. A
killed run resumes with the same command plus ``--ckpt_path last``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from noise2score.noisy_copy import make_named_folder, named_folders

START_ALLOWANCE = 35.0  # s: imports, data loading and worker start of train.py
PACK_ALLOWANCE = 40.0  # s: packing the results (again, slimmer, if too large)
RETURN_LIMIT = 60 * 2**20  # bytes: what comes back through $OUT, with a margin
SAFETY = 0.75  # the measurement has no data loading, logging or validation: the third
# session's runs went at 0.79-0.83 of it (0.8 left them 100 steps short of max_steps)


def measure(channels: int, batch: int, patch: int, seconds: float) -> None:
    """Print the steps/s of plain AR-DAE training steps on synthetic data."""
    import torch

    from noise2score.networks import build_network
    from noise2score.score_loss import ardae_loss
    from noise2score.training import full_fp32

    full_fp32()
    torch.backends.cudnn.benchmark = True
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: to try this script
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    net = build_network("n2n_unet", channels).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    y = torch.rand(batch, channels, patch, patch, device=device)
    steps, start, warm = 0, time.perf_counter(), False
    deadline = start + seconds
    while time.perf_counter() < deadline or steps < 3:
        loss = ardae_loss(net, y, torch.tensor(0.01, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps == 3 and not warm:  # time from here: cudnn's algorithm search is over
            sync()
            start, steps, warm = time.perf_counter(), 0, True
    sync()
    print(steps / (time.perf_counter() - start), flush=True)


def passes_per_step(config: dict) -> int:
    """Network passes in one training step: a per-channel network sees each channel of
    each crop (its input, one channel and its context, costs about what a plain colour
    network's does)."""
    batch = config["data"].get("batch_size", 16)
    return batch * config["data"].get("channels", 1) if config["model"].get("per_channel") else batch


def shared_speed(configs: list[dict], seconds: float) -> float:
    """Slowest steps/s among all configs measured at once (they will share the GPU)."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--measure",
                str(c["data"].get("channels", 1)),
                str(passes_per_step(c)),
                str(c["data"].get("patch_size", 64)),
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for c in configs
    ]
    outputs = [p.communicate()[0].split() for p in procs]
    if any(p.returncode or not out for p, out in zip(procs, outputs, strict=True)):
        raise RuntimeError("the speed measurement failed (its error is above)")
    rates = [float(out[-1]) for out in outputs]
    print(f"steps/s, all sharing the GPU: {[round(r, 1) for r in rates]}", flush=True)
    return min(rates)


def _make_one(folder: str, clean_root: str) -> str:
    import torch

    # one folder per process; with all threads in each, six CBSD432 copies took 3.7 min there
    torch.set_num_threads(1)
    make_named_folder(folder, clean_root)
    return folder


def make_missing_noisy_folders(configs: list[dict], clean_root: str) -> None:
    """The configs' missing data/noisy/<set>-<family><level> folders, made side by side
    with ``make-noisy``'s defaults (seed 0): the same files as on any other machine."""
    missing = sorted(f for f in named_folders(configs) if not Path(f).is_dir())
    with ProcessPoolExecutor() as pool:
        for folder in pool.map(_make_one, missing, [clean_root] * len(missing)):
            print(f"made {folder}", flush=True)


def pack(root: Path, out: Path) -> None:
    """A run's folder (logs, config, last.ckpt; best-*.ckpt left out) as OUT/NAME.tar.gz."""
    with tarfile.open(out / f"{root.name}.tar.gz", "w:gz") as tar:
        tar.add(root, arcname=root.name, filter=lambda m: None if "/best-" in m.name else m)


def slim_checkpoints(root: Path) -> None:
    """Drop Adam's moments from the run's last.ckpt: the network and its EMA stay (what
    ``noise2score export`` and a warm start read); ``--ckpt_path`` can no longer resume it."""
    import torch

    for ckpt in root.glob("checkpoints/last*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state["optimizer_states"] = []
        torch.save(state, ckpt)


def hms(seconds: float) -> str:
    s = max(60, int(seconds))
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds, this script's whole run")
    parser.add_argument("--out", default="results/gpu")
    parser.add_argument("--measure-seconds", type=float, default=12.0)
    parser.add_argument("--steps", type=int, help="skip the measurement and train this many steps")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train.py arguments")
    parser.add_argument("--clean-root", default="../shared/datasets", help="for missing noisy copies")
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        channels, batch, patch, seconds = args.measure
        measure(int(channels), int(batch), int(patch), float(seconds))
        return 0

    t0 = time.monotonic()
    configs = [yaml.safe_load(Path(c).read_text()) for c in args.configs]
    make_missing_noisy_folders(configs, args.clean_root)
    steps = args.steps
    if steps is None:
        rate = shared_speed(configs, args.measure_seconds)
        left = args.budget - (time.monotonic() - t0) - START_ALLOWANCE - PACK_ALLOWANCE
        steps = int(rate * left * SAFETY) // 100 * 100
    if steps < 100:
        print(f"gpu_train: too little time for training ({steps} steps)", file=sys.stderr)
        return 1
    # The trainer's clock starts after train.py's start-up, hence the allowance here too.
    max_time = hms(args.budget - (time.monotonic() - t0) - START_ALLOWANCE - PACK_ALLOWANCE)
    print(f"max_steps {steps}, sigma_a_steps {steps // 2}, val every {steps // 4}, max_time {max_time}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for path, config in zip(args.configs, configs, strict=True):
        root = Path(config["trainer"]["default_root_dir"])
        root.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "train.py", "fit", "--config", path, "--ckpt_path", "last",
            "--trainer.max_steps", str(steps), "--model.sigma_a_steps", str(steps // 2),
            "--trainer.val_check_interval", str(steps // 4), "--trainer.max_time", max_time,
            *args.extra,
        ]  # fmt: skip
        log = open(root / "train.log", "a")  # noqa: SIM115 (closed after the run)
        runs.append((root, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
        print(" ".join(command[1:]), flush=True)

    failed = 0
    for root, proc, log in runs:
        wait = max(1.0, args.budget - (time.monotonic() - t0) - PACK_ALLOWANCE / 2)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the last periodic checkpoint stays
            proc.wait(timeout=10)
        log.close()
        failed += proc.returncode != 0
        tail = (root / "train.log").read_text(errors="replace").splitlines()[-3:]
        print(f"{root.name}: exit {proc.returncode}; " + " | ".join(tail), flush=True)
        pack(root, out)
    packed = sum(f.stat().st_size for f in out.glob("*.tar.gz"))
    if packed > RETURN_LIMIT:  # the device tool returns 64 MiB at most: keep every run
        print(f"packed {packed / 2**20:.1f} MiB: dropping the optimizer states", flush=True)
        for root, _, _ in runs:
            slim_checkpoints(root)
            pack(root, out)
    print(f"packed in {time.monotonic() - t0:.0f} s of {args.budget:.0f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
