#!/usr/bin/env python3
"""Baseline for `vecdream bench clip`: the same CLIP image tower in PyTorch transformers, timed the
same way (random weights, frozen; fp32; one warm-up then the mean of --iters runs):
(a) a no-grad forward of `visual_projection(vision_model(x).pooler_output)`,
(b) forward + backward of mean(features^2) to the input pixels.

Prints one JSON object per config. Needs torch and transformers. Usage:
    python3 scripts/bench_clip_transformers.py --config vit-b32 vit-l14 [--iters 3] [--batch 1]
"""

import argparse
import json
import time

import torch
from transformers import CLIPConfig, CLIPModel

CONFIGS = {
    "vit-b32": dict(vision_config=dict(patch_size=32)),
    "vit-b16": dict(vision_config=dict(patch_size=16)),
    "vit-l14": dict(
        text_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12),
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                           num_attention_heads=16, patch_size=14),
        projection_dim=768,
    ),
    "vit-h14": dict(
        text_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                         num_attention_heads=16, hidden_act="gelu"),
        vision_config=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                           num_attention_heads=16, patch_size=14, hidden_act="gelu"),
        projection_dim=1024,
    ),
}


def mean_ms(iters, f, sync):
    f(); sync()
    t = time.perf_counter()
    for _ in range(iters):
        f(); sync()
    return (time.perf_counter() - t) * 1e3 / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", nargs="+", default=["vit-b32", "vit-l14"])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    for name in a.config:
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(**CONFIGS[name])).to(dev).eval().requires_grad_(False)
        s = model.config.vision_config.image_size
        x = torch.randn(a.batch, 3, s, s, device=dev)
        feats = lambda t: model.visual_projection(model.vision_model(pixel_values=t).pooler_output)

        def fwd():
            with torch.no_grad():
                feats(x)

        def fwd_bwd():
            xi = x.detach().requires_grad_(True)
            feats(xi).square().mean().backward()

        params = sum(p.numel() for n, p in model.named_parameters()
                     if n.startswith(("vision_model.", "visual_projection.")))
        print(json.dumps({"config": name, "parameters": params, "image_size": s,
                          "forward_ms": mean_ms(a.iters, fwd, sync),
                          "forward_backward_ms": mean_ms(a.iters, fwd_bwd, sync),
                          "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
