#!/usr/bin/env python3
"""Baseline for `vecdream bench unet`: the same UNet in PyTorch diffusers, timed the same way.

Builds diffusers' UNet2DConditionModel with the SD 1.5 or SD 2.1-base config and random weights,
then times (a) a no-grad forward of a batch-2 64x64 latent and (b) a LoRA (rank 4 on to_q/k/v/out,
fp32 LoRA weights on an fp16 model, as SVGDreamer trains phi) forward + backward of mean(out^2).
fp16 on CUDA, fp32 on the CPU; 3 warm-ups on CUDA (1 on CPU), then the mean of --iters runs.
Peak GPU memory is sampled from nvidia-smi every 10 ms, exactly as vecdream's probe does.

Needs torch, diffusers and peft. Usage:
    python3 scripts/bench_unet_diffusers.py --config sd15|sd21 [--iters 20] [--latent 64]
"""

import argparse
import subprocess
import threading
import time

import torch
from diffusers import UNet2DConditionModel


def unet_config(name):
    base = dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    if name == "sd21":
        base.update(
            cross_attention_dim=1024,
            attention_head_dim=(5, 10, 20, 20),
            use_linear_projection=True,
        )
    return base


class GpuMemoryProbe:
    """Peak used memory of one GPU from nvidia-smi samples (MiB)."""

    def __init__(self, index):
        self.peak = 0
        self.proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
             "-lms", "10", "-i", str(index)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.peak = max(self.peak, int(line.strip()))
            except ValueError:
                pass

    def finish(self):
        time.sleep(0.03)
        self.proc.kill()
        self.proc.wait()
        self.thread.join()
        return self.peak


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=["sd15", "sd21"], default="sd15")
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--lora-rank", type=int, default=4)
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    warmups = 3 if device.type == "cuda" else 1
    probe = GpuMemoryProbe(device.index or 0) if device.type == "cuda" else None

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config(args.config)).to(device, dtype)
    unet.requires_grad_(False)
    params = sum(p.numel() for p in unet.parameters())
    cross = unet.config.cross_attention_dim
    xs = torch.randn(args.batch, 4, args.latent, args.latent, device=device, dtype=dtype)
    t = torch.full((args.batch,), 500, device=device, dtype=torch.long)
    ehs = torch.randn(args.batch, 77, cross, device=device, dtype=dtype)

    with torch.no_grad():
        for _ in range(warmups):
            unet(xs, t, ehs).sample
        sync(device)
        start = time.perf_counter()
        for _ in range(args.iters):
            out = unet(xs, t, ehs).sample
        sync(device)
        forward_ms = (time.perf_counter() - start) * 1000 / args.iters
    finite = bool(torch.isfinite(out).all())

    lora_ms = None
    if args.lora_rank > 0:
        from peft import LoraConfig

        unet.add_adapter(LoraConfig(
            r=args.lora_rank, lora_alpha=args.lora_rank, init_lora_weights="gaussian",
            target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        for p in unet.parameters():
            if p.requires_grad:
                p.data = p.data.float()

        def step():
            out = unet(xs, t, ehs).sample
            out.float().square().mean().backward()

        for _ in range(warmups):
            step()
        sync(device)
        start = time.perf_counter()
        for _ in range(args.iters):
            step()
        sync(device)
        lora_ms = (time.perf_counter() - start) * 1000 / args.iters

    peak = probe.finish() if probe else None
    print(f"diffusers unet {args.config}: {params / 1e6:.1f} M parameters, batch {args.batch} x "
          f"{args.latent}^2, {device} {dtype}")
    print(f"forward:               {forward_ms:10.1f} ms")
    if lora_ms is not None:
        print(f"LoRA forward+backward: {lora_ms:10.1f} ms (rank {args.lora_rank})")
    if peak is not None:
        print(f"peak GPU memory:       {peak:10} MiB (nvidia-smi, weights included)")
    if not finite:
        print("warning: non-finite outputs")


if __name__ == "__main__":
    main()
