"""Evaluation of the study: FID/KID (torch-fidelity) on a domain classifier and Inception-v3,
mode coverage, exact W1 on toys, and the loss-to-quality correlation.

Math lives in pure functions (stats, modes, w1, and torch-fidelity's own FID/KID via fid);
`Evaluator` wires them to a data set. Import submodules directly, e.g.
`from study.eval.evaluator import Evaluator`; this package imports nothing heavy on its own.
"""
