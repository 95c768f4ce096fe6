"""Synthetic landing data: realistic, seeded, with latent customer types and planted defects."""
from mydata.synth.generator import GenerationSummary, GeneratorOptions, generate, latent_types, subject_ci

__all__ = ["GenerationSummary", "GeneratorOptions", "generate", "latent_types", "subject_ci"]
