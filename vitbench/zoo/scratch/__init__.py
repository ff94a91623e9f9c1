"""The from-scratch transformer library; importing it registers its models in the zoo."""

from vitbench.zoo.scratch import bert, mlp, transformer, vit  # noqa: F401  (registers models)
