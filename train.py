"""Train a Noise2Score score network on a folder of noisy images.

    python train.py fit --config configs/gaussian25-gray.yaml
    python train.py fit --config configs/gaussian25-gray.yaml --ckpt_path last   # resume

Subcommands: fit, validate, test, predict (LightningCLI). Make the noisy folder first:
    noise2score make-noisy ../shared/datasets/train400 data/noisy/train400-gaussian25 \
        --noise gaussian --level 25 --seed 0
"""

import sys

from noise2score.training import run

if __name__ == "__main__":
    sys.exit(run())
