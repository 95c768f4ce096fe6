"""Synthetic landing data: realistic, seeded, with latent customer types and planted defects."""
from mydata.devtools.synth.generator import GenerationSummary, GeneratorOptions, generate, subject_ci

__all__ = ["GenerationSummary", "GeneratorOptions", "generate", "subject_ci"]
