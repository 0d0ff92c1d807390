"""Reference implementations for *ML Fundamentals from Scratch*.

One module per subject. The contract (names and signatures that must not change) covers
``numerics``, ``backprop``, ``attention``, ``sampling``, ``divergence``,
``calibration``, ``preference`` and ``rl``; Part VI adds ``lora``, ``quantization``,
``bpe`` and ``patterns``. Chapters import from here and the hidden tests of the graded
assignments use these functions as their oracle.
"""
