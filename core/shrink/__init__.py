"""Progressive shrinking: fewer layers, healed by distillation, stage by stage (see job.py)."""
