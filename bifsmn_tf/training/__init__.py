"""Training: distillation losses, the multi-width train step and the run loop (resume, logs)."""
