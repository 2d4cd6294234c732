"""A random-weight Stable Diffusion 1.5 checkpoint for the integration tests, written by ComfyUI's own interpreter
from ComfyUI's own model classes (their shapes on the `meta` device, then small random fp16 values; norm scales
1), so its `CheckpointLoaderSimple` loads it and a one-step 64x64 image runs on the CPU. About 2 GB, 20 s to
write, the same bytes every time; ComfyUI needs about 6 GB of memory to run it on the CPU."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = r'''
import os, sys
COMFY = os.environ["COMFYUI_DIR"]
sys.path.insert(0, COMFY)
out_path = sys.argv[1]
sys.argv = [sys.argv[0], "--cpu"]  # comfy.cli_args parses sys.argv on import; --cpu avoids CUDA probing
import comfy.options; comfy.options.enable_args_parsing()
import torch
from safetensors.torch import save_file
import comfy.ops, comfy.sd1_clip
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
from comfy.ldm.models.autoencoder import AutoencoderKL

UNET = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
            adm_in_channels=None, in_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
            transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], channel_mult=[1, 2, 4, 4], transformer_depth_middle=1,
            use_linear_in_transformer=False, context_dim=768, num_heads=8,
            transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
            use_temporal_attention=False, use_temporal_resblock=False)
VAE = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128,
           ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0)

shapes = {}
with torch.device("meta"):  # shapes only, no memory
    parts = {"model.diffusion_model.": UNetModel(**UNET, operations=comfy.ops.disable_weight_init),
             "first_stage_model.": AutoencoderKL(ddconfig=VAE, embed_dim=4),
             "cond_stage_model.": comfy.sd1_clip.SDClipModel(device="meta")}
    for prefix, m in parts.items():
        for k, v in m.state_dict().items():
            shapes[prefix + k] = tuple(v.shape)
for k in ("cond_stage_model.logit_scale", "cond_stage_model.transformer.text_projection.weight"):
    shapes.pop(k, None)  # real SD1.5 checkpoints don't carry these

g = torch.Generator().manual_seed(0)
sd = {}
for k in sorted(shapes):
    s = shapes[k]
    if k.endswith(".weight") and len(s) == 1:
        t = torch.ones(s)  # 1-D weights are all GroupNorm/LayerNorm scales: 1 keeps activations sane
    else:
        t = torch.randn(s, generator=g) * 0.02
    sd[k] = t.to(torch.float16)
sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
save_file(sd, out_path, metadata={"format": "pt"})
'''


def write_checkpoint(path: Path) -> None:
    """Run the script with COMFYUI_PYTHON, in COMFYUI_DIR's ComfyUI."""
    subprocess.run([os.environ["COMFYUI_PYTHON"], "-c", SCRIPT, str(path)], check=True, timeout=300,
                   capture_output=True)
