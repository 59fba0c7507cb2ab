"""Question answering (Sections 2 and 4): a task's questions as tensors (batches), the recipe of
Sec. 4.2 (training: `fit`, the plain reference; restarts: R restarts at once, through the compiled
kernel or the vmapped model), runs (train and evaluate into run directories), the Table 1 sweep,
and the answers and attention a trained model gives (inference; web: `memn2n serve`)."""
