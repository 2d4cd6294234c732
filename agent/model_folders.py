"""The model folders and the loader inputs that name a model in each: one map for the NAS layout, the
workflows' model pickers and models fetched by URL. Custom loaders are added with `MODEL_LOADERS`."""

from __future__ import annotations

# ComfyUI's model folders the NAS holds (folder_paths' names), each read by every instance.
MODEL_KINDS = ("checkpoints", "loras", "vae", "controlnet", "upscale_models", "embeddings", "clip", "clip_vision",
               "text_encoders", "diffusion_models", "unet", "style_models", "hypernetworks", "gligen")

# `Class.input` -> the folder ComfyUI lists that input's choices from (nodes.py and comfy_extras in 0.3.64).
MODEL_LOADERS: dict[str, str] = {
    "CheckpointLoaderSimple.ckpt_name": "checkpoints", "CheckpointLoader.ckpt_name": "checkpoints",
    "ImageOnlyCheckpointLoader.ckpt_name": "checkpoints", "unCLIPCheckpointLoader.ckpt_name": "checkpoints",
    "LoraLoader.lora_name": "loras", "LoraLoaderModelOnly.lora_name": "loras", "VAELoader.vae_name": "vae",
    "ControlNetLoader.control_net_name": "controlnet", "DiffControlNetLoader.control_net_name": "controlnet",
    "UpscaleModelLoader.model_name": "upscale_models", "CLIPLoader.clip_name": "text_encoders",
    "DualCLIPLoader.clip_name1": "text_encoders", "DualCLIPLoader.clip_name2": "text_encoders",
    "TripleCLIPLoader.clip_name1": "text_encoders", "TripleCLIPLoader.clip_name2": "text_encoders",
    "TripleCLIPLoader.clip_name3": "text_encoders", "CLIPVisionLoader.clip_name": "clip_vision",
    "UNETLoader.unet_name": "diffusion_models", "StyleModelLoader.style_model_name": "style_models",
    "HypernetworkLoader.hypernetwork_name": "hypernetworks", "GLIGENLoader.gligen_name": "gligen",
}

# The file endings ComfyUI lists as models (folder_paths.supported_pt_extensions), and GGUF for ComfyUI-GGUF.
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft", ".gguf")
