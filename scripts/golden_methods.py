# Golden gradients of ASD, TSM and CDS on the tiny SD 1.5 fixture, computed with diffusers' UNet,
# CLIP text encoder and DDIM scheduler, for `gpu/tests/distill_methods.rs`.
#
# usage: python scripts/golden_methods.py [FIXTURE_DIR] [OUT]
#   (defaults: tests/fixtures/tiny-sd15, tests/fixtures/methods-golden.safetensors)
#
# Every formula is written out here independently of the Rust code; the update rules come from
# the papers' official code (see the docs of `SdMethod::{Asd, Tsm, Cds}` in
# gpu/src/distill/sd_guidance.rs):
#   ASD (ScaleDreamer):  grad = (1 - a_t) (eps_cfg(x_t, t) - eps_c(x_t+, t+)),  t+ = t + floor(u eta (t - t_min))
#   TSM (Dreamer XL):    x_s by unconditional DDIM inversion, x_t = DDIM(x_s, s -> t), x_mu = DDIM(x_s, s -> mu),
#                        grad = sqrt((1 - a_t) / a_t) (eps_cfg(x_t, t) - eps_u(x_mu, mu))
#   CDS (Consistent3D):  x_t' = noised with the fixed noise at t' = t + g + floor(u p),
#                        x_t = DDIM(x_t', eps_cfg(x_t', t'), t' -> t), grad = (1 - a_t') (eps_cfg(x_t', t') - eps_cfg(x_t, t))
# The inputs (latents, noise, timesteps, draws u, knobs) are stored next to the gradients so the
# Rust test uses exactly the same numbers.
import json
import math
import sys

import torch
from safetensors.torch import load_file, save_file
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

fixture = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tiny-sd15"
out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/methods-golden.safetensors"

unet = UNet2DConditionModel.from_pretrained(fixture, subfolder="unet").eval()
text_encoder = CLIPTextModel.from_pretrained(fixture, subfolder="text_encoder").eval()
tokenizer = CLIPTokenizer.from_pretrained(fixture, subfolder="tokenizer")
sched = DDIMScheduler.from_pretrained(fixture, subfolder="scheduler")
assert sched.config.prediction_type == "epsilon"
T = sched.config.num_train_timesteps
abar = sched.alphas_cumprod  # float32, as diffusers computes it

PROMPT, NEGATIVE, CFG = "a photo of a cat", "", 7.5
T_MIN = 20
ASD = dict(ratio=0.1, random=True, t=[320, 650], u=[0.37, 0.81])
TSM = dict(delta=80, xs_delta=200, xs_steps=5, gamma=0.3, t=[260, 430])
CDS = dict(gap=100, perturb=200, t=[150, 400], u=[0.5, 0.3])

ids = tokenizer([PROMPT, NEGATIVE], padding="max_length", max_length=77, truncation=True,
                return_tensors="pt").input_ids
torch.manual_seed(1234)
with torch.no_grad():
    text = text_encoder(ids).last_hidden_state  # rows: cond, uncond
latents = load_file(f"{fixture}/golden.safetensors")["sds.latents"]  # VAE means x 0.18215, (2, 4, 16, 16)
noise = torch.randn_like(latents)


def tvec(ts):
    return torch.tensor(ts, dtype=torch.long)


@torch.no_grad()
def eps_cfg(x, t):
    """eps_u + s (eps_c - eps_u), cond and uncond in one batch like the Rust code."""
    b = x.shape[0]
    ehs = torch.cat([text[:1].expand(b, -1, -1), text[1:].expand(b, -1, -1)])
    e = unet(torch.cat([x, x]), torch.cat([t, t]), ehs).sample
    e_c, e_u = e.chunk(2)
    return e_u + (e_c - e_u) * CFG


@torch.no_grad()
def eps_branch(x, t, row):
    """One text branch alone (row 0: prompt, 1: negative prompt)."""
    return unet(x, t, text[row:row + 1].expand(x.shape[0], -1, -1)).sample


def ddim_transfer(eps, x, t_from, t_to):
    """Deterministic DDIM (eta = 0) from t_from to t_to (t_to > t_from: inversion)."""
    a_f, a_t = float(abar[t_from]), float(abar[t_to])
    x0 = (x - eps * math.sqrt(1 - a_f)) / math.sqrt(a_f)
    return x0 * math.sqrt(a_t) + eps * math.sqrt(1 - a_t)


def w_sds(t):
    return (1 - abar[t]).view(-1, 1, 1, 1)


g = {"latents": latents, "noise": noise, "cfg": torch.tensor([CFG], dtype=torch.float64),
     "t_min": torch.tensor([T_MIN])}

# --- ASD -------------------------------------------------------------------------------------
t_plus = []
for t, u in zip(ASD["t"], ASD["u"]):
    d = min(max(ASD["ratio"] * (t - T_MIN), 0.0), float(max(T - 1 - t, 0)))
    if ASD["random"]:
        d *= u
    t_plus.append(min(max(t + math.floor(d), 1), T - 1))
