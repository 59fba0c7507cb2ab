"""The language model (Section 5): the recipe of Sec. 5.1 (training: `fit_lm`, with the compiled
fused step or the plain one), Table 2's sweep, and the hops kernel `model.MemN2NLM` runs on the CPU."""
