"""Assets: files a caller uploads once and names in any number of runs, kept content-addressed by their blake3
hash (Comfy API v2's addressing): the bytes once per content (blobs.py), each upload's record apart (book.py)."""
