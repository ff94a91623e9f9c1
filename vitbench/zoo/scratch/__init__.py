"""The from-scratch transformer library; importing it registers its models in the zoo."""
