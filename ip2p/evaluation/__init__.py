"""Evaluation: ``samples`` (held-out clips from a processed dataset or a raw
root), ``scoring`` (the model beside the reference rows, tables, grid),
``horizon`` (rollouts scored step by step, ``evaluate.py --horizon``),
``calibration`` (choosing the fallback margin, ``evaluate.py
--calibrate-fallback``) and ``demo_app`` (the Gradio web demo of ``demo.py``)."""
