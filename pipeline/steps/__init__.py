"""Pipeline steps, one module each, applied in this order by ``pipeline.run``.

1. ``normalize``: Y-up, metres, origin at the footprint centre on the floor (glTF 2.0 §3.4);
   records the real-world size.
2. ``weld``: merge bitwise-identical vertices, drop degenerate and duplicate triangles, join
   primitives that share a material, dedup materials and textures, generate missing normals.
3. ``simplify``: reduce to a triangle budget with meshoptimizer's attribute-aware simplifier,
   then optimize for the GPU vertex cache and fetch.
4. ``textures``: resize to the tier's budget and encode (WebP for web, JPEG/PNG for AR).
5. ``compress``: ``KHR_mesh_quantization`` + ``EXT_meshopt_compression``.
6. ``validate``: check our own output before it is stored.

Each module has a ``NAME``, a frozen ``<Verb>Options`` dataclass with documented defaults and
one public function that takes an :class:`pipeline.model.Asset` and returns a new one.
"""
