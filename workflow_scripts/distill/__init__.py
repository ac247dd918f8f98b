"""TinyBERT's layer-wise distillation losses and the two-stage task distillation that uses them."""