rows = []
for i, (t, tp) in enumerate(zip(ASD["t"], t_plus)):
    z, n = latents[i:i + 1], noise[i:i + 1]
    x_t = sched.add_noise(z, n, tvec([t]))
    x_p = sched.add_noise(z, n, tvec([tp]))
    rows.append(w_sds(tvec([t])) * (eps_cfg(x_t, tvec([t])) - eps_branch(x_p, tvec([tp]), 0)))
g.update({"asd.t": tvec(ASD["t"]), "asd.u": torch.tensor(ASD["u"], dtype=torch.float64),
          "asd.ratio": torch.tensor([ASD["ratio"]], dtype=torch.float64),
          "asd.random": torch.tensor([int(ASD["random"])]), "asd.t2": tvec(t_plus),
          "asd.grad": torch.cat(rows)})

# --- TSM -------------------------------------------------------------------------------------
rows, t0s, ss, mus = [], [], [], []
for i, t in enumerate(TSM["t"]):
    z, n = latents[i:i + 1], noise[i:i + 1]
    s = max(t - TSM["delta"], 0)
    t0 = max(s - TSM["xs_delta"] * TSM["xs_steps"], 0)
    mu = round(s + (t - s) * math.sqrt(1 - TSM["gamma"] ** 2))
    x, cur = sched.add_noise(z, n, tvec([t0])), t0
    while cur < s:  # Dreamer XL's step 1: x_s with larger inversion steps
        nxt = min(cur + TSM["xs_delta"], s)
        x = ddim_transfer(eps_branch(x, tvec([cur]), 1), x, cur, nxt)
        cur = nxt
    e_s = eps_branch(x, tvec([s]), 1)
    x_t = ddim_transfer(e_s, x, s, t)     # path 1: s -> t
    x_mu = ddim_transfer(e_s, x, s, mu)   # path 2: s -> mu
    target = eps_branch(x_mu, tvec([mu]), 1)
    a = float(abar[t])
    rows.append((eps_cfg(x_t, tvec([t])) - target) * math.sqrt((1 - a) / a))
    t0s.append(t0); ss.append(s); mus.append(mu)
g.update({"tsm.t": tvec(TSM["t"]), "tsm.delta": tvec([TSM["delta"]]),
          "tsm.xs_delta": tvec([TSM["xs_delta"]]), "tsm.xs_steps": tvec([TSM["xs_steps"]]),
          "tsm.gamma": torch.tensor([TSM["gamma"]], dtype=torch.float64),
          "tsm.t0": tvec(t0s), "tsm.s": tvec(ss), "tsm.mu": tvec(mus), "tsm.grad": torch.cat(rows)})

# --- CDS -------------------------------------------------------------------------------------
t_hi = [min(t + CDS["gap"] + math.floor(u * CDS["perturb"]), T - 1) for t, u in zip(CDS["t"], CDS["u"])]
rows = []
for i, (t, th) in enumerate(zip(CDS["t"], t_hi)):
    z, n = latents[i:i + 1], noise[i:i + 1]
    x_hi = sched.add_noise(z, n, tvec([th]))
    e_hi = eps_cfg(x_hi, tvec([th]))
    x_lo = ddim_transfer(e_hi, x_hi, th, t)
    if th - t == 200:  # the same step through diffusers' own DDIM sampler (1000 // 5 = 200)
        sched.set_timesteps(5)
        ref = sched.step(e_hi, th, x_hi).prev_sample
        err = (ref - x_lo).abs().max().item()
        print(f"CDS ODE step vs DDIMScheduler.step: max |diff| = {err:.2e}")
        assert err < 1e-5, err
    rows.append(w_sds(tvec([th])) * (e_hi - eps_cfg(x_lo, tvec([t]))))
g.update({"cds.t": tvec(CDS["t"]), "cds.u": torch.tensor(CDS["u"], dtype=torch.float64),
          "cds.gap": tvec([CDS["gap"]]), "cds.perturb": tvec([CDS["perturb"]]),
          "cds.t2": tvec(t_hi), "cds.grad": torch.cat(rows)})

import diffusers, transformers, safetensors  # noqa: E402
meta = {"prompt": PROMPT, "negative": NEGATIVE, "torch": torch.__version__,
        "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "safetensors": safetensors.__version__, "script": "scripts/golden_methods.py"}
save_file({k: v.contiguous().clone() for k, v in g.items()}, out, metadata={"info": json.dumps(meta)})
for m in ("asd", "tsm", "cds"):
    print(m, "t", g[f"{m}.t"].tolist(), "max |grad|", round(g[f"{m}.grad"].abs().max().item(), 5))
print("t+", t_plus, "tsm (t0, s, mu)", list(zip(t0s, ss, mus)), "cds t'", t_hi)
print(json.dumps(meta))
