"""Input files given inside a prompt (base64, data URLs, URLs) turned into ComfyUI uploads, safely."""
