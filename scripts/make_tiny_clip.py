# usage: python make_tiny_clip.py OUT_DIR quickgelu|gelu
# A tiny random transformers CLIPModel folder (config.json, model.safetensors, tokenizer files,
# preprocessor_config.json), a small input PNG and golden outputs of transformers (golden.safetensors,
# golden.json). quickgelu: 32 px, patch 8, pads with <|endoftext|>, upsampling 24x20 input;
# gelu: 30 px, patch 6, pads with "!", downsampling 45x37 input (resize + centre crop both exercised).
import json, os, sys, time
from collections import Counter
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, CLIPImageProcessorPil

out, kind = sys.argv[1], sys.argv[2]
assert kind in ("quickgelu", "gelu")
gelu = kind == "gelu"
t0 = time.time(); torch.manual_seed(1 if gelu else 0)
os.makedirs(out, exist_ok=True)
# tiny CLIP BPE (the approach of make_tiny_sd.py): 256 byte-chars, same + "</w>", 60 merges, specials
bs = [*range(33, 127), *range(161, 173), *range(174, 256)]; cs = bs[:]
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + len(cs) - 188)
b2u = [chr(c) for c in cs]
words = Counter(tuple(w[:-1]) + (w[-1] + "</w>",) for w in (
    "a photo of a cat, a dslr photo of a corgi wearing a hat. a hamburger on a plate "
    "a red square a blue circle an oil painting of a lighthouse").split())
merges = []
for _ in range(60):
    pairs = Counter(p for w, c in words.items() for p in zip(w, w[1:]) for _ in range(c))
    if not pairs: break
    best = max(pairs, key=lambda p: (pairs[p], p)); merges.append(best); new = Counter()
    for w, c in words.items():
        i, nw = 0, []
        while i < len(w):
            if w[i:i + 2] == best: nw.append(w[i] + w[i + 1]); i += 2
            else: nw.append(w[i]); i += 1
        new[tuple(nw)] += c
    words = new
vocab = b2u + [u + "</w>" for u in b2u] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
json.dump({t: i for i, t in enumerate(vocab)}, open(f"{out}/vocab.json", "w"))
open(f"{out}/merges.txt", "w").write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
pad = "!" if gelu else "<|endoftext|>"
tokenizer = CLIPTokenizer(f"{out}/vocab.json", f"{out}/merges.txt", pad_token=pad, model_max_length=77)
side, patch = (30, 6) if gelu else (32, 8)
act = "gelu" if gelu else "quick_gelu"
config = CLIPConfig(
    text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=77, hidden_act=act,
                     bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1,
                     pad_token_id=vocab.index(pad) if pad in vocab else 0, projection_dim=16),
    vision_config=dict(hidden_size=24, intermediate_size=29, num_hidden_layers=2, num_attention_heads=3,
                       image_size=side, patch_size=patch, hidden_act=act, projection_dim=16),
    projection_dim=16, logit_scale_init_value=2.6592)
model = CLIPModel(config).eval()
with torch.no_grad():  # perturb biases / norm affines / embeddings so parity tests see them
    for n, p in model.named_parameters():
        if n.endswith("bias") or "norm" in n or "class_embedding" in n: p.add_(0.1 * torch.randn_like(p))
    model.logit_scale.fill_(2.0 if gelu else 2.6592)
model.save_pretrained(out, safe_serialization=True)
proc = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
proc.save_pretrained(out)
tokenizer.save_pretrained(out)
for f in ("tokenizer.json",) if not gelu else ():  # quickgelu: the slow files only (as old hub folders)
    if os.path.exists(f"{out}/{f}"): os.remove(f"{out}/{f}")
json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "pad_token": pad}, open(f"{out}/special_tokens_map.json", "w"))
# input PNG: smooth colour ramps plus a few sharp edges, non-square
w, h = (45, 37) if gelu else (24, 20)
yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
img = np.stack([255 * xx / (w - 1), 255 * yy / (h - 1), 128 + 100 * np.sin(xx / 3 + yy / 5)], -1)
img[h // 3: h // 2, w // 4: w // 2] = [250, 20, 30]
img[(xx - w * 0.7) ** 2 + (yy - h * 0.6) ** 2 < (h / 5) ** 2] = [10, 40, 230]
Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB").save(f"{out}/input.png")
t_build = time.time() - t0
prompts = ["a photo of a cat", "a dslr photo of a corgi wearing a hat", "a hamburger on a plate"]
pil = Image.open(f"{out}/input.png")
pixel_values = torch.from_numpy(np.asarray(proc(images=pil, return_tensors="np").pixel_values))
ids = torch.tensor(tokenizer(prompts, padding="max_length", max_length=77, truncation=True).input_ids)
g = {"pixel_values": pixel_values, "input_ids": ids}
with torch.no_grad():
    o = model(input_ids=ids, pixel_values=pixel_values)
    g["image_pooled"] = model.vision_model(pixel_values=pixel_values).pooler_output
    g["text_pooled"] = model.text_model(input_ids=ids).pooler_output
    g["image_embeds"] = model.visual_projection(g["image_pooled"])   # unnormalised features
    g["text_embeds"] = model.text_projection(g["text_pooled"])
    g["image_embeds_normalized"], g["text_embeds_normalized"] = o.image_embeds, o.text_embeds
    g["logits_per_image"] = o.logits_per_image
save_file({k: v.contiguous().clone() for k, v in g.items()}, f"{out}/golden.safetensors")
json.dump({"prompts": prompts, "input_ids": ids.tolist(), "input_png": "input.png"},
          open(f"{out}/golden.json", "w"))
size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
print(json.dumps({"build_save_s": round(t_build, 2), "total_s": round(time.time() - t0, 2), "bytes": size}))
m2 = CLIPModel.from_pretrained(out).eval()
with torch.no_grad():
    print("reload max|diff|", (m2(input_ids=ids, pixel_values=pixel_values).logits_per_image
                              - g["logits_per_image"]).abs().max().item())
