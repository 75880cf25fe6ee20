"""The web demo's command (``python app.py``, ``noise2score demo``): its options, the
served models and the server's launch. The page is :mod:`noise2score.demo_ui`, the
requests :mod:`noise2score.webapp`."""

from __future__ import annotations

import argparse
import sys

from noise2score.tiling import DEFAULT_TILE


def parse_args(argv: list[str] | None = None, prog: str = "app.py") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description="Noise2Score web demo")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--weights", action="append", help="bundled name or path; repeat for a choice")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=4_000_000,
        help="largest image accepted; also the bound on work: second views are left out where "
        "the request's network passes over each pixel, times its pixels, would pass this",
    )
    parser.add_argument("--max-file-size", default="25mb", help="largest upload accepted")
    parser.add_argument(
        "--max-adapt-steps",
        type=int,
        default=None,
        help="most steps an upload may ask for fitting the network to it, over all the networks "
        "fitted: the weights' and each second view's (default 240; 0 turns it off)",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="denoise jobs run at once")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile side; bounds memory per job")
    parser.add_argument("--device", default="auto", help="auto (a CUDA GPU where there is one), cpu, cuda:N")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str = "app.py") -> int:
    args = parse_args(argv, prog)
    try:
        from noise2score.demo_ui import build_demo
    except ModuleNotFoundError as err:
        if err.name not in ("gradio", "gradio_client"):
            raise
        print(f"{prog}: error: the web demo needs Gradio: pip install 'noise2score[app]'", file=sys.stderr)
        return 2
    from noise2score.adapt import MAX_STEPS
    from noise2score.webapp import MAX_ADAPT_STEPS, DemoModels
    from noise2score.weights import bundled_names

    bound = MAX_ADAPT_STEPS if args.max_adapt_steps is None else args.max_adapt_steps
    if not 0 <= bound <= MAX_STEPS:
        print(f"{prog}: error: --max-adapt-steps must be in 0..{MAX_STEPS}", file=sys.stderr)
        return 2
    try:
        models = DemoModels(args.weights or bundled_names(), tile=args.tile, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if not models.names:
        print(f"{prog}: error: no weights bundled; pass --weights PATH", file=sys.stderr)
        return 2
    demo = build_demo(models, max_pixels=args.max_pixels, max_adapt_steps=bound)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size)
    return 0
