"""Training throughput of the score network on this machine, fp32 vs bf16 autocast.

python benchmarks/train_speed.py --threads 2 --out results/train_speed.json
"""

import argparse
import json
import time

import torch

from noise2score.model_card import machine_facts
from noise2score.networks import build_network
from noise2score.score_loss import ardae_loss


def samples_per_second(batch: int, patch: int, bf16: bool, steps: int = 6) -> float:
    net = build_network("n2n_unet", 1).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    y = torch.rand(batch, 1, patch, patch)
    for i in range(steps + 2):
        if i == 2:  # two warm-up steps
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = ardae_loss(net, y, torch.tensor(0.01))
        opt.zero_grad()
        loss.float().backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = machine_facts()
    rows = [
        {
            "batch": b,
            "patch": p,
            "bf16": bf16,
            "threads": args.threads,
            "cpu": cpu["cpu"],
            "cpu_capability": cpu["cpu_capability"],  # bf16 is fast only with native support
            "samples_per_s": round(samples_per_second(b, p, bf16), 2),
        }
        for b, p in [(8, 128), (16, 64)]
        for bf16 in (False, True)
    ]
    for row in rows:
        print(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
