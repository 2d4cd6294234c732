"""Models named by URL in a run's graph: fetched once into the models folder every instance shares, under a
stable name ComfyUI lists, then named in the graph ComfyUI gets."""
